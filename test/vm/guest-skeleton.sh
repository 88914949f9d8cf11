#!/bin/bash
# Runs INSIDE the guest (test-vm.sh boots it): the walking skeleton of issue 2 point 7.
#   gotcmu started; a user:file backstore created through configfs; exported on tcm_loop;
#   64 MiB of random data written with O_DIRECT and read back; a verifying write stream while
#   gotcmu is SIGKILLed and restarted, then every acknowledged write checked; the device removed
#   while gotcmu runs; gotcmu stopped with SIGTERM.
# MODE picks what serves the LUN: gotcmu (default); tcmu-runner (the reference handler through
# the very same steps, user:qcow on a raw file); fileio (LIO's in-kernel backstore: no daemon, so
# no kill). Env: MODE, GOTCMU, GOTCMU_ARGS, ACKWRITER, NETLINK_TEST, STREAM_SECS, KILL_AFTER.
# Prints PASS/FAIL/SKIP per step (also to /out/summary.txt); exits 1 if any step failed.
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
MODE=${MODE:-gotcmu}
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
ACKWRITER=${ACKWRITER:-$REPO/build/bin/ackwriter}
NETLINK_TEST=${NETLINK_TEST:-$REPO/build/bin/netlink.test}
select_handler
WWN=naa.50014050000000a1
IMG=/tmp/skeleton.img
SIZE=$((256 << 20))             # 64 MiB for the data round trip, the rest for the write stream
STREAM_OFF=$((64 << 20))
STREAM_SECS=${STREAM_SECS:-25}
KILL_AFTER=${KILL_AFTER:-8}
OUT=/out/skeleton
mkdir -p "$OUT"

finish() {
	[ -n "${HANDLER_PID:-}" ] && kill -KILL "$HANDLER_PID" 2>/dev/null
	log "skeleton ($MODE): $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

log "skeleton: mode $MODE"
truncate -s "$SIZE" "$IMG"

# 0. netlink's tests against the real target_core_user (they skip on a host without it), run
# before any handler is up: they play the daemon themselves.
if [ "$MODE" = gotcmu ]; then
	"$NETLINK_TEST" -test.run '^TestKernel' -test.v > "$OUT/netlink-kernel-tests.txt" 2>&1
	NRC=$?
	check "netlink tests on the real TCM-USER family pass (exit $NRC)" test "$NRC" -eq 0
	check "netlink tests on the real TCM-USER family: 3 ran (Dial, EventsAndReplies, OverrunIsReported), none skipped" \
		test "$(grep -c -- '^--- PASS: TestKernel' "$OUT/netlink-kernel-tests.txt")" -eq 3 -a \
		"$(grep -c -- '--- SKIP' "$OUT/netlink-kernel-tests.txt")" -eq 0
fi

# 1. The daemon, and the backstore through configfs.
if [ -n "$HANDLER" ]; then
	handler_present || { fail "$HANDLER starts: not found (GOTCMU=$GOTCMU; make build)"; finish; }
	check "$HANDLER starts and stays up" start_handler "$OUT/$HANDLER-1.log" || { handler_log "$OUT/$HANDLER-1.log"; finish; }
	BS=$(make_user_backstore 1 sk0 "$IMG" "$SIZE")
	check "user:$HANDLER_SUBTYPE backstore enabled ($HANDLER answered ADDED_DEVICE)" test -n "$BS" || finish
	UIO=$(uio_for "tcm-user/1/sk0/$HANDLER_SUBTYPE/$IMG")
	check "uio device for the backstore exists (${UIO:-none})" test -n "$UIO"
elif [ "$MODE" = fileio ]; then
	BS=$(make_fileio 1 sk0 "$IMG" "$SIZE")
	check "fileio backstore enabled" test -n "$BS" || finish
else
	fail "unknown MODE $MODE"; finish
fi

# 2. Exported on tcm_loop.
DEV=$(loop_export "$WWN" "$BS")
check "tcm_loop LUN appears as a disk (${DEV:-none})" test -b "$DEV" || finish
INQ=$(sg_inq "$DEV" 2>&1)
echo "$INQ" > "$OUT/inquiry.txt"
check "INQUIRY vendor is LIO-ORG" grep -q "Vendor identification: LIO-ORG" <<< "$INQ"
if [ "$MODE" = gotcmu ]; then
	check "INQUIRY product is TCMU device" grep -q "Product identification: TCMU device" <<< "$INQ"
fi
check "capacity is $SIZE bytes" test "$(blockdev --getsize64 "$DEV")" = "$SIZE"

# 3. 64 MiB of random data, O_DIRECT both ways.
dd if=/dev/urandom of=/tmp/pattern bs=1M count=64 status=none
START=$(date +%s.%N)
# Bounded: a handler that never answers makes every command wait for the SCSI timeouts.
timeout -k 10 300 dd if=/tmp/pattern of="$DEV" bs=1M oflag=direct status=none
W=$(date +%s.%N)
timeout -k 10 300 dd if="$DEV" of=/tmp/readback bs=1M count=64 iflag=direct status=none
R=$(date +%s.%N)
log "64 MiB written in $(awk "BEGIN{printf \"%.1f\", $W - $START}") s, read in $(awk "BEGIN{printf \"%.1f\", $R - $W}") s"
check "64 MiB random data read back through the LUN matches" cmp /tmp/pattern /tmp/readback
check "the same 64 MiB landed in the backing file" cmp -n $((64 << 20)) /tmp/pattern "$IMG"
rm -f /tmp/readback

# 4. A verifying write stream; the handler SIGKILLed in the middle and restarted.
LOGF=/tmp/ack.log
timeout -k 10 $((STREAM_SECS + 300)) "$ACKWRITER" write -dev "$DEV" -log "$LOGF" -offset "$STREAM_OFF" \
	-depth 16 -duration "${STREAM_SECS}s" -give-up 120s > "$OUT/ackwriter-write.txt" 2>&1 &
WRITER=$!
sleep "$KILL_AFTER"
check "write stream running before the kill" kill -0 "$WRITER"
if [ -n "$HANDLER" ]; then
	BEFORE=$(grep -c '^A ' "$LOGF")
	kill -KILL "$HANDLER_PID"; wait "$HANDLER_PID" 2>/dev/null; HANDLER_PID=""
	log "$HANDLER SIGKILLed with $BEFORE writes acknowledged so far"
	sleep 1
	check "$HANDLER restarted after SIGKILL" start_handler "$OUT/$HANDLER-2.log"
	AFTER="after the restart"
else
	skip "SIGKILL and restart of the handler mid-stream: fileio mode has no daemon"
	AFTER="after the point of the kill"
fi
AT_RESTART=$(grep -c '^A ' "$LOGF")
wait "$WRITER"; WRC=$?
cat "$OUT/ackwriter-write.txt"
check "write stream completed (no write failed for good)" test "$WRC" -eq 0
END=$(grep -c '^A ' "$LOGF")
check "writes acknowledged $AFTER ($((END - AT_RESTART)))" test "$END" -gt "$AT_RESTART"
timeout -k 10 300 "$ACKWRITER" verify -dev "$DEV" -log "$LOGF" > "$OUT/ackwriter-verify.txt" 2>&1; VRC=$?
cat "$OUT/ackwriter-verify.txt"
check "every acknowledged write reads back intact ($(tail -1 "$OUT/ackwriter-verify.txt" | sed 's/^ackwriter verify: //'))" test "$VRC" -eq 0

# The verifier must be able to fail: destroy the newest acknowledged block and expect a loss.
read -r _ BLK _ <<< "$(grep '^A ' "$LOGF" | tail -1)"
if [ -n "$BLK" ]; then
	dd if=/dev/zero of="$DEV" bs=4096 seek=$((STREAM_OFF / 4096 + BLK)) count=1 oflag=direct conv=notrunc status=none
	timeout -k 10 300 "$ACKWRITER" verify -dev "$DEV" -log "$LOGF" > "$OUT/ackwriter-verify-damaged.txt" 2>&1; DRC=$?
	reports_loss() { [ "$DRC" -eq 1 ] && grep -q ' lost=[1-9]' "$OUT/ackwriter-verify-damaged.txt"; }
	check "verifier reports a destroyed acknowledged write (block $BLK)" reports_loss
else
	fail "verifier reports a destroyed acknowledged write: no write was acknowledged to destroy"
fi
cp "$LOGF" "$OUT/ack.log"

# 5. The device removed while the handler runs.
check "tcm_loop LUN removed" loop_unexport "$WWN"
check "backstore removed (rmdir returned)" remove_backstore "$BS"
if [ -n "$HANDLER" ]; then
	check "uio device gone" test -z "$(uio_for "tcm-user/1/sk0/")"
	check "$HANDLER still running after the removal" kill -0 "$HANDLER_PID"
	if [ "$MODE" = gotcmu ]; then
		logged_removal() { handler_log "$OUT/gotcmu-2.log" | grep -qi 'remov'; }
		check "gotcmu logged the removal" logged_removal
	fi
	stop_handler; SRC=$?
	# gotcmu promises exit status 0 on SIGTERM; of tcmu-runner we only ask that it ends.
	if [ "$MODE" = gotcmu ]; then
		check "gotcmu exits 0 on SIGTERM (status $SRC)" test "$SRC" -eq 0
	else
		check "$HANDLER ends on SIGTERM (status $SRC)" test "$SRC" -ne 124
	fi
	rmdir "$CFG/core/user_1" 2>/dev/null
else
	rmdir "$CFG/core/fileio_1" 2>/dev/null
fi
rm -f "$IMG" /tmp/pattern
finish
