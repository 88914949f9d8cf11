#!/bin/bash
# Runs INSIDE one of the two guests test-ha.sh boots: issue 6 point 4, implicit ALUA failover with
# real dm-multipath. The guests are joined by a qemu socket network (10.99.0.1 and 10.99.0.2).
#   a  runs Ceph (micro-ceph on 10.99.0.1) and gateway A: gotcmu serving rbd/ha as a user:rbd
#      backstore, exported through iSCSI target IQN's TPG 1 on 10.99.0.1:3260;
#   b  runs gateway B (the same image, backstore serial and IQN, TPG 2 on 10.99.0.2:3260) and the
#      initiator: open-iscsi logged in to both portals, dm-multipath with Ceph's LIO-ORG stanza
#      (implicit ALUA, failover, failback 60), and fio writing with verification throughout.
# Both gateways carry ceph-iscsi's ALUA layout: group "ao" (TPG 1, A's port) active/optimized and
# "ano2" (TPG 2, B's port) active/non-optimized, implicit; each enables only its own TPG.
# Scenario, driven by b: fio starts through the multipath device (path A active); A's gotcmu is
# SIGKILLed; I/O must continue through B within the multipath timeouts (commands stuck in A's
# ring fail after cmd_time_out, the path fails, B takes the image's lock, fencing A); A's gotcmu
# is started again and adopts its device; multipath fails back to A 60 s after the path returns,
# A takes the lock back; the lock must then stay put. fio's verify must find nothing wrong.
# The guests coordinate over HTTP (python3's http.server on port 8080 serves each one's
# /tmp/ha-share).
# This script boots the gateways and drives the scenario; the verdict is Go: TestHA in test/guest
# (ha_test.go, build tag guest) reads what b recorded (the write progress, each gateway's gotcmu
# log, the path statistics, fio's result) and checks it, one subtest a check.
# Usage: guest-ha.sh a|b      Env: GOTCMU, TOOLS (guest.test, test2json, testsummary: test/guest/build.sh)
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$REPO/test/vm/lib.sh"
# shellcheck source=test/vm/lib-pair.sh
. "$REPO/test/vm/lib-pair.sh"
ROLE=${1:?usage: guest-ha.sh a|b}
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
TOOLS=${TOOLS:-$REPO/build/bin}
IP_A=10.99.0.1
IP_B=10.99.0.2
IQN=iqn.2003-01.org.gotcmu:ha
IMG=ha
SIZE=$((256 << 20))
SERIAL=gotcmu-ha-0001 # the same on both gateways: one LUN to multipath
SHARE=/tmp/ha-share
CEPH_DIR=/tmp/ha-ceph
GLOG=/out/gotcmu.log
# A command stuck in the ring of a dead gotcmu fails after this many seconds, below the
# initiator's 30 s SCSI timeout, so the path fails and multipath moves on (ceph-iscsi sets 0,
# relying on a live handler; a killed one needs the kernel's timeout).
CMD_TIME_OUT=20
# fio runs this long: kill, failover, restart, the 60 s failback and a settling minute fit in it.
FIO_SECS=${FIO_SECS:-420}
# The longest time writes may stall at failover: the initiator's SCSI timeout, twice.
MAX_STALL=60
# After failback the lock must not move for this long.
SETTLE=60
case $ROLE in a) ME=$IP_A PEER=$IP_B ;; b) ME=$IP_B PEER=$IP_A ;; *) echo "role must be a or b" >&2; exit 2 ;; esac
: > "$SUMMARY"
mkdir -p "$SHARE"

finish() {
	[ -n "${HANDLER_PID:-}" ] && kill -TERM "$HANDLER_PID" 2>/dev/null
	[ "$ROLE" = b ] && say b-done
	cp "$GLOG"* /out/ 2>/dev/null
	dmesg > /out/dmesg.txt 2>&1
	log "ha ($ROLE): $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

# gotcmu_start: the daemon, logging to $GLOG (appended across restarts).
gotcmu_start() {
	"$GOTCMU" --no-dbus -l "" -lock-file /run/gotcmu.lock >> "$GLOG" 2>&1 &
	HANDLER_PID=$!
	sleep 2
	kill -0 "$HANDLER_PID"
}

if [ "$ROLE" = a ]; then
	check "A: network up" net_up || finish
	mkdir -p /out/ceph
	if ! MON_IP=$IP_A "$REPO/test/micro-ceph.sh" start "$CEPH_DIR" $((1 << 30)) > /out/ceph/start.log 2>&1; then
		fail "A: micro Ceph on $IP_A"; tail -20 /out/ceph/start.log; finish
	fi
	pass "A: micro Ceph on $IP_A"
	mkdir -p /etc/ceph
	ln -sf "$CEPH_DIR/ceph.conf" /etc/ceph/ceph.conf
	cp "$CEPH_DIR/keyring" /etc/ceph/ceph.client.admin.keyring
	cp "$CEPH_DIR/ceph.conf" "$SHARE/ceph.conf"; cp "$CEPH_DIR/keyring" "$SHARE/keyring"
	check "A: image rbd/$IMG" rbd create "rbd/$IMG" --size "$((SIZE >> 20))M" || finish
	check "A: gotcmu starts" gotcmu_start || finish
	check "A: gateway configured" pair_gateway || finish
	say a-ready
	await kill-a 1800 || { fail "A: b never asked to kill gotcmu"; finish; }
	kill -KILL "$HANDLER_PID"; wait "$HANDLER_PID" 2>/dev/null; HANDLER_PID=""
	log "gotcmu SIGKILLed"
	say a-killed
	await restart-a 1800 || { fail "A: b never asked to restart gotcmu"; finish; }
	check "A: gotcmu restarted" gotcmu_start || finish
	say a-restarted
	await b-done 1800
	say a-log "$(cat "$GLOG")" # b's checks read when A took the lock
	sleep 5 # let b read it
	"$REPO/test/micro-ceph.sh" stop "$CEPH_DIR" >/dev/null 2>&1
	cp "$CEPH_DIR"/*.log /out/ceph/ 2>/dev/null
	finish
fi

# Role b: gateway B and the initiator.
check "B: network up" net_up || finish
await a-ready 900 || { fail "B: gateway A ready"; finish; }
mkdir -p "$CEPH_DIR/run" /etc/ceph
heard ceph.conf > "$CEPH_DIR/ceph.conf" && heard keyring > "$CEPH_DIR/keyring" || { fail "B: Ceph config from A"; finish; }
ln -sf "$CEPH_DIR/ceph.conf" /etc/ceph/ceph.conf
cp "$CEPH_DIR/keyring" /etc/ceph/ceph.client.admin.keyring
check "B: Ceph on $IP_A reachable" timeout 60 ceph health || finish
check "B: gotcmu starts" gotcmu_start || finish
check "B: gateway configured" pair_gateway || finish

# The initiator: udev, dm-multipath with Ceph's stanza, iscsid, then iSCSI sessions to both
# portals and the multipath device over them (lib-pair.sh: MP, DM, PATH_A).
initiator_up
check "B: logged in to both gateways, one multipath device" pair_login || finish
# a_group: the number of the path group holding PATH_A in multipathd's topology ("" if none).
a_group() { multipathd show topology | awk -v d=" $PATH_A " '/-\+- policy=/ { n++ } index($0, d) { print n; exit }'; }
# dm-multipath builds the map from whichever path appears first and fails back only after
# "failback 60"; the scenario starts on A (group ao, active/optimized), so switch to it now:
# a write through B would move the lock before the test begins.
wait_until 60 sh -c "[ -n \"\$(multipathd show topology | grep -F ' $PATH_A ')\" ]" || fail "B: multipathd sees $PATH_A"
multipathd switchgroup map "$MP" group "$(a_group)" > /dev/null 2>&1 || log "switchgroup to $(a_group) failed"
multipathd show topology > /out/topology-start.txt 2>&1
log "multipath device $MP ($DM), path A $PATH_A: $(tr '\n' ' ' < /out/topology-start.txt)"

# writes: writes completed on the multipath device so far.
writes() { awk '{print $5}' "/sys/block/$DM/stat"; }
# fio writes 4 KiB blocks at random over 64 MiB and reads back every block it wrote, 256 at a
# time (verify_backlog), throughout: a block lost or stale across a failover fails it.
fio --name=ha --filename="/dev/mapper/$MP" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
	--iodepth=8 --size=64M --time_based --runtime="$FIO_SECS" --verify=crc32c --verify_backlog=256 \
	--verify_fatal=1 --output=/out/fio.txt > /out/fio.out 2>&1 &
FIO=$!
# Sample progress once a second: "unix-seconds writes".
( while kill -0 $FIO 2>/dev/null; do echo "$(date +%s) $(writes)"; sleep 1; done ) > /out/progress.txt &
sleep 30
PATH_B=""
for slave in /sys/block/"$DM"/slaves/*; do [ "${slave##*/}" = "$PATH_A" ] || PATH_B=${slave##*/}; done
cat "/sys/block/$PATH_A/stat" > /out/path-a.stat
cat "/sys/block/$PATH_B/stat" > /out/path-b.stat
KILL_AT=$(date +%s)
say kill-a
await a-killed 60 || fail "B: A killed its gotcmu"
# I/O continues through B (progress.txt has the figures TestHA checks).
wait_until $((MAX_STALL + 60)) sh -c "[ \$(awk '{print \$5}' /sys/block/$DM/stat) -gt $(writes) ]" ||
	log "no write completed within $((MAX_STALL + 60)) s of the kill"
sleep 20
multipathd show topology > /out/topology-failover.txt 2>&1
sleep 10
say restart-a
await a-restarted 60 || fail "B: A restarted gotcmu"
RESTART_AT=$(date +%s)
wait $FIO; FIO_RC=$?
END_AT=$(date +%s)
multipathd show topology > /out/topology-end.txt 2>&1
say b-done

await a-log 60 && heard a-log > /out/gotcmu-a.log || fail "B: gateway A's log"
HA_OUT=/out HA_KILL_AT=$KILL_AT HA_RESTART_AT=$RESTART_AT HA_END_AT=$END_AT HA_FIO_RC=$FIO_RC \
	HA_FIO_SECS=$FIO_SECS HA_MAX_STALL=$MAX_STALL HA_SETTLE=$SETTLE \
	"$TOOLS/test2json" -t -p ha "$TOOLS/guest.test" -test.v=test2json -test.run '^TestHA$' |
	"$TOOLS/testsummary" -summary "$SUMMARY" || FAILED=$((FAILED + 1))
finish
