#!/bin/bash
# Runs INSIDE the guest (test-vm.sh boots it): the walking skeleton of issue 2 point 7.
#   gotcmu started; a user:file backstore created through configfs; exported on tcm_loop;
#   64 MiB of random data written with O_DIRECT and read back; a verifying write stream while
#   gotcmu is SIGKILLed and restarted, then every acknowledged write checked; the device removed
#   while gotcmu runs; gotcmu stopped with SIGTERM.
# MODE=fileio runs the same steps on LIO's own fileio backstore (no daemon: the kill is skipped),
# which proves the harness itself. Env: MODE (gotcmu|fileio), GOTCMU, GOTCMU_ARGS, ACKWRITER.
# Prints PASS/FAIL/SKIP per step (also to /out/summary.txt); exits 1 if any step failed.
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
. "$HERE/lib.sh"
MODE=${MODE:-gotcmu}
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
ACKWRITER=${ACKWRITER:-$REPO/build/bin/ackwriter}
WWN=naa.50014050000000a1
IMG=/tmp/skeleton.img
SIZE=$((256 << 20))             # 64 MiB for the data round trip, the rest for the write stream
STREAM_OFF=$((64 << 20))
STREAM_SECS=${STREAM_SECS:-25}
KILL_AFTER=${KILL_AFTER:-8}
OUT=/out/skeleton
mkdir -p "$OUT"

finish() {
	[ -n "${GOTCMU_PID:-}" ] && kill -KILL "$GOTCMU_PID" 2>/dev/null
	log "skeleton ($MODE): $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

log "skeleton: mode $MODE"
truncate -s "$SIZE" "$IMG"

# 1. The daemon.
if [ "$MODE" = gotcmu ]; then
	[ -x "$GOTCMU" ] || { fail "gotcmu starts: $GOTCMU missing (make build)"; finish; }
	check "gotcmu starts and stays up" start_gotcmu "$OUT/gotcmu-1.log" || { cat "$OUT/gotcmu-1.log"; finish; }
fi

# 2. The backstore, through configfs.
if [ "$MODE" = gotcmu ]; then
	BS=$(make_user_file 1 sk0 "$IMG" "$SIZE")
	check "user:file backstore enabled (gotcmu answered ADDED_DEVICE)" test -n "$BS" || finish
	UIO=$(uio_for "tcm-user/1/sk0/file/$IMG")
	check "uio device for the backstore exists ($UIO)" test -n "$UIO"
else
	BS=$(make_fileio 1 sk0 "$IMG" "$SIZE")
	check "fileio backstore enabled" test -n "$BS" || finish
fi

# 3. Exported on tcm_loop.
DEV=$(loop_export "$WWN" "$BS")
check "tcm_loop LUN appears as a disk (${DEV:-none})" test -b "$DEV" || finish
INQ=$(sg_inq "$DEV" 2>&1)
echo "$INQ" > "$OUT/inquiry.txt"
check "INQUIRY vendor is LIO-ORG" grep -q "Vendor identification: LIO-ORG" <<< "$INQ"
if [ "$MODE" = gotcmu ]; then
	check "INQUIRY product is TCMU device" grep -q "Product identification: TCMU device" <<< "$INQ"
fi
check "capacity is $SIZE bytes" test "$(blockdev --getsize64 "$DEV")" = "$SIZE"

# 4. 64 MiB of random data, O_DIRECT both ways.
dd if=/dev/urandom of=/tmp/pattern bs=1M count=64 status=none
START=$(date +%s.%N)
dd if=/tmp/pattern of="$DEV" bs=1M oflag=direct status=none
W=$(date +%s.%N)
dd if="$DEV" of=/tmp/readback bs=1M count=64 iflag=direct status=none
R=$(date +%s.%N)
log "64 MiB written in $(awk "BEGIN{printf \"%.1f\", $W - $START}") s, read in $(awk "BEGIN{printf \"%.1f\", $R - $W}") s"
check "64 MiB random data read back through the LUN matches" cmp /tmp/pattern /tmp/readback
check "the same 64 MiB landed in the backing file" cmp -n $((64 << 20)) /tmp/pattern "$IMG"
rm -f /tmp/readback

# 5. A verifying write stream; gotcmu SIGKILLed in the middle and restarted.
LOGF=/tmp/ack.log
"$ACKWRITER" write -dev "$DEV" -log "$LOGF" -offset "$STREAM_OFF" -depth 16 -duration "${STREAM_SECS}s" \
	-give-up 120s > "$OUT/ackwriter-write.txt" 2>&1 &
WRITER=$!
sleep "$KILL_AFTER"
check "write stream running before the kill" kill -0 "$WRITER"
if [ "$MODE" = gotcmu ]; then
	BEFORE=$(grep -c '^A ' "$LOGF")
	kill -KILL "$GOTCMU_PID"; wait "$GOTCMU_PID" 2>/dev/null; GOTCMU_PID=""
	log "gotcmu SIGKILLed with $BEFORE writes acknowledged so far"
	sleep 1
	check "gotcmu restarted after SIGKILL" start_gotcmu "$OUT/gotcmu-2.log"
	AT_RESTART=$(grep -c '^A ' "$LOGF")
else
	skip "SIGKILL and restart of gotcmu mid-stream: fileio mode has no daemon"
	AT_RESTART=$(grep -c '^A ' "$LOGF")
fi
AFTER="after the restart"
[ "$MODE" = gotcmu ] || AFTER="after the point of the kill"
wait "$WRITER"; WRC=$?
cat "$OUT/ackwriter-write.txt"
check "write stream completed (no write failed for good)" test "$WRC" -eq 0
END=$(grep -c '^A ' "$LOGF")
check "writes acknowledged $AFTER ($((END - AT_RESTART)))" test "$END" -gt "$AT_RESTART"
"$ACKWRITER" verify -dev "$DEV" -log "$LOGF" > "$OUT/ackwriter-verify.txt" 2>&1; VRC=$?
cat "$OUT/ackwriter-verify.txt"
check "every acknowledged write reads back intact ($(tail -1 "$OUT/ackwriter-verify.txt" | sed 's/^ackwriter verify: //'))" test "$VRC" -eq 0

# The verifier must be able to fail: destroy the newest acknowledged block and expect a loss.
read -r _ BLK _ <<< "$(grep '^A ' "$LOGF" | tail -1)"
dd if=/dev/zero of="$DEV" bs=4096 seek=$((STREAM_OFF / 4096 + BLK)) count=1 oflag=direct conv=notrunc status=none
"$ACKWRITER" verify -dev "$DEV" -log "$LOGF" > "$OUT/ackwriter-verify-damaged.txt" 2>&1; DRC=$?
reports_loss() { [ "$DRC" -eq 1 ] && grep -q ' lost=[1-9]' "$OUT/ackwriter-verify-damaged.txt"; }
check "verifier reports a destroyed acknowledged write (block $BLK)" reports_loss
cp "$LOGF" "$OUT/ack.log"

# 6. The device removed while gotcmu runs.
check "tcm_loop LUN removed" loop_unexport "$WWN"
check "backstore removed (rmdir returned)" remove_backstore "$BS"
if [ "$MODE" = gotcmu ]; then
	check "uio device gone" test -z "$(uio_for "tcm-user/1/sk0/")"
	check "gotcmu still running after the removal" kill -0 "$GOTCMU_PID"
	check "gotcmu logged the removal" grep -qi 'remov' "$OUT/gotcmu-2.log"
	stop_gotcmu; SRC=$?
	check "gotcmu exits 0 on SIGTERM (status $SRC)" test "$SRC" -eq 0
	rmdir "$CFG/core/user_1" 2>/dev/null
else
	rmdir "$CFG/core/fileio_1" 2>/dev/null
fi
rm -f "$IMG" /tmp/pattern
finish
