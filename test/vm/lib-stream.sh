# shellcheck shell=bash
# Guest helper (source it after lib.sh): verifying write streams (test/cmd/ackwriter) for the
# suites that fault or switch the handler under load. Needs ACKWRITER, OUT (where each stream's
# output goes) and FIG (the figures file each stream_end appends its line to).
declare -A WPID

# acked NAME: how many writes the stream has acknowledged so far.
acked() {
	local n
	n=$(grep -c '^A ' "/tmp/$1.ack" 2>/dev/null)
	echo "${n:-0}"
}
acked_at_least() { [ "$(acked "$1")" -ge "$2" ]; }

# stream NAME DEV [ACKWRITER ARGS...]: a verifying write stream in the background. It runs until
# stream_end stops it (SIGTERM: in-flight writes finish, nothing new starts), at most 10 minutes.
stream() {
	local name=$1 dev=$2
	shift 2
	"$ACKWRITER" write -dev "$dev" -log "/tmp/$name.ack" -duration 600s -give-up 180s "$@" \
		> "$OUT/$name-write.txt" 2>&1 &
	WPID[$name]=$!
}

# recovered NAME MARK [SECONDS]: wait (default up to 120 s) until the stream has 200 more
# acknowledged writes than MARK, the count when the fault ended; prints how long it took.
recovered() {
	local name=$1 mark=$2 t0
	t0=$(date +%s%N)
	wait_until "${3:-120}" acked_at_least "$name" $((mark + 200))
	local rc=$?
	echo "$name: $(($(acked "$name") - mark)) writes acknowledged $((($(date +%s%N) - t0) / 1000000)) ms after the fault ended"
	return $rc
}

# stream_end NAME DEV MARK [VERIFY ARGS...]: stop the stream, verify every acknowledged write,
# print the figures; MARK is the acknowledged count when the fault ended.
stream_end() {
	local name=$1 dev=$2 mark=$3 wrc vrc line end
	shift 3
	kill -TERM "${WPID[$name]}" 2>/dev/null
	wait "${WPID[$name]}"; wrc=$?
	end=$(acked "$name")
	"$ACKWRITER" verify -dev "$dev" -log "/tmp/$name.ack" "$@" > "$OUT/$name-verify.txt" 2>&1; vrc=$?
	line=$(grep -o 'acknowledged=.*' "$OUT/$name-verify.txt" | tail -1)
	echo "FAULT $name: ${line:-verify failed} acknowledged-after-fault=$((end - mark)) write-$(grep -o 'errors=[0-9]*' "$OUT/$name-write.txt" | tail -1)" | tee -a "$FIG"
	check "$name: write stream ended without a write failing for good" test "$wrc" -eq 0
	check "$name: writes acknowledged after the fault ($((end - mark)))" test "$end" -gt "$mark"
	check "$name: every acknowledged write read back intact (lost=0)" test "$vrc" -eq 0
}
