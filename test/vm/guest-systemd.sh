#!/bin/bash
# Runs INSIDE a guest whose PID 1 is systemd (test-systemd.sh boots it with run-guest.sh -s):
# issue 14 point 2, the shipped unit run by systemd exactly as on a gateway.
#
# GUEST_PHASE=boot (PID 1, before systemd; systemd-init.sh): dpkg -i the package into the overlay
#   root, over this machine's tcmu-runner, as an operator would; its postinst enables
#   gotcmu.service and the alias tcmu-runner.service, so systemd starts gotcmu at boot.
# GUEST_PHASE=run (a service after multi-user.target): the checks, each PASS or FAIL, in order:
#   unit        started at boot; Type=dbus and gotcmu's MainPID owns org.kernel.TCMUService1;
#               ExecStartPre loads target_core_user (the module removed, the unit started again)
#   reload      `systemctl reload` reopens the log file (logrotate's case); log_level in
#               /etc/tcmu/tcmu.conf applied live (a debug line appears at 4, none at 3)
#   seccomp     each seccomp line (RestrictNamespaces, RestrictRealtime, RestrictSUIDSGID,
#               LockPersonality, RestrictAddressFamilies, SystemCallFilter, SystemCallErrorNumber,
#               SystemCallArchitectures) by sandbox-probe.py under a copy of the installed unit,
#               against the same probe as plain root (seccomp filters cannot be read from outside)
#   serve       user:rbd (micro Ceph in the guest, librbd and librados in the process) and
#               user:file LUNs on tcm_loop, a data round trip on each, `gotcmu status` over D-Bus
#               (Ceph starts in the background at the beginning of this phase)
#   hardening   while it serves: capabilities, NoNewPrivs, LimitNOFILE and the seccomp mode from
#               /proc/<pid>/status and limits, with the probe's filter count equal to gotcmu's;
#               ProtectSystem, ReadWritePaths, ProtectKernelModules, ProtectKernelLogs,
#               ProtectControlGroups from gotcmu's mount namespace (nsenter), each against the
#               same path outside it; ProtectHostname from its UTS namespace
#   stop        `systemctl stop` under a verifying write load on both LUNs: exit 0, devices
#               drained, the devices stay; the next start serves them, every acked write intact
#   kill        `systemctl kill -s KILL` twice under load: Restart= starts a new gotcmu, which
#               re-adopts both devices; every acked write intact
#   order       ceph-iscsi's rbd-target-api.service (After=/Wants=tcmu-runner.service) is
#               ordered after gotcmu.service, and starting it alone starts gotcmu first
# Env: GOTCMU_DEB (the package), ACKWRITER. Results in /out/summary.txt and /out/systemd/.
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
OUT=/out/systemd
U=gotcmu.service
mkdir -p "$OUT"

if [ "${GUEST_PHASE:-}" = boot ]; then
	: > "$SUMMARY"
	log "boot phase: dpkg -i $(basename "$GOTCMU_DEB") into the overlay root"
	dpkg -i "$GOTCMU_DEB" > "$OUT/dpkg-i.txt" 2>&1
	DRC=$?
	sed 's/^/    /' "$OUT/dpkg-i.txt"
	check "dpkg -i $(basename "$GOTCMU_DEB") (exit $DRC)" test "$DRC" -eq 0
	check "gotcmu installed, tcmu-runner removed" test "$(dpkg-query -W -f='${db:Status-Abbrev}' gotcmu)" = "ii " -a \
		"$(dpkg-query -W -f='${db:Status-Abbrev}' tcmu-runner 2>/dev/null | cut -c2)" != i
	for l in multi-user.target.wants/gotcmu.service tcmu-runner.service; do
		check "the package enabled /etc/systemd/system/$l" test "$(readlink "/etc/systemd/system/$l")" = /lib/systemd/system/gotcmu.service
	done
	check "ceph-iscsi's rbd-target-api.service is installed" test -f /lib/systemd/system/rbd-target-api.service
	[ "$FAILED" -eq 0 ]
	exit
fi

# shellcheck source=test/vm/lib-ceph.sh
. "$HERE/lib-ceph.sh"
ACKWRITER=${ACKWRITER:-$REPO/build/bin/ackwriter}
declare -A WPID

finish() {
	log "systemd: $FAILED failed"
	systemctl status --no-pager -n 0 "$U" > "$OUT/status.txt" 2>&1
	journalctl -u "$U" --no-pager -o short-monotonic > "$OUT/gotcmu-journal.txt" 2>&1
	ceph_logs
	[ "$FAILED" -eq 0 ]
	exit
}

prop() { systemctl show -p "$1" --value "${2:-$U}"; }
mainpid() { prop MainPID; }
active() { [ "$(systemctl is-active "$U")" = active ]; }
# status_of PID KEY: a field of /proc/PID/status.
status_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# in_ns CMD...: CMD in gotcmu's mount namespace (not its seccomp filter or capabilities).
in_ns() { nsenter -t "$PID" -m -- "$@"; }
journal() { journalctl -u "$U" --no-pager -o cat; }

quick_io() {
	dd if=/dev/urandom of=/tmp/qio bs=1M count=4 status=none &&
		dd if=/tmp/qio of="$1" bs=1M oflag=direct status=none &&
		dd if="$1" of=/tmp/qio.back bs=1M count=4 iflag=direct status=none &&
		cmp -s /tmp/qio /tmp/qio.back
}

acked() { grep -c '^A ' "/tmp/$1.ack" 2>/dev/null || echo 0; }
acked_at_least() { [ "$(acked "$1")" -ge "$2" ]; }
# stream NAME DEV OFFSET BLOCKS: a verifying write stream of 4 KiB blocks from OFFSET, 16 in flight.
# ackwriter verify reads a block at a time: the rbd LUN's region is kept small (1024 blocks, 15 s
# to verify under TCG instead of a minute).
stream() {
	"$ACKWRITER" write -dev "$2" -log "/tmp/$1.ack" -blocks "$4" -offset "$3" -depth 16 \
		-duration 600s -give-up 120s > "$OUT/$1-write.txt" 2>&1 &
	WPID[$1]=$!
}
# stream_end NAME DEV MARK: 100 more acks than MARK (the count when the fault ended) within 120 s,
# then stop the stream and verify every acknowledged write.
stream_end() {
	local name=$1 dev=$2 mark=$3 wrc vrc line
	check "$name: writes acknowledged after it (100 more within 120 s)" wait_until 120 acked_at_least "$name" $((mark + 100))
	kill -TERM "${WPID[$name]}" 2>/dev/null
	wait "${WPID[$name]}"; wrc=$?
	"$ACKWRITER" verify -dev "$dev" -log "/tmp/$name.ack" > "$OUT/$name-verify.txt" 2>&1; vrc=$?
	line=$(grep -o 'acknowledged=.*' "$OUT/$name-verify.txt" | tail -1)
	echo "STREAM $name: ${line:-verify failed} $(grep -o 'errors=[0-9]*' "$OUT/$name-write.txt" | tail -1)" | tee -a "$OUT/streams.txt"
	check "$name: the write stream ended without a write failing for good" test "$wrc" -eq 0
	check "$name: every acknowledged write read back intact (${line:-no verify output})" test "$vrc" -eq 0
}

uname -r > /out/guest-kernel
log "run phase: systemd $(systemctl --version | head -1 | cut -d' ' -f2), gotcmu $(gotcmu --version 2>&1)"
# The micro Ceph starts in the background (a minute or two under TCG) while the unit is checked.
ceph_up > "$OUT/ceph-up.txt" 2>&1 &
CEPH_JOB=$!

log "=== unit: started by systemd at boot"
check "gotcmu.service active after boot (enabled: $(systemctl is-enabled $U))" active || finish
PID=$(mainpid)
check "Type=dbus, BusName=org.kernel.TCMUService1 ($(prop Type), $(prop BusName))" \
	test "$(prop Type)" = dbus -a "$(prop BusName)" = org.kernel.TCMUService1
OWNER=$(busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
	GetConnectionUnixProcessID s org.kernel.TCMUService1 2>&1 | awk '{ print $2 }')
check "org.kernel.TCMUService1 is owned by the unit's MainPID ($PID; owner ${OWNER:-none})" test "$OWNER" = "$PID"
prop ExecStartPre > "$OUT/execstartpre.txt"
check "ExecStartPre ran /sbin/modprobe -q target_core_user, exit 0 ($(grep -o 'code=[^ ]* ; status=[^ ]*' "$OUT/execstartpre.txt"))" \
	grep -q 'argv\[\]=/sbin/modprobe -q target_core_user ;.*code=exited ; status=0[/ ]' "$OUT/execstartpre.txt"
systemctl stop "$U"
rmmod target_core_user 2> "$OUT/rmmod.txt"
check "target_core_user unloaded with gotcmu stopped ($(tr -d '\n' < "$OUT/rmmod.txt"))" test ! -d /sys/module/target_core_user
systemctl start "$U"
check "systemctl start: ExecStartPre loaded target_core_user again and gotcmu is active" \
	test -d /sys/module/target_core_user -a "$(systemctl is-active $U)" = active || finish
PID=$(mainpid)

log "=== reload: systemctl reload and tcmu.conf"
mv /var/log/gotcmu.log /var/log/gotcmu.log.1 2>/dev/null
systemctl reload "$U" > "$OUT/reload.txt" 2>&1
RRC=$?
check "systemctl reload gotcmu (exit $RRC: $(tr -d '\n' < "$OUT/reload.txt"))" test "$RRC" -eq 0
check "after reload the same gotcmu serves (MainPID $(mainpid))" test "$(mainpid)" = "$PID"
check "reload reopened /var/log/gotcmu.log (moved away as logrotate does)" wait_until 10 test -s /var/log/gotcmu.log
truncate -s $((256 << 20)) /tmp/sysd-file0.img
checkcfg() {
	busctl call org.kernel.TCMUService1 /org/kernel/TCMUService1/file org.kernel.TCMUService1 \
		CheckConfig s file//tmp/sysd-file0.img > /dev/null
}
debug_lines() { journal | grep -c '"check config"'; }
n0=$(debug_lines); checkcfg; sleep 2
check "log_level 3 (the default): a CheckConfig logs no debug line" test "$(debug_lines)" = "$n0"
echo "log_level = 4" >> /etc/tcmu/tcmu.conf
reloaded() { journal | grep -q '"log_level":4.*"configuration reloaded"\|"configuration reloaded".*"log_level":4'; }
check "log_level = 4 written to tcmu.conf: gotcmu reloaded it" wait_until 15 reloaded
n0=$(debug_lines); checkcfg
more() { [ "$(debug_lines)" -gt "$n0" ]; }
check "log_level 4: a CheckConfig logs its debug line" wait_until 10 more
sed -i '/^log_level = 4$/d' /etc/tcmu/tcmu.conf
sleep 3
n0=$(debug_lines); checkcfg; sleep 2
check "log_level line removed: back to 3, no debug line" test "$(debug_lines)" = "$n0"

log "=== seccomp lines: sandbox-probe.py as root and under a copy of the unit"
# The seccomp lines: the probe as plain root (each try must work there) and as ExecStart of a
# copy of the installed unit with only what makes it a oneshot changed, plus LimitRTPRIO=1 (see
# sandbox-probe.py).
python3 "$HERE/sandbox-probe.py" > "$OUT/probe-root.txt" 2>&1
{
	systemctl cat "$U" | sed -e '/^#/d' -e '/^\[Install\]/,$d' \
		-e '/^\(Type\|BusName\|ExecStartPre\|ExecStart\|ExecReload\|Restart\|RestartSec\)=/d'
	echo "Type=oneshot"
	echo "ExecStart=/usr/bin/python3 $HERE/sandbox-probe.py"
	echo "LimitRTPRIO=1"
	echo "StandardOutput=truncate:$OUT/probe-unit.txt"
	echo "StandardError=inherit"
} > /run/systemd/system/gotcmu-probe.service
cp /run/systemd/system/gotcmu-probe.service "$OUT/"
systemctl daemon-reload
systemctl start gotcmu-probe.service
check "the probe ran under a copy of the installed unit (result $(prop Result gotcmu-probe.service))" \
	test "$(prop Result gotcmu-probe.service)" = success
for line in "RestrictNamespaces=yes" "RestrictRealtime=yes" "RestrictSUIDSGID=yes" "LockPersonality=yes" \
	"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK" "SystemCallFilter=@system-service" \
	"SystemCallArchitectures=native"; do
	root=$(grep -F "$line " "$OUT/probe-root.txt" | head -1)
	unit=$(grep -F "$line " "$OUT/probe-unit.txt" | head -1)
	in_force() { [[ $root == "$line allowed:"* && $unit == "$line denied:"* ]]; }
	check "$line: ${unit#"$line "} (as plain root: ${root#"$line "})" in_force
done
unit=$(grep -F "SystemCallErrorNumber=EPERM " "$OUT/probe-unit.txt")
check "SystemCallErrorNumber=EPERM: ${unit:-no such line}" grep -q '^SystemCallErrorNumber=EPERM denied:.*(Operation not permitted)' "$OUT/probe-unit.txt"
check "RestrictAddressFamilies: AF_UNIX, AF_INET, AF_INET6 usable under the unit" test "$(grep -c '^family .* usable' "$OUT/probe-unit.txt")" = 3
log "=== serve: user:rbd and user:file from a sandboxed gotcmu"
if wait "$CEPH_JOB" && rbd_image sysd $((256 << 20)); then
	pass "micro Ceph up, rbd/sysd created"
else
	fail "micro Ceph: did not start"; cat "$OUT/ceph-up.txt"; finish
fi
FILE_BS=$(make_user_file 1 file0 /tmp/sysd-file0.img $((256 << 20)) file)
RBD_BS=$(make_user_file 2 rbd0 rbd/sysd $((256 << 20)) rbd)
check "user:file and user:rbd backstores enabled" test -n "$FILE_BS" -a -n "$RBD_BS" || finish
FILE_DEV=$(loop_export naa.5001405000051d01 "$FILE_BS")
RBD_DEV=$(loop_export naa.5001405000051d02 "$RBD_BS")
check "both LUNs on tcm_loop (${FILE_DEV:-none}, ${RBD_DEV:-none})" test -b "$FILE_DEV" -a -b "$RBD_DEV" || finish
check "user:file: 4 MiB O_DIRECT round trip" quick_io "$FILE_DEV"
check "user:rbd: 4 MiB O_DIRECT round trip" quick_io "$RBD_DEV"
check "librbd and librados are loaded in gotcmu ($PID)" \
	bash -c "grep -q 'librbd\.so' /proc/$PID/maps && grep -q 'librados\.so' /proc/$PID/maps"
gotcmu status > "$OUT/gotcmu-status.txt" 2>&1
check "gotcmu status (D-Bus, root) lists file0 and rbd0" \
	bash -c "grep -q '^file0 ' $OUT/gotcmu-status.txt && grep -q '^rbd0 ' $OUT/gotcmu-status.txt"

log "=== hardening: every line of the unit in force while gotcmu serves"
# CAP_NET_ADMIN (12), CAP_DAC_OVERRIDE (1), CAP_SETGID (6), CAP_SETUID (7).
CAPS=00000000000010c2
for k in CapBnd CapPrm CapEff; do
	check "CapabilityBoundingSet: $k $(status_of "$PID" $k) = $CAPS" test "$(status_of "$PID" $k)" = $CAPS
done
check "AmbientCapabilities=: CapAmb $(status_of "$PID" CapAmb)" test "$(status_of "$PID" CapAmb)" = 0000000000000000
check "NoNewPrivileges=yes: NoNewPrivs $(status_of "$PID" NoNewPrivs)" test "$(status_of "$PID" NoNewPrivs)" = 1
NFILTERS=$(status_of "$PID" Seccomp_filters)
check "seccomp filters loaded (Seccomp $(status_of "$PID" Seccomp), $NFILTERS filters)" test "$(status_of "$PID" Seccomp)" = 2
NOFILE=$(awk '/^Max open files/ { print $4 "/" $5 }' "/proc/$PID/limits")
check "LimitNOFILE=1000000: $NOFILE" test "$NOFILE" = 1000000/1000000
check "gotcmu has a mount namespace of its own" test "$(readlink "/proc/$PID/ns/mnt")" != "$(readlink /proc/1/ns/mnt)"
for d in /usr /etc /boot /efi; do
	[ -d "$d" ] || continue
	check "ProtectSystem=full: $d writable outside, read-only for gotcmu" bash -c "test -w $d && ! nsenter -t $PID -m -- test -w $d"
done
check "ProtectSystem=full: /var stays writable for gotcmu" in_ns test -w /var/log
for p in /sys/kernel/config/target /sys/module/target_core_user/parameters/block_netlink; do
	check "ReadWritePaths: $p writable for gotcmu" in_ns test -w "$p"
done
MODS_IN=$(in_ns ls -A /lib/modules 2>&1 | head -3 | tr '\n' ' ')
check "ProtectKernelModules=yes: /lib/modules holds $(ls /lib/modules | tr '\n' ' ')outside, nothing for gotcmu (${MODS_IN:-empty})" \
	test -n "$(ls -A /lib/modules)" -a -z "$(in_ns ls -A /lib/modules 2>/dev/null)"
for p in /proc/kmsg /dev/kmsg; do
	check "ProtectKernelLogs=yes: $p is covered for gotcmu, not outside" \
		bash -c "awk '\$5 == \"$p\"' /proc/$PID/mountinfo | grep -q . && ! awk '\$5 == \"$p\"' /proc/1/mountinfo | grep -q ."
done
check "ProtectControlGroups=yes: /sys/fs/cgroup writable outside, read-only for gotcmu" \
	bash -c "test -w /sys/fs/cgroup && ! nsenter -t $PID -m -- test -w /sys/fs/cgroup"
check "ProtectHostname=yes: gotcmu has a UTS namespace of its own" test "$(readlink "/proc/$PID/ns/uts")" != "$(readlink /proc/1/ns/uts)"

PF=$(awk '$1 == "status" && $2 == "Seccomp_filters" { print $3 }' "$OUT/probe-unit.txt")
check "the probe under the unit has gotcmu's seccomp filters ($PF and $NFILTERS) and capabilities" \
	test "$PF" = "$NFILTERS" -a "$(awk '$2 == "CapBnd" { print $3 }' "$OUT/probe-unit.txt")" = $CAPS

log "=== stop: systemctl stop under load"
stream stop-file "$FILE_DEV" 0 4096; stream stop-rbd "$RBD_DEV" 0 1024
sleep 6
INV=$(prop InvocationID)
T0=$(date +%s%N)
systemctl stop "$U"
SMS=$((($(date +%s%N) - T0) / 1000000))
check "systemctl stop under load: gotcmu exited 0 in $SMS ms (result $(prop Result), status $(prop ExecMainStatus))" \
	test "$(prop Result)" = success -a "$(prop ExecMainStatus)" = 0
drained() { journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID="$INV" | grep -c '"drained":true'; }
check "both devices drained before gotcmu exited ($(drained) 'device closed' with drained=true)" test "$(drained)" -ge 2
check "the devices stay in the kernel while gotcmu is stopped" test -d "$FILE_BS" -a -d "$RBD_BS" -a -b "$RBD_DEV"
MF=$(acked stop-file); MR=$(acked stop-rbd)
systemctl start "$U"
check "systemctl start after stop: active" active
PID=$(mainpid)
stream_end stop-file "$FILE_DEV" "$MF"
stream_end stop-rbd "$RBD_DEV" "$MR"
# A drain fails nothing: every write in flight at the stop completed, none was retried.
for n in stop-file stop-rbd; do
	E=$(grep -o 'errors=[0-9]*' "$OUT/$n-write.txt" | tail -1)
	check "$n: no write failed across the stop (${E:-no count})" test "$E" = errors=0
done

log "=== kill: systemctl kill -s KILL, Restart= brings gotcmu back"
stream kill-file "$FILE_DEV" $((32 << 20)) 4096; stream kill-rbd "$RBD_DEV" $((32 << 20)) 1024
for i in 1 2; do
	sleep 6
	OLD=$(mainpid); NR=$(prop NRestarts)
	systemctl kill -s KILL "$U"
	log "SIGKILL $i with $(acked kill-file)/$(acked kill-rbd) writes acknowledged (file/rbd)"
	restarted() { active && [ "$(mainpid)" != "$OLD" ] && [ "$(mainpid)" != 0 ]; }
	check "SIGKILL $i: systemd restarted gotcmu (NRestarts was $NR, MainPID was $OLD)" wait_until 30 restarted
	log "SIGKILL $i: now NRestarts $(prop NRestarts), MainPID $(mainpid)"
done
PID=$(mainpid)
MF=$(acked kill-file); MR=$(acked kill-rbd)
stream_end kill-file "$FILE_DEV" "$MF"
stream_end kill-rbd "$RBD_DEV" "$MR"
check "NRestarts counts the two kills ($(prop NRestarts))" test "$(prop NRestarts)" -ge 2
gotcmu status > "$OUT/gotcmu-status-2.txt" 2>&1
check "the restarted gotcmu re-adopted file0 and rbd0 (gotcmu status)" \
	bash -c "grep -q '^file0 ' $OUT/gotcmu-status-2.txt && grep -q '^rbd0 ' $OUT/gotcmu-status-2.txt"

log "=== order: rbd-target-api.service after gotcmu through the tcmu-runner.service alias"
AFTER=$(prop After rbd-target-api.service)
check "rbd-target-api.service After= resolves tcmu-runner.service to gotcmu.service" grep -qw gotcmu.service <<< "$AFTER"
check "rbd-target-api.service Wants= resolves tcmu-runner.service to gotcmu.service" grep -qw gotcmu.service <<< "$(prop Wants rbd-target-api.service)"
systemctl list-dependencies --after --plain --no-pager rbd-target-api.service > "$OUT/rbd-target-api-after.txt" 2>&1
check "systemctl list-dependencies --after rbd-target-api.service lists gotcmu.service" grep -qw gotcmu.service "$OUT/rbd-target-api-after.txt"
systemctl stop "$U"
systemctl start rbd-target-api.service > "$OUT/rbd-target-api-start.txt" 2>&1
UP=$(prop ActiveEnterTimestampMonotonic)
API=$(prop ExecMainStartTimestampMonotonic rbd-target-api.service)
check "systemctl start rbd-target-api.service alone started gotcmu first (gotcmu ready at $UP us, rbd-target-api started at $API us)" \
	test "$(systemctl is-active $U)" = active -a "${UP:-0}" -gt 0 -a "${API:-0}" -ge "${UP:-0}"
systemctl status --no-pager -n 5 rbd-target-api.service > "$OUT/rbd-target-api-status.txt" 2>&1
systemctl stop rbd-target-api.service
finish
