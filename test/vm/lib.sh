# shellcheck shell=bash
# Shell helpers for scripts that run INSIDE the guest (bash; source it). They talk to LIO through
# configfs directly, as rtslib does, so no step depends on targetcli or D-Bus.
#
# Results: every check prints "PASS name", "FAIL name: why" or "SKIP name: why" and appends the
# line to $SUMMARY (/out/summary.txt); FAILED counts the failures of this shell.

CFG=/sys/kernel/config/target
TCMU_PARAMS=/sys/module/target_core_user/parameters
SUMMARY=${SUMMARY:-/out/summary.txt}
FAILED=0

log()  { echo "[$(date +%T)] $*"; }
pass() { echo "PASS $*" | tee -a "$SUMMARY"; }
fail() { echo "FAIL $*" | tee -a "$SUMMARY"; FAILED=$((FAILED + 1)); }
skip() { echo "SKIP $*" | tee -a "$SUMMARY"; }

# check NAME CMD...: PASS or FAIL NAME by CMD's exit status.
check() {
	local name=$1; shift
	if "$@"; then pass "$name"; else fail "$name: '$*' failed"; return 1; fi
}

# wait_until SECONDS CMD...: poll CMD every 0.2 s until it succeeds or time runs out.
wait_until() {
	local deadline=$(($(date +%s) + $1)); shift
	until "$@"; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

# unblock_netlink: complete every configfs write waiting for a handler's netlink reply with
# -EINTR, as tcmu-runner does at start-up (target_core_user.c, tcmu_wait_genl_cmd_reply: the wait has no timeout).
unblock_netlink() {
	echo 1 > "$TCMU_PARAMS/block_netlink"
	echo 1 > "$TCMU_PARAMS/reset_netlink"
	echo 0 > "$TCMU_PARAMS/block_netlink"
}

# bounded SECONDS CMD...: run CMD, which may block in the kernel waiting for the handler's netlink
# reply (writes to enable, rmdir of a user backstore). A task in that uninterruptible wait cannot
# be killed, so after SECONDS the wait is ended through unblock_netlink instead; returns 124 then.
bounded() {
	local secs=$1; shift
	"$@" &
	local pid=$! deadline=$(($(date +%s) + secs))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			log "'$*' still blocked after ${secs}s: resetting netlink"
			unblock_netlink
			wait "$pid"
			return 124
		fi
		sleep 0.2
	done
	wait "$pid"
}

# put VALUE FILE: one write(2) of VALUE, no newline (configfs parses the buffer as written).
put() { printf '%s' "$1" > "$2"; }

new_uuid() { cat /proc/sys/kernel/random/uuid; }

# make_user_file HBA NAME FILE SIZE [SUBTYPE]: a user backstore (default user:file, gotcmu's) on
# FILE; prints its configfs path. The control file splits tokens on ',' and '\n', so each token is
# its own write; the enable write waits for the handler's netlink reply when reply mode is on.
make_user_file() {
	local dir=$CFG/core/user_$1/$2
	mkdir -p "$dir" || return 1
	put "dev_config=${5:-file}/$3" "$dir/control" || return 1
	put "dev_size=$4" "$dir/control" || return 1
	bounded 30 put 1 "$dir/enable" || { log "enable of $dir failed"; return 1; }
	put "$(new_uuid)" "$dir/wwn/vpd_unit_serial" || return 1
	echo "$dir"
}

# make_fileio HBA NAME FILE SIZE: LIO's own fileio backstore; prints its configfs path.
make_fileio() {
	local dir=$CFG/core/fileio_$1/$2
	mkdir -p "$dir" || return 1
	put "fd_dev_name=$3,fd_dev_size=$4" "$dir/control" || return 1
	put 1 "$dir/enable" || return 1
	put "$(new_uuid)" "$dir/wwn/vpd_unit_serial" || return 1
	echo "$dir"
}

# remove_backstore DIR: rmdir it (for user backstores the kernel waits for REMOVED_DEVICE_DONE).
remove_backstore() { bounded 30 rmdir "$1"; }

# uio_for CONFIG_SUBSTRING: the uio device whose name (tcm-user/<hba>/<name>/<config>) contains it.
uio_for() { grep -l -F -- "$1" /sys/class/uio/uio*/name 2>/dev/null | head -1 | cut -d/ -f5; }

# loop_export WWN BACKSTORE: export BACKSTORE as LUN 0 of a tcm_loop target and print its
# /dev/sdX once the kernel has scanned it. The nexus must exist before the LUN: a LUN added
# without one is scanned and lost.
loop_export() {
	local tpg=$CFG/loopback/$1/tpgt_1 addr dev=""
	mkdir -p "$tpg/lun/lun_0" || return 1
	put "naa.5001405$(printf '%09x' $RANDOM)" "$tpg/nexus" || return 1
	ln -s "$2" "$tpg/lun/lun_0/$(basename "$2")" || return 1
	addr=$(cat "$tpg/address")
	wait_until 20 test -d "/sys/class/scsi_disk/$addr:0/device/block" || return 1
	dev=$(ls "/sys/class/scsi_disk/$addr:0/device/block" | head -1)
	wait_until 10 test -b "/dev/$dev" || return 1
	echo "/dev/$dev"
}

# loop_unexport WWN: remove the LUN, the nexus and the target.
loop_unexport() {
	local tpg=$CFG/loopback/$1/tpgt_1
	find "$tpg/lun/lun_0" -maxdepth 1 -type l -exec rm {} \; &&
		rmdir "$tpg/lun/lun_0" && rmdir "$tpg" && rmdir "$CFG/loopback/$1"
}

# iscsi_export IQN BACKSTORE...: one iSCSI target on 127.0.0.1:3260, LUN i = the i-th backstore,
# open to any initiator without authentication (what the iscsi-test-cu runs need).
iscsi_export() {
	local tpg=$CFG/iscsi/$1/tpgt_1 lun=0 bs; shift
	for bs in "$@"; do
		mkdir -p "$tpg/lun/lun_$lun" || return 1
		ln -s "$bs" "$tpg/lun/lun_$lun/$(basename "$bs")" || return 1
		lun=$((lun + 1))
	done
	mkdir "$tpg/np/127.0.0.1:3260" || return 1
	put 0 "$tpg/attrib/authentication" && put 1 "$tpg/attrib/generate_node_acls" &&
		put 1 "$tpg/attrib/cache_dynamic_acls" && put 0 "$tpg/attrib/demo_mode_write_protect" &&
		put 1 "$tpg/enable"
}

# cu_suite_list: the iscsi-test-cu suites compared, one a line: every suite of the SCSI family but
# the reservation ones LIO core answers itself (Prin*, Prout*, Reserve6*); CU_TESTS (comma
# separated) replaces the list.
cu_suite_list() {
	if [ -n "${CU_TESTS:-}" ]; then
		tr ',' '\n' <<< "$CU_TESTS"
		return
	fi
	iscsi-test-cu -l | grep -E '^SCSI\.[^.]+$' | grep -Ev '^SCSI\.(Prin|Prout|Reserve6)'
}

# run_cu DIR URL: iscsi-test-cu -d -x against URL once per suite, into DIR/<suite>/ (its XML,
# stdout.txt and a "seconds" file), the layout test/cmd/cucompare merges. One run per suite keeps
# a crash or a hang in one suite from costing the others, and times each suite. Each is bounded
# by CU_SUITE_TIMEOUT (s, default 300); after CU_BUDGET (s, default 900) no new suite starts, and
# the rest are left without results. CU_INITIATOR, if set, is the initiator name to log in as (an
# ACL's). Prints a one-line account; returns 1 if a suite has none.
run_cu() {
	local dir=$1 url=$2 t s0 rc n=0 start
	local incomplete=()
	start=$(date +%s)
	mkdir -p "$dir"
	for t in $(cu_suite_list); do
		n=$((n + 1))
		mkdir -p "$dir/$t"
		if [ $(($(date +%s) - start)) -ge "${CU_BUDGET:-900}" ]; then
			incomplete+=("$t(budget spent)")
			continue
		fi
		s0=$(date +%s)
		# -d allows the destructive (write) tests; -x writes CUnit XML into the working directory.
		(cd "$dir/$t" && timeout -k 10 "${CU_SUITE_TIMEOUT:-300}" iscsi-test-cu ${CU_INITIATOR:+-i "$CU_INITIATOR"} -d -x --test="$t" "$url" > stdout.txt 2>&1)
		rc=$?
		echo $(($(date +%s) - s0)) > "$dir/$t/seconds"
		# 0: every test passed, 1: some failed; anything else, or no report, is a run cut short.
		if [ "$rc" -gt 1 ] || [ ! -s "$dir/$t/CUnitAutomated-Results.xml" ]; then
			incomplete+=("$t(exit $rc)")
		fi
	done
	echo "$n suites in $(($(date +%s) - start)) s${incomplete[*]:+; without results: ${incomplete[*]}}"
	[ ${#incomplete[@]} -eq 0 ]
}

# cu_has_results DIR: DIR holds a complete run_cu run.
cu_has_results() { [ -f "$1/complete" ]; }

# start_dbus: a system bus, with the D-Bus policy files the project ships in systemd/ (the
# <busconfig> ones; other *.conf there are not D-Bus's), for daemons that want it.
start_dbus() {
	[ -S /run/dbus/system_bus_socket ] && return 0
	mkdir -p /run/dbus /etc/dbus-1/system.d
	local f
	for f in $(grep -l '<busconfig' "$REPO"/systemd/*.conf 2>/dev/null); do
		cp "$f" /etc/dbus-1/system.d/
	done
	dbus-daemon --system --fork --nopidfile
}

# The userspace handler under test, chosen by MODE:
#   gotcmu       $GOTCMU $GOTCMU_ARGS serving user:file backstores (dev_config file/<path>)
#   tcmu-runner  Debian's tcmu-runner, whose qcow handler serves a raw file as user:qcow: the
#                reference handler, through exactly the same steps (and a check of the harness)
# Sets HANDLER (display name) and HANDLER_SUBTYPE (the user backstore's config prefix).
select_handler() {
	case ${MODE:-gotcmu} in
	gotcmu) HANDLER=gotcmu; HANDLER_SUBTYPE="file" ;;
	tcmu-runner) HANDLER=tcmu-runner; HANDLER_SUBTYPE=qcow ;;
	*) HANDLER=""; HANDLER_SUBTYPE="" ;;
	esac
}

# handler_present: the handler's program exists.
handler_present() {
	case $HANDLER in
	gotcmu) [ -x "$GOTCMU" ] ;;
	tcmu-runner) command -v tcmu-runner >/dev/null ;;
	*) return 1 ;;
	esac
}

# start_handler LOG: start the handler in the background, logging to LOG; sets HANDLER_PID.
# Succeeds when it is still alive two seconds later.
start_handler() {
	start_dbus || log "no system D-Bus; $HANDLER runs without it"
	case $HANDLER in
	gotcmu)
		# shellcheck disable=SC2086 # GOTCMU_ARGS is a list of words
		"$GOTCMU" $GOTCMU_ARGS > "$1" 2>&1 & ;;
	tcmu-runner)
		# It logs to <dir>/tcmu-runner.log itself; its stdout/stderr go to LOG.
		mkdir -p "$1.d"
		tcmu-runner --tcmu-log-dir="$1.d" > "$1" 2>&1 & ;;
	esac
	HANDLER_PID=$!
	sleep 2
	kill -0 "$HANDLER_PID" 2>/dev/null
}

# handler_log LOG: everything the handler logged for a start_handler LOG.
handler_log() { cat "$1" "$1.d"/*.log 2>/dev/null; }

# make_user_backstore HBA NAME FILE SIZE: a user backstore of the handler under test on FILE.
make_user_backstore() { make_user_file "$1" "$2" "$3" "$4" "$HANDLER_SUBTYPE"; }

# stop_handler: SIGTERM and wait up to 20 s; returns the handler's exit status (124 if it hung,
# and then it is SIGKILLed).
stop_handler() {
	[ -n "${HANDLER_PID:-}" ] || return 0
	kill -TERM "$HANDLER_PID" 2>/dev/null
	local rc
	for _ in $(seq 100); do
		kill -0 "$HANDLER_PID" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$HANDLER_PID" 2>/dev/null; then
		kill -KILL "$HANDLER_PID"; wait "$HANDLER_PID" 2>/dev/null; HANDLER_PID=""
		return 124
	fi
	wait "$HANDLER_PID"; rc=$?
	HANDLER_PID=""
	return $rc
}
