#!/bin/bash
# Runs INSIDE the guest (test-vm.sh [-m gotcmu|tcmu-runner] hard): issue 15 point 1's hard faults
# (test/cmd/hardfaults: an OSD, two OSDs, the monitor SIGKILLed; every OSD frozen) against the
# handler MODE selects, serving a user:rbd LUN over tcm_loop from a cluster of 3 memstore OSDs
# (pool size 3, min_size 2). `make test-faults` runs the same faults against gotcmu inside
# guest-faults.sh; this suite exists to run them against Debian's tcmu-runner, for comparison.
# Env: MODE, GOTCMU, GOTCMU_ARGS, ACKWRITER, HARDFAULTS, FAULTS (a subset of the faults).
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
select_handler
ACKWRITER=${ACKWRITER:-$REPO/build/bin/ackwriter}
HARDFAULTS=${HARDFAULTS:-$REPO/build/bin/hardfaults}
FAULTS=${FAULTS:-mon-sigkill osd-sigkill below-min-size osd-freeze}
OUT=/out/hard
CEPH3=/tmp/ceph3
mkdir -p "$OUT"

finish() {
	[ -n "${HANDLER_PID:-}" ] && { stop_handler || log "$HANDLER did not stop cleanly"; }
	"$REPO/test/micro-ceph.sh" stop "$CEPH3" >/dev/null 2>&1
	log "hard: $FAILED failed"
	exit $((FAILED > 0))
}

handler_present || { fail "hard: no handler for mode ${MODE:-gotcmu}"; finish; }
if ! OSDS=3 MON_PORT_V2=3310 MON_PORT_V1=6790 "$REPO/test/micro-ceph.sh" start "$CEPH3" $((384 << 20)) > "$OUT/ceph-start.log" 2>&1 ||
	! CEPH_CONF=$CEPH3/ceph.conf rbd create rbd/hard --size 128M >> "$OUT/ceph-start.log" 2>&1; then
	fail "hard: micro Ceph with 3 OSDs did not start"
	tail -20 "$OUT/ceph-start.log"
	finish
fi
check "hard: $HANDLER starts" start_handler "$OUT/$HANDLER.log" || finish
BS=$(make_user_file 7 hard0 "rbd/hard;osd_op_timeout=10;conf=$CEPH3/ceph.conf" $((128 << 20)) rbd)
DEV=""
[ -n "$BS" ] && DEV=$(loop_export naa.50014050000fa007 "$BS")
check "hard: user:rbd LUN of $HANDLER on tcm_loop (${DEV:-none})" test -b "$DEV" || finish
# shellcheck disable=SC2086 # FAULTS is a list of names
timeout -k 10 1200 "$HARDFAULTS" -dev "$DEV" -ceph "$CEPH3" -micro-ceph "$REPO/test/micro-ceph.sh" \
	-ackwriter "$ACKWRITER" -device hard0 -out "$OUT" -summary "$SUMMARY" -figures "$OUT/figures.txt" \
	-osd-op-timeout 10s -handler-pid "$HANDLER_PID" $FAULTS
HRC=$?
[ "$HRC" -le 1 ] || fail "hard: hardfaults did not complete (exit $HRC)"
handler_log "$OUT/$HANDLER.log" > "$OUT/$HANDLER-all.log"
finish
