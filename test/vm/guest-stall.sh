#!/bin/bash
# Runs INSIDE the guest (test-vm.sh boots it): issue 12 point 3, one LUN never holds up another.
# One user:rbd backstore ("stuck") names, through conf=, a ceph.conf whose monitor nobody answers
# (127.0.0.1 ports with nothing listening); the other LUNs (two user:rbd on the guest's micro
# Ceph, one user:file) are good.
#   A. gotcmu running, the stuck one enabled first, then the good ones: each good one is enabled,
#      exported on tcm_loop and answers a 4 MiB O_DIRECT round trip within GOOD_LIMIT seconds
#      while the stuck one's enable still waits; the stuck enable returns 0 after the open
#      timeout (tcmu.conf open_timeout, OPEN_TIMEOUT s); `gotcmu status` shows it waiting, with
#      the reason; its conf is then pointed at the real monitor and it serves.
#   B. gotcmu restarted (SIGTERM, then a new daemon adopts the four) with the stuck one's monitor
#      silent again: the daemon owns org.kernel.TCMUService1 within BUS_LIMIT s of its start, the
#      good LUNs answer I/O within GOOD_LIMIT s, another LUN is added and removed promptly
#      meanwhile; once its monitor answers, the stuck LUN serves again.
# Figures (times in ms) in /out/stall/figures.txt. gotcmu only. Env: MODE, GOTCMU, GOTCMU_ARGS.
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
# shellcheck source=test/vm/lib-ceph.sh
. "$HERE/lib-ceph.sh"
MODE=${MODE:-gotcmu}
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
HANDLER=gotcmu
OUT=/out/stall
FIG=$OUT/figures.txt
# Long enough that a daemon applying events one at a time keeps the good LUNs waiting visibly
# longer than GOOD_LIMIT; short enough to keep the suite quick.
OPEN_TIMEOUT=${OPEN_TIMEOUT:-20}
GOOD_LIMIT=${GOOD_LIMIT:-15}
BUS_LIMIT=${BUS_LIMIT:-10}
# Through the configuration file rather than --open-timeout, so that a gotcmu from before the
# option starts all the same (and shows what this suite catches).
TCMU_CONF=/etc/tcmu/tcmu.conf
SIZE=$((64 << 20))
STUCK_CONF=/tmp/stall/ceph.conf
mkdir -p "$OUT" /tmp/stall
: > "$FIG"
declare -A BS DEV

finish() {
	[ -n "${HANDLER_PID:-}" ] && { stop_handler || log "gotcmu did not stop cleanly"; }
	if [ -f "$TCMU_CONF.stall-saved" ]; then mv "$TCMU_CONF.stall-saved" "$TCMU_CONF"; else rm -f "$TCMU_CONF"; fi
	ceph_logs
	log "stall: $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

if [ "$MODE" != gotcmu ]; then
	skip "stall suite: it tests gotcmu's per-device handling; mode $MODE is not gotcmu"
	exit 0
fi
[ -x "$GOTCMU" ] || { fail "gotcmu starts: $GOTCMU not found (make build)"; finish; }

now() { date +%s%N; }
ms_since() { echo $((($(now) - $1) / 1000000)); }
figure() { echo "$*" | tee -a "$FIG"; }

# silence: the stuck LUN's conf names monitors nobody answers; answer: the guest's real one.
silence() { sed 's/^mon host = .*/mon host = [v2:127.0.0.1:1,v1:127.0.0.1:2]/' /etc/ceph/ceph.conf > "$STUCK_CONF"; }
answer() { cp /etc/ceph/ceph.conf "$STUCK_CONF"; }

# enable_lun HBA NAME CONFIG: a 64 MiB user backstore with dev_config CONFIG; prints its path.
enable_lun() {
	local dir=$CFG/core/user_$1/$2
	mkdir -p "$dir" && put "dev_config=$3" "$dir/control" && put "dev_size=$SIZE" "$dir/control" &&
		bounded 60 put 1 "$dir/enable" && put "$(new_uuid)" "$dir/wwn/vpd_unit_serial" && echo "$dir"
}

wwn() { printf 'naa.5001405000000d%02x' "$1"; }

# quick_io DEV: 4 MiB of random data written and read back with O_DIRECT, bounded by 60 s.
quick_io() {
	dd if=/dev/urandom of=/tmp/stall/qio bs=1M count=4 status=none &&
		timeout 60 dd if=/tmp/stall/qio of="$1" bs=1M oflag=direct status=none &&
		timeout 60 dd if="$1" of=/tmp/stall/qio.back bs=1M count=4 iflag=direct status=none &&
		cmp -s /tmp/stall/qio /tmp/stall/qio.back
}

# busy_answers DEV: how many times, in 5 s, the kernel completed DEV's commands with BUSY while
# one TEST UNIT READY was sent (scsi_dispatch_cmd_done trace events); fails without tracefs.
busy_answers() {
	local trace=/sys/kernel/tracing hctl h c t l
	hctl=$(basename "$(readlink -f "/sys/block/${1#/dev/}/device")")
	IFS=: read -r h c t l <<< "$hctl"
	[ -d "$trace/events" ] || mount -t tracefs nodev "$trace" 2>/dev/null
	[ -w "$trace/events/scsi/scsi_dispatch_cmd_done/enable" ] || return 1
	: > "$trace/trace"
	echo 1 > "$trace/events/scsi/scsi_dispatch_cmd_done/enable"
	timeout 5 sg_turs "$1" > /dev/null 2>&1
	echo 0 > "$trace/events/scsi/scsi_dispatch_cmd_done/enable"
	grep "host_no=$h channel=$c id=$t lun=$l " "$trace/trace" | grep -c BUSY
	true
}

bus_owned() {
	dbus-send --system --print-reply --dest=org.kernel.TCMUService1 /org/kernel/TCMUService1 \
		org.freedesktop.DBus.Peer.Ping > /dev/null 2>&1
}

# dev_state NAME: the state gotcmu status --json reports for backstore NAME.
dev_state() {
	"$GOTCMU" status --json 2>/dev/null | tr -d '\n' | grep -o "{[^{}]*\"name\": *\"$1\"[^{}]*}" |
		grep -o '"state": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"'
}
is_state() { [ "$(dev_state "$1")" = "$2" ]; }

# good LUN I: enable, export and round-trip one good LUN; prints the ms it took.
GOOD=(good0 good1 file0)
good_config() {
	case $1 in
	file0) echo "file//tmp/stall/file0.img" ;;
	*) echo "rbd/rbd/stall-$1" ;;
	esac
}

log "stall: one LUN whose cluster does not answer, open timeout ${OPEN_TIMEOUT}s"
check "micro Ceph cluster running in the guest" ceph_up || finish
for n in good0 good1 stuck; do
	check "rbd image rbd/stall-$n created" rbd_image "stall-$n" "$SIZE" || finish
done
truncate -s "$SIZE" /tmp/stall/file0.img
silence
mkdir -p "$(dirname "$TCMU_CONF")"
[ -f "$TCMU_CONF" ] && cp "$TCMU_CONF" "$TCMU_CONF.stall-saved"
echo "open_timeout = $OPEN_TIMEOUT" > "$TCMU_CONF"
check "gotcmu starts (open_timeout = $OPEN_TIMEOUT in $TCMU_CONF)" start_handler "$OUT/gotcmu-1.log" || { cat "$OUT/gotcmu-1.log"; finish; }
check "gotcmu owns org.kernel.TCMUService1" wait_until 20 bus_owned

# A. The stuck LUN first, then the good ones, gotcmu running.
log "=== A: stuck LUN enabled first, then the good ones"
T0=$(now)
(enable_lun 9 stuck "rbd/rbd/stall-stuck;conf=$STUCK_CONF" > /tmp/stall/stuck.path) &
STUCK_EN=$!
sleep 1
i=1
for n in "${GOOD[@]}"; do
	T=$(now)
	BS[$n]=$(enable_lun 9 "$n" "$(good_config "$n")")
	[ -n "${BS[$n]}" ] && DEV[$n]=$(loop_export "$(wwn $i)" "${BS[$n]}")
	if [ -n "${DEV[$n]:-}" ] && quick_io "${DEV[$n]}"; then
		MS=$(ms_since "$T")
		figure "A $n: enabled, exported and 4 MiB round trip in $MS ms (stuck enable still waiting: $(kill -0 $STUCK_EN 2>/dev/null && echo yes || echo no))"
		check "A: $n serves within ${GOOD_LIMIT}s while the stuck LUN's open waits ($MS ms)" test "$MS" -lt $((GOOD_LIMIT * 1000))
	else
		fail "A: $n enabled, exported and answering I/O"
	fi
	i=$((i + 1))
done
check "A: the stuck LUN's enable was still waiting when the good LUNs were served" kill -0 "$STUCK_EN"
wait "$STUCK_EN"; ERC=$?
MS=$(ms_since "$T0")
BS[stuck]=$(cat /tmp/stall/stuck.path)
figure "A stuck: enable returned $ERC after $MS ms (open timeout ${OPEN_TIMEOUT} s)"
check "A: the stuck LUN's enable succeeds after the open timeout ($MS ms)" \
	test "$ERC" -eq 0 -a -n "${BS[stuck]}" -a "$MS" -lt $(((OPEN_TIMEOUT + 15) * 1000))
"$GOTCMU" status > "$OUT/status-a.txt" 2>&1
cat "$OUT/status-a.txt"
check "A: gotcmu status shows the stuck LUN waiting" is_state stuck waiting
check "A: gotcmu status says why (its open timed out)" grep -q "^stuck: waiting .*\(did not answer in time\|timed out\)" "$OUT/status-a.txt"
T=$(now)
answer
check "A: the stuck LUN serves once its monitor answers" wait_until 150 is_state stuck running
figure "A stuck: served $(ms_since "$T") ms after its conf named the real monitor"
DEV[stuck]=$(loop_export "$(wwn 9)" "${BS[stuck]}")
check "A: the once stuck LUN answers I/O (${DEV[stuck]:-no disk})" quick_io "${DEV[stuck]:-/nonexistent}"

# B. Restart: a new daemon adopts the four while the stuck one's monitor is silent again.
log "=== B: gotcmu restarted, adopting four LUNs, one of them stuck"
stop_handler; SRC=$?
check "B: gotcmu exits 0 on SIGTERM ($SRC)" test "$SRC" -eq 0
silence
T0=$(now)
check "B: gotcmu starts again" start_handler "$OUT/gotcmu-2.log" || finish
if wait_until "$BUS_LIMIT" bus_owned; then
	MS=$(ms_since "$T0")
	figure "B: org.kernel.TCMUService1 owned $MS ms after the start"
	pass "B: gotcmu owns its bus name within ${BUS_LIMIT}s of its start while a device cannot open ($MS ms)"
else
	fail "B: gotcmu does not own its bus name ${BUS_LIMIT}s after its start"
fi
for n in "${GOOD[@]}"; do
	if [ -n "${DEV[$n]:-}" ] && quick_io "${DEV[$n]}"; then
		MS=$(ms_since "$T0")
		figure "B $n: 4 MiB round trip done $MS ms after the start"
		check "B: $n answers I/O within ${GOOD_LIMIT}s of the start ($MS ms)" test "$MS" -lt $((GOOD_LIMIT * 1000))
	else
		fail "B: $n answers I/O after the restart"
	fi
done
"$GOTCMU" status > "$OUT/status-b.txt" 2>&1
cat "$OUT/status-b.txt"
opening_or_waiting() { is_state stuck opening || is_state stuck waiting; }
check "B: gotcmu status shows the stuck LUN opening or waiting, with why" opening_or_waiting
check "B: ...and it says why" grep -q "^stuck: \(opening\|waiting\) " "$OUT/status-b.txt"
check "B: the stuck LUN waits (blocked, retried) once its open timed out" wait_until $((OPEN_TIMEOUT + 15)) is_state stuck waiting
# What an initiator gets meanwhile: the kernel answers the blocked device's commands BUSY, which
# Linux retries until the command's time budget runs out (60 s for this TEST UNIT READY).
if N=$(busy_answers "${DEV[stuck]:-/nonexistent}"); then
	figure "B stuck: BUSY answers to one TEST UNIT READY in 5 s while waiting: $N"
	check "B: the waiting LUN's commands are answered BUSY ($N in 5 s, retried by the initiator)" test "$N" -gt 0
else
	skip "B: BUSY answers of the waiting LUN: no scsi trace events in the guest kernel"
fi
T=$(now)
truncate -s "$SIZE" /tmp/stall/extra.img
BS[extra]=$(enable_lun 10 extra "file//tmp/stall/extra.img")
check "B: another LUN enabled meanwhile" test -n "${BS[extra]}"
check "B: ...and removed" remove_backstore "${BS[extra]:-/nonexistent}"
MS=$(ms_since "$T")
figure "B extra: enabled and removed in $MS ms while the stuck LUN waits"
check "B: adding and removing a LUN meanwhile is prompt ($MS ms)" test "$MS" -lt $((GOOD_LIMIT * 1000))
T=$(now)
answer
check "B: the stuck LUN serves once its monitor answers" wait_until 150 is_state stuck running
figure "B stuck: served $(ms_since "$T") ms after its conf named the real monitor"
check "B: the once stuck LUN answers I/O" quick_io "${DEV[stuck]:-/nonexistent}"

# Clean up.
i=1
for n in "${GOOD[@]}"; do
	[ -n "${DEV[$n]:-}" ] && loop_unexport "$(wwn $i)"
	[ -n "${BS[$n]:-}" ] && remove_backstore "${BS[$n]}"
	i=$((i + 1))
done
[ -n "${DEV[stuck]:-}" ] && loop_unexport "$(wwn 9)"
[ -n "${BS[stuck]:-}" ] && remove_backstore "${BS[stuck]}"
rmdir "$CFG/core/user_9" "$CFG/core/user_10" 2>/dev/null
stop_handler; SRC=$?; HANDLER_PID=""
check "gotcmu exits 0 on the final SIGTERM ($SRC)" test "$SRC" -eq 0
for n in good0 good1 stuck; do rbd rm "rbd/stall-$n" > /dev/null 2>&1; done
finish
