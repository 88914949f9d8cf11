#!/bin/bash
# Print gotcmu(8) in roff, made from `gotcmu --help` of the binary given, so the man page lists
# exactly the flags that binary has (Go's flag package prints "  -name arg" and then the usage on
# a line of its own, or on the same line after a tab for a one-letter boolean flag).
#
# Usage: systemd/deb/manpage.sh bin/gotcmu > gotcmu.8
# The version is the binary's (gotcmu --version); the date the last commit's, or SOURCE_DATE_EPOCH.
set -euo pipefail
bin=$1
version=$("$bin" --version | awk '{print $2}')
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$(dirname "$0")" log -1 --format=%ct 2>/dev/null || date +%s)}
date=$(date -u -d "@$epoch" +%Y-%m-%d)
help=$("$bin" --help 2>&1)
grep -q '^Flags:$' <<<"$help" || { echo "manpage.sh: $bin --help has no Flags: section" >&2; exit 1; }

# roff-escape stdin: backslashes, then a '.' or "'" at the start of a line.
esc() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; }

cat <<ROFF
.TH GOTCMU 8 "$date" "gotcmu $version" "System Administration"
.SH NAME
gotcmu \- TCMU userspace handler for LIO (user:rbd, user:file), a drop-in for tcmu-runner
.SH SYNOPSIS
.B gotcmu
.RI [ flags ]
.br
.B gotcmu status
.RB [ \-\-json ]
.br
.B gotcmu version
.SH DESCRIPTION
ROFF
# The paragraph between the usage lines and "Flags:".
awk 'p && /^Flags:$/ {exit} p {print} /^$/ && !p {p = 1}' <<<"$help" | esc | sed '/^$/d'
cat <<'ROFF'
.PP
Run without arguments, gotcmu is the daemon, in the foreground (what the systemd unit
gotcmu.service, also known as tcmu-runner.service, runs). At start it adopts every TCMU device the
kernel already has; on SIGTERM it blocks, drains and closes every device, leaving them to the
next start. It owns the D-Bus name org.kernel.TCMUService1, as tcmu-runner does, so that
targetcli and ceph-iscsi create user: backstores through it.
.SH COMMANDS
.TP
.B status \fR[\fB\-\-json\fR]
List every device of the running daemon (name, uio, backend, configuration string, size, state,
lock owner and state, commands in flight, errors) over D-Bus; root only.
.TP
.BR version ", " \-\-version
Print the version.
.SH OPTIONS
Flags given on the command line win over the configuration file, whose values win over the
defaults. A flag is written with one dash or two.
ROFF
awk '
	function esc(s) {gsub(/\\/, "\\e", s); if (s ~ /^[.\047]/) s = "\\&" s; return s}
	/^Flags:$/ {f = 1; next}
	!f {next}
	/^  -/ {
		line = substr($0, 3); desc = ""
		if ((i = index(line, "\t")) > 0) {desc = substr(line, i + 1); line = substr(line, 1, i - 1)}
		sub(/ +$/, "", line)
		n = split(line, w, " ")
		name = w[1]; gsub(/-/, "\\-", name)
		printf ".TP\n.B %s", name
		if (n > 1) printf " \\fI%s\\fR", w[2]
		printf "\n"
		if (desc != "") print esc(desc)
		next
	}
	/^    \t/ {sub(/^    \t/, ""); print esc($0); next}
' <<<"$help"
cat <<'ROFF'
.SH SIGNALS
.TP
.B SIGTERM\fR, \fBSIGINT
Block every device, drain the commands in flight and exit; the devices stay in the kernel for
the next start to adopt.
.TP
.B SIGHUP
Reopen the log file (for logrotate).
.SH FILES
.TP
.I /etc/tcmu/tcmu.conf
Configuration, in tcmu-runner's format (log_level, log_dir) plus gotcmu's keys (metrics_addr,
rbd_images_per_client, check_config_timeout, open_timeout, open_concurrency, transparent_hugepages, busy_bound_lock, busy_bound_connection,
busy_bound_transient); reloaded when it changes.
.TP
.I /var/log/gotcmu.log
The log, unless log_dir says otherwise.
.TP
.I /run/gotcmu.lock
Keeps a second daemon from starting.
.TP
.I /usr/share/gotcmu/grafana/gotcmu\-dashboard.json
A Grafana dashboard for the Prometheus metrics (127.0.0.1:9560/metrics by default).
.SH SEE ALSO
.BR targetcli (8),
.BR systemctl (1),
.BR gwcli (8)
.PP
https://github.com/gotcmu/gotcmu
ROFF
