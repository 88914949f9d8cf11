#!/bin/bash
# Runs INSIDE the guest: the test-vm entry point. Runs each suite in $SUITES (default
# "skeleton cu rbd targetcli xcopy stall switch") as its own script, in this order, in one boot; exits 1 if any failed.
# Env passed through to the suites: MODE, GOTCMU, GOTCMU_ARGS, ACKWRITER, CU_TESTS, ...
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
: > "$SUMMARY"
rc=0
for suite in ${SUITES:-skeleton cu rbd targetcli xcopy stall switch}; do
	case $suite in
	skeleton) script=$HERE/guest-skeleton.sh ;;
	cu) script=$HERE/guest-iscsi-cu.sh ;;
	# Issue 4 point 8 and issue 5 point 5; both use lib-ceph.sh's one Ceph cluster per boot, and
	# rbd reuses cu's LIO fileio baseline when cu ran first in the boot (the default order).
	rbd) script=$HERE/guest-rbd.sh ;;
	targetcli) script=$HERE/guest-targetcli.sh ;;
	xcopy) script=$HERE/guest-xcopy.sh ;; # issue 12 point 1: EXTENDED COPY between tenants
	stall) script=$HERE/guest-stall.sh ;; # issue 12 point 3: one LUN never holds up another
	switch) script=$HERE/guest-switch.sh ;; # issue 14 point 6: tcmu-runner to gotcmu and back under load
	faults) script=$HERE/guest-faults.sh ;; # issue 8: faults under load, capabilities (make test-faults)
	hard) script=$HERE/guest-hard.sh ;; # issue 15 point 1: the hard faults against MODE's handler (tcmu-runner comparison)
	*) fail "unknown suite $suite"; rc=1; continue ;;
	esac
	log "=== $suite"
	start=$(date +%s)
	bash "$script" || rc=1
	log "=== $suite done in $(($(date +%s) - start))s"
done
cp /etc/os-release /out/guest-os-release 2>/dev/null
uname -r > /out/guest-kernel
exit $rc
