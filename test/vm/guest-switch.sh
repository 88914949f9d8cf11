#!/bin/bash
# Runs INSIDE the guest (test-vm.sh's "switch" suite): issue 14 point 6, what an operator does to
# switch a running gateway from tcmu-runner to gotcmu, and back, measured with a LUN under load.
# A user:rbd LUN (Ceph inside the guest, lib-ceph.sh) served by Debian's tcmu-runner is written
# through tcm_loop by a verifying stream (test/cmd/ackwriter, O_DIRECT|O_DSYNC, lib-stream.sh);
# then, with the stream running:
#   1. tcmu-runner is stopped with SIGTERM (what `systemctl stop tcmu-runner` does, and what
#      dpkg does when the gotcmu package replaces tcmu-runner), then gotcmu is started: it must
#      adopt the LUN the kernel kept (`gotcmu status` lists it) and the stream must go on;
#   2. back: gotcmu stopped with SIGTERM, tcmu-runner started again, the stream goes on;
#   3. the stream is stopped and every acknowledged write read back through the LUN (lost = 0),
#      and no write may have failed for good (ackwriter retries a failed write for up to 180 s,
#      as an initiator's retries would).
# Figures, one line per switch (into /out/switch/figures.txt): how long from the old daemon's
# SIGTERM until the new one had acknowledged 50 more writes, and the write errors the stream saw.
# gotcmu only: other MODEs SKIP. Env: MODE, GOTCMU, GOTCMU_ARGS, ACKWRITER.
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
# shellcheck source=test/vm/lib-ceph.sh
. "$HERE/lib-ceph.sh"
# shellcheck source=test/vm/lib-stream.sh
. "$HERE/lib-stream.sh"
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
ACKWRITER=${ACKWRITER:-$REPO/build/bin/ackwriter}
if [ "${MODE:-gotcmu}" != gotcmu ]; then
	skip "switch suite: it switches between tcmu-runner and gotcmu; mode $MODE is not gotcmu"
	exit 0
fi
OUT=/out/switch
FIG=$OUT/figures.txt
IMG=switch
SIZE=$((256 << 20))
WWN=naa.50014050000fb001
mkdir -p "$OUT"
: > "$FIG"
NLOG=0
BS=""
SWITCH_MARK=0

finish() {
	[ -n "${WPID[switch]:-}" ] && kill -TERM "${WPID[switch]}" 2>/dev/null
	[ -n "$BS" ] && { loop_unexport "$WWN"; remove_backstore "$BS"; }
	[ -n "${HANDLER_PID:-}" ] && { stop_handler || log "switch: $HANDLER did not stop cleanly"; }
	log "switch: $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

# serve NAME: start NAME (gotcmu or tcmu-runner) with a numbered log in $OUT.
serve() {
	NLOG=$((NLOG + 1))
	HANDLER=$1
	start_handler "$OUT/$NLOG-$1.log"
}

# switch_to NAME: SIGTERM the running handler, start NAME, and wait for 50 more acknowledged
# writes; prints the figures line.
switch_to() {
	local from=$HANDLER to=$1 mark t0 ms errs0 errs1
	errs0=$(grep -c '^ackwriter: write block' "$OUT/switch-write.txt" 2>/dev/null)
	t0=$(date +%s%N)
	check "switch $from to $to: $from stopped by SIGTERM" stop_handler || return 1
	mark=$(acked switch)
	SWITCH_MARK=$mark
	check "switch $from to $to: $to started" serve "$to" || return 1
	if wait_until 180 acked_at_least switch $((mark + 50)); then
		ms=$((($(date +%s%N) - t0) / 1000000))
		errs1=$(grep -c '^ackwriter: write block' "$OUT/switch-write.txt" 2>/dev/null)
		echo "SWITCH $from to $to: 50 writes acknowledged by $to ${ms} ms after $from's SIGTERM; write errors meanwhile: $((${errs1:-0} - ${errs0:-0}))" | tee -a "$FIG"
		pass "switch $from to $to: the stream goes on through $to (${ms} ms)"
	else
		fail "switch $from to $to: fewer than 50 writes acknowledged through $to in 180 s"
		return 1
	fi
}

command -v tcmu-runner >/dev/null || { fail "switch: tcmu-runner not installed (test/deps.sh installs it)"; finish; }
[ -x "$GOTCMU" ] || { fail "switch: $GOTCMU not found (make build)"; finish; }
[ -x "$ACKWRITER" ] || { fail "switch: $ACKWRITER not found"; finish; }
ceph_up || { fail "switch: micro Ceph"; finish; }
rbd_image "$IMG" "$SIZE" || { fail "switch: rbd create $IMG"; finish; }

check "tcmu-runner started" serve tcmu-runner || finish
BS=$(make_user_file 7 switch "rbd/$IMG" "$SIZE" rbd)
check "tcmu-runner: user:rbd backstore enabled" test -n "$BS" || finish
DEV=$(loop_export "$WWN" "$BS")
check "tcmu-runner: user:rbd LUN on tcm_loop (${DEV:-none})" test -b "$DEV" || finish
stream switch "$DEV" -blocks 4096 -depth 8
check "tcmu-runner serves the stream (200 writes acknowledged)" wait_until 120 acked_at_least switch 200 || finish

switch_to gotcmu || finish
listed() { "$GOTCMU" status 2>/dev/null | grep -q "rbd/$IMG"; }
check "gotcmu adopted the LUN tcmu-runner served (gotcmu status lists rbd/$IMG)" listed
adopted() { grep -q "$(basename "$BS")" "$OUT/$NLOG-gotcmu.log"; }
check "gotcmu's log names the adopted device" adopted
check "gotcmu serves 200 more writes" wait_until 120 acked_at_least switch $(($(acked switch) + 200))

switch_to tcmu-runner || finish
check "tcmu-runner serves 200 more writes after the switch back" wait_until 120 acked_at_least switch $(($(acked switch) + 200))

# The figures line counts what was acknowledged after the last switch.
stream_end switch "$DEV" "$SWITCH_MARK"
finish
