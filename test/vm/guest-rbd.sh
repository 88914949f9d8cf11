#!/bin/bash
# Runs INSIDE the guest (test-vm.sh boots it): issue 4 point 8, the user:rbd LUN in the real
# kernel, with Ceph inside the guest (lib-ceph.sh: one micro cluster per boot, shared).
#   1. Data round trip through tcm_loop: a 256 MiB image as a user:rbd backstore made through
#      configfs (dev_config rbd/rbd/<image>, as rtslib writes it); 64 MiB of random data and the
#      last MiB of the LUN written with O_DIRECT, read back through the LUN and out of the image
#      with `rbd export` (the data is in Ceph, not only in the handler); SYNCHRONIZE CACHE; a
#      discard reads back as zeros; the backstore removed while the handler runs.
#   2. The iscsi-test-cu comparison the file LUN passes (guest-iscsi-cu.sh, lib.sh's run_cu): SCSI
#      family minus Prin*/Prout*/Reserve6* against a 128 MiB user:rbd LUN behind its own iSCSI
#      target on 127.0.0.1, compared test by test with test/cmd/cucompare (run here, in the guest)
#      to the LIO fileio baseline, a 128 MiB file on tmpfs. The baseline is the cu suite's run in
#      this boot when there is one (/out/cu/lio-fileio: same kernel, suites and size), so it is
#      not run twice; run alone, this suite runs its own. Every test passing on LIO fileio must
#      pass on user:rbd. One write through tcm_loop takes the image's exclusive lock first (see
#      take_lock). Table: /out/iscsi-test-cu-rbd.md; runs: /out/cu-rbd/.
# MODE=gotcmu (default) tests bin/gotcmu; MODE=tcmu-runner Debian's tcmu-runner with its rbd
# handler (the reference's figures through the same steps); MODE=fileio has no user:rbd: SKIP.
# Env: MODE, GOTCMU, GOTCMU_ARGS, ACKWRITER (cucompare is built next to it), CU_TESTS,
#      CU_SUITE_TIMEOUT, CU_BUDGET (lib.sh's run_cu).
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
# shellcheck source=test/vm/lib-ceph.sh
. "$HERE/lib-ceph.sh"
MODE=${MODE:-gotcmu}
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
TOOLS=$(dirname "${ACKWRITER:-$REPO/build/bin/ackwriter}")
select_handler
OUT=/out/rbd
WWN=naa.50014050000000b1
IQN=iqn.2003-01.org.gotcmu:cu-rbd
RT_IMG=vm-rt
RT_SIZE=$((256 << 20))
CU_IMG=vm-cu
CU_SIZE=$((128 << 20))   # the size of the cu suite's LUNs: the shared baseline ran on one of these
METRICS=http://127.0.0.1:9560/metrics
mkdir -p "$OUT"

# busy_count DEVICE: how many commands gotcmu answered BUSY on DEVICE (its metrics).
busy_count() {
	curl -sf --max-time 10 "$METRICS" | grep '^gotcmu_status_total{' | grep -F "device=\"$1\"" |
		grep -F 'status="busy"' | awk '{s += $2} END {printf "%d\n", s}'
}

# iscsi_unexport IQN: take down a target made by lib.sh's iscsi_export (after its sessions ended).
iscsi_unexport() {
	local tpg=$CFG/iscsi/$1/tpgt_1 lun
	put 0 "$tpg/enable" || return 1
	for lun in "$tpg"/lun/lun_*; do
		find "$lun" -maxdepth 1 -type l -delete && rmdir "$lun" || return 1
	done
	rmdir "$tpg"/np/* && rmdir "$tpg" && rmdir "$CFG/iscsi/$1"
}

finish() {
	[ -n "${HANDLER_PID:-}" ] && { stop_handler || log "$HANDLER did not stop cleanly"; }
	ceph_logs
	rm -f /tmp/rbd-pattern /tmp/rbd-tail /tmp/rbd-readback
	log "user:rbd ($MODE): $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

if [ -z "$HANDLER" ]; then
	skip "user:rbd suite: mode $MODE has no user-backstore handler to serve rbd"
	exit 0
fi
log "user:rbd: mode $MODE"
handler_present || { fail "$HANDLER starts: not found (GOTCMU=$GOTCMU; make build)"; finish; }
check "micro Ceph cluster running in the guest" ceph_up || finish
check "rbd images rbd/$RT_IMG ($((RT_SIZE >> 20)) MiB) and rbd/$CU_IMG ($((CU_SIZE >> 20)) MiB) created" \
	eval 'rbd_image "$RT_IMG" "$RT_SIZE" && rbd_image "$CU_IMG" "$CU_SIZE"' || finish
check "$HANDLER starts and stays up" start_handler "$OUT/$HANDLER.log" || { handler_log "$OUT/$HANDLER.log"; finish; }

# 1. Data round trip through tcm_loop.
BS=$(make_user_file 4 rbd_rt "rbd/$RT_IMG" "$RT_SIZE" rbd)
check "user:rbd backstore on rbd/$RT_IMG enabled ($HANDLER answered ADDED_DEVICE)" test -n "$BS" || finish
UIO=$(uio_for "tcm-user/4/rbd_rt/rbd/rbd/$RT_IMG")
check "uio device for the backstore exists (${UIO:-none})" test -n "$UIO"
DEV=$(loop_export "$WWN" "$BS")
check "tcm_loop LUN appears as a disk (${DEV:-none})" test -b "$DEV" || finish
INQ=$(sg_inq "$DEV" 2>&1)
echo "$INQ" > "$OUT/inquiry.txt"
check "INQUIRY vendor is LIO-ORG" grep -q "Vendor identification: LIO-ORG" <<< "$INQ"
if [ "$MODE" = gotcmu ]; then
	check "INQUIRY product is TCMU device" grep -q "Product identification: TCMU device" <<< "$INQ"
fi
check "capacity is $RT_SIZE bytes" test "$(blockdev --getsize64 "$DEV")" = "$RT_SIZE"

dd if=/dev/urandom of=/tmp/rbd-pattern bs=1M count=64 status=none
dd if=/dev/urandom of=/tmp/rbd-tail bs=1M count=1 status=none
START=$(date +%s.%N)
dd if=/tmp/rbd-pattern of="$DEV" bs=1M oflag=direct status=none &&
	dd if=/tmp/rbd-tail of="$DEV" bs=1M seek=$(((RT_SIZE >> 20) - 1)) oflag=direct status=none
check "65 MiB written with O_DIRECT (first 64 MiB and the last MiB)" test $? -eq 0
W=$(date +%s.%N)
dd if="$DEV" of=/tmp/rbd-readback bs=1M count=64 iflag=direct status=none
R=$(date +%s.%N)
log "64 MiB written in $(awk "BEGIN{printf \"%.1f\", $W - $START}") s, read in $(awk "BEGIN{printf \"%.1f\", $R - $W}") s"
check "64 MiB random data read back through the LUN matches" cmp /tmp/rbd-pattern /tmp/rbd-readback
tail_matches() { dd if="$DEV" bs=1M skip=$(((RT_SIZE >> 20) - 1)) iflag=direct status=none | cmp - /tmp/rbd-tail; }
check "the last MiB of the LUN reads back" tail_matches
in_image() { rbd export "rbd/$RT_IMG" - 2>/dev/null | cmp -n $((64 << 20)) - /tmp/rbd-pattern; }
check "the same 64 MiB are in the Ceph image (rbd export)" in_image
tail_in_image() { rbd export "rbd/$RT_IMG" - 2>/dev/null | tail -c $((1 << 20)) | cmp - /tmp/rbd-tail; }
check "the last MiB is at the end of the Ceph image" tail_in_image
check "SYNCHRONIZE CACHE succeeds (sg_sync)" sg_sync "$DEV"

# UNMAP: sd enables discard only if the handler's VPD pages advertise it (SBC-4 6.6.4, B0/B2).
SD=$(basename "$DEV")
if [ "$(cat "/sys/block/$SD/queue/discard_max_bytes")" -gt 0 ]; then
	discard_zeroes() {
		blkdiscard -o 0 -l $((4 << 20)) "$DEV" &&
			dd if="$DEV" bs=1M count=4 iflag=direct status=none | cmp -n $((4 << 20)) - /dev/zero &&
			rbd export "rbd/$RT_IMG" - 2>/dev/null | cmp -n $((4 << 20)) - /dev/zero
	}
	check "discard of the first 4 MiB reads back as zeros, on the LUN and in the image" discard_zeroes
	check "the data after the discarded range is untouched" \
		cmp -i $((4 << 20)) -n $((60 << 20)) /tmp/rbd-pattern "$DEV"
else
	fail "the LUN advertises no discard (UNMAP): /sys/block/$SD/queue/discard_max_bytes is 0"
fi
rm -f /tmp/rbd-readback

check "tcm_loop LUN removed" loop_unexport "$WWN"
check "backstore removed (rmdir returned)" remove_backstore "$BS"
check "uio device gone" test -z "$(uio_for "tcm-user/4/rbd_rt/")"
check "$HANDLER still running after the removal" kill -0 "$HANDLER_PID" || finish

# 2. iscsi-test-cu: LIO fileio (shared baseline) vs user:rbd.
CU=/out/cu-rbd
mkdir -p "$CU"
CAND_NAME=$HANDLER-rbd
CAND=$(make_user_file 5 cu_rbd "rbd/$CU_IMG" "$CU_SIZE" rbd)
check "candidate user:rbd backstore on rbd/$CU_IMG enabled" test -n "$CAND" || finish
# The handler takes the image's exclusive lock on the first write and answers BUSY until it holds
# it (implicit ALUA; tcmu-runner does the same, tcmu_acquire_dev_lock). Linux's sd
# retries BUSY; iscsi-test-cu does not, and would count those writes as failures of whichever
# test came first. So one write through tcm_loop takes the lock before the comparison, as the
# active gateway of a LUN holds it; BUSY answers during the comparison are counted below.
take_lock() {
	local dev
	dev=$(loop_export "$WWN" "$CAND") &&
		dd if=/dev/zero of="$dev" bs=4096 count=1 oflag=direct status=none &&
		loop_unexport "$WWN"
}
check "a first write through tcm_loop took rbd/$CU_IMG's exclusive lock" take_lock || finish
if [ "$MODE" = gotcmu ]; then
	locked() { "$GOTCMU" status 2>/dev/null | grep -E '^cu_rbd ' | grep -q ' locked '; }
	check "gotcmu status shows cu_rbd locked" locked
	BUSY0=$(busy_count cu_rbd)
fi
LUNS=("$CAND")
if cu_has_results /out/cu/lio-fileio; then
	BASE_DIR=/out/cu/lio-fileio
	log "baseline: the cu suite's LIO fileio run in this boot ($BASE_DIR)"
else
	truncate -s "$CU_SIZE" /tmp/cu-rbd-lio.img
	BASE=$(make_fileio 5 cu_rbd_lio /tmp/cu-rbd-lio.img "$CU_SIZE")
	check "baseline LIO fileio backstore enabled (no cu suite baseline in this boot)" test -n "$BASE" || finish
	BASE_DIR=$CU/lio-fileio
	LUNS+=("$BASE")
fi
# A target of its own: LIO lets several targets share the portal 127.0.0.1:3260 with the cu suite's.
check "iSCSI target $IQN on 127.0.0.1:3260" iscsi_export "$IQN" "${LUNS[@]}" || finish
log "suites: $(cu_suite_list | paste -sd' ')"
# Every UNMAP and WRITE SAME with UNMAP is a librbd discard on the memstore OSD: under TCG the
# Unmap suite alone took 181 s in one boot and passed 300 s in another on this shared 2-core
# machine, so the rbd LUN gets twice lib.sh's bounds unless they are given.
export CU_SUITE_TIMEOUT=${CU_SUITE_TIMEOUT:-600} CU_BUDGET=${CU_BUDGET:-1800}
if RES=$(run_cu "$CU/$CAND_NAME" "iscsi://127.0.0.1/$IQN/0"); then
	touch "$CU/$CAND_NAME/complete"
	pass "iscsi-test-cu against LUN 0 ($CAND_NAME): $RES"
else
	fail "iscsi-test-cu against LUN 0 ($CAND_NAME): $RES"
fi
if [ "$BASE_DIR" = "$CU/lio-fileio" ]; then
	if RES=$(run_cu "$BASE_DIR" "iscsi://127.0.0.1/$IQN/1"); then
		touch "$BASE_DIR/complete"
		pass "iscsi-test-cu against LUN 1 (lio-fileio): $RES"
	else
		fail "iscsi-test-cu against LUN 1 (lio-fileio): $RES"
	fi
fi
check "$HANDLER still running after the test suite" kill -0 "$HANDLER_PID"
if [ "$MODE" = gotcmu ]; then
	BUSY1=$(busy_count cu_rbd)
	log "cu_rbd answered BUSY $((BUSY1 - BUSY0)) times during the comparison"
fi

echo
echo "==== iscsi-test-cu, SCSI family: LIO fileio vs $HANDLER user:rbd (same boot, 128 MiB LUNs)"
"$TOOLS/cucompare" -base-name "LIO fileio" -name "$HANDLER user:rbd" -md /out/iscsi-test-cu-rbd.md \
	"$BASE_DIR" "$CU/$CAND_NAME"
CRC=$?
check "iscsi-test-cu: every test passing on LIO fileio passes on $HANDLER user:rbd (cucompare exit $CRC)" \
	test "$CRC" -eq 0
check "iSCSI target $IQN removed" iscsi_unexport "$IQN"
check "user:rbd backstore removed" remove_backstore "$CAND"
[ -n "${BASE:-}" ] && rmdir "$BASE"
finish
