#!/bin/bash
# Runs INSIDE the guest (test-vm.sh boots it): libiscsi's iscsi-test-cu, SCSI family, against two
# LUNs of equal size behind one iSCSI target on 127.0.0.1, in the same boot:
#   LUN 0: LIO's own fileio backstore (the baseline)   LUN 1: gotcmu's user:file (the candidate)
# Both are backed by a file on the guest's tmpfs. Left out: the iSCSI.* transport family (not
# asked for: --test=SCSI...) and the reservation suites LIO core answers itself (Prin*, Prout*,
# Reserve6*), which never reach a backstore. The host compares the XML with test/cmd/cucompare.
# MODE=tcmu-runner makes the candidate Debian's tcmu-runner (user:qcow on a raw file), the
# reference handler; MODE=fileio a second LIO fileio LUN (proves the harness without a daemon).
# Output: /out/cu/<baseline>/<suite>/ and /out/cu/<candidate>/<suite>/ (run_cu in lib.sh: XML,
#         stdout.txt, seconds; "complete" beside the suites when every suite left results),
#         /out/cu/names ("baseline-dir candidate-dir").
# Env: MODE, GOTCMU, GOTCMU_ARGS, CU_TESTS (comma-separated suites), CU_SUITE_TIMEOUT, CU_BUDGET.
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
MODE=${MODE:-gotcmu}
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
select_handler
IQN=iqn.2003-01.org.gotcmu:cu
SIZE=$((128 << 20))
OUT=/out/cu
mkdir -p "$OUT"

finish() {
	[ -n "${HANDLER_PID:-}" ] && { stop_handler || log "$HANDLER did not stop cleanly"; }
	log "iscsi-test-cu ($MODE): $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

log "iscsi-test-cu: mode $MODE"
truncate -s "$SIZE" /tmp/cu-lio.img /tmp/cu-cand.img
BASE=$(make_fileio 2 cu_lio /tmp/cu-lio.img "$SIZE")
check "baseline LIO fileio backstore enabled" test -n "$BASE" || finish
if [ -n "$HANDLER" ]; then
	handler_present || { fail "$HANDLER starts: not found (GOTCMU=$GOTCMU; make build)"; finish; }
	check "$HANDLER starts and stays up" start_handler "$OUT/$HANDLER.log" || finish
	CAND=$(make_user_backstore 3 "cu_$HANDLER_SUBTYPE" /tmp/cu-cand.img "$SIZE")
	check "candidate $HANDLER user:$HANDLER_SUBTYPE backstore enabled" test -n "$CAND" || finish
	NAMES="lio-fileio $HANDLER"
else
	CAND=$(make_fileio 3 cu_lio2 /tmp/cu-cand.img "$SIZE")
	check "candidate (second LIO fileio) backstore enabled" test -n "$CAND" || finish
	NAMES="lio-fileio lio-fileio-2"
fi
check "iSCSI target on 127.0.0.1:3260 with both LUNs" iscsi_export "$IQN" "$BASE" "$CAND" || finish
echo "$NAMES" > "$OUT/names"

log "suites: $(cu_suite_list | paste -sd' ')"
lun=0
for name in $NAMES; do
	if RES=$(run_cu "$OUT/$name" "iscsi://127.0.0.1/$IQN/$lun"); then
		touch "$OUT/$name/complete"
		pass "iscsi-test-cu against LUN $lun ($name): $RES"
	else
		fail "iscsi-test-cu against LUN $lun ($name): $RES"
	fi
	lun=$((lun + 1))
done
if [ -n "$HANDLER" ]; then
	check "$HANDLER still running after the test suite" kill -0 "$HANDLER_PID"
fi
finish
