#!/bin/bash
# PID 1 of a guest booted by `run-guest.sh -s`, between build-guest.sh's stage 2 (which has
# mounted /proc, /sys, /dev, configfs, /tmp, /run and /out on the overlay root) and systemd: it
# makes the overlay root boot like a minimal gateway, runs the guest script's boot phase, then
# execs systemd, which boots multi-user.target (run-guest.sh puts systemd.unit= on the command
# line). Run as `systemd-init.sh run` by the unit it writes, it is the guest script's run phase.
#
# Boot, as PID 1 before systemd:
#   - a machine-id of the guest's own (systemd's journal and D-Bus want one; not this machine's);
#   - none of the units this machine enabled (its /etc/systemd/system/*.wants: postgres, timers,
#     gettys, ceph targets, multipathd...) nor a serial getty on the console, and none of the
#     update-on-first-boot units (hwdb, catalog, ldconfig) that take minutes under TCG: the guest
#     script's boot phase enables what it wants (installing a package enables its units);
#   - /out/.guest/run with GUEST_PHASE=boot: the guest script prepares the root (dpkg -i, config);
#     if it fails, the guest powers off with its status and systemd never starts;
#   - gotcmu-vm-run.service, after multi-user.target: this script with "run".
# Run, as that service: /out/.guest/run with GUEST_PHASE=run, its status into /out/.guest/rc (what
# run-guest.sh exits with), the journal into /out/journal.txt, then an immediate power-off.
set -u
RC=/out/.guest/rc
HERE=$(dirname "$(readlink -f "$0")")

# finish RC: record the guest's exit status and power off at once (run-guest.sh reads it back).
finish() {
	echo "$1" > "$RC"
	sync
	echo "GUEST-EXIT rc=$1" > /dev/console
	if [ "$$" = 1 ]; then
		/bin/busybox poweroff -f
	else
		journalctl -b --no-pager -o short-monotonic > /out/journal.txt 2>&1
		sync
		systemctl poweroff --force --force
	fi
	sleep 60
}

if [ "${1:-}" = run ]; then
	GUEST_PHASE=run /bin/sh /out/.guest/run
	finish $?
fi

[ "$$" = 1 ] || { echo "systemd-init: not PID 1" >&2; exit 2; }
exec > /dev/console 2>&1 < /dev/null
tr -d - < /proc/sys/kernel/random/uuid > /etc/machine-id
echo guest > /etc/hostname
find /etc/systemd/system -mindepth 2 -maxdepth 2 -path '*.wants/*' -type l -delete
for u in serial-getty@ttyS0.service console-getty.service getty@tty1.service systemd-networkd-wait-online.service \
	systemd-hwdb-update.service systemd-journal-catalog-update.service ldconfig.service \
	systemd-update-done.service; do
	ln -sf /dev/null "/etc/systemd/system/$u"
done

cat > /etc/systemd/system/gotcmu-vm-run.service <<UNIT
[Unit]
Description=run-guest.sh's guest script, run phase (test/vm/systemd-init.sh)
After=multi-user.target

[Service]
Type=oneshot
TimeoutStartSec=infinity
ExecStart=$HERE/systemd-init.sh run
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
UNIT
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -s ../gotcmu-vm-run.service /etc/systemd/system/multi-user.target.wants/gotcmu-vm-run.service

GUEST_PHASE=boot /bin/sh /out/.guest/run || finish $?
exec /lib/systemd/systemd
