#!/bin/bash
# `make test-vm`: boot the real kernel once and run the guest suites in it, then compare the
# iscsi-test-cu runs on this machine and print the summary.
#
# Usage: test-vm.sh [-m gotcmu|tcmu-runner|fileio] [SUITE...]
#        suites (default: skeleton cu rbd targetcli xcopy stall switch): skeleton, cu (file LUN vs LIO fileio),
#        rbd (user:rbd on Ceph in the guest: round trip, its own iscsi-test-cu comparison),
#        targetcli (targetcli/D-Bus/status/metrics; gotcmu only),
#        xcopy (EXTENDED COPY between two iSCSI tenants' LUNs refused; gotcmu only),
#        stall (one LUN's silent Ceph monitor holds up no other LUN, nor the bus name; gotcmu only),
#        switch (tcmu-runner to gotcmu and back under a verifying write load; gotcmu only),
#        faults (guest-faults.sh, gotcmu only: `make test-faults`; FAULTS picks a subset)
#        hard (guest-hard.sh: issue 15's hard faults on 3 OSDs against the mode's handler, run by
#        `make test-faults` for gotcmu; this suite is for -m tcmu-runner, the comparison)
#   -m gotcmu       (default) test bin/gotcmu: user:file LUNs served by the daemon.
#   -m tcmu-runner  the same steps with Debian's tcmu-runner (user:qcow on a raw file): the
#                   reference handler's figures, and a check of the harness's user-backstore path.
#   -m fileio       the same steps on LIO's own fileio backstore (no daemon to kill).
# Env: OUT (default build/test-vm; the guest's /out), GOTCMU (default bin/gotcmu), GOTCMU_ARGS,
#      CU_TESTS (comma-separated iscsi-test-cu suites instead of the SCSI family), CU_SUITE_TIMEOUT,
#      CU_BUDGET (s per suite, s per LUN: see run_cu in lib.sh),
#      RESULTS (a directory to copy the iscsi-test-cu table into, e.g. test/results),
#      T (guest timeout, s), MEM, CPUS.
# Serialise with other guests on a shared machine: flock /tmp/gotcmu-vm.lock test-vm.sh ...
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
MODE=${MODE:-gotcmu}
while getopts m: opt; do
	case $opt in
	m) MODE=$OPTARG ;;
	*) sed -n '4,22p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
case $MODE in gotcmu|tcmu-runner|fileio) ;; *) echo "test-vm: mode must be gotcmu, tcmu-runner or fileio, not $MODE" >&2; exit 2 ;; esac
SUITES=${*:-skeleton cu rbd targetcli xcopy stall switch}
OUT=$(realpath -m "${OUT:-$REPO/build/test-vm}")
GOTCMU=$(realpath -m "${GOTCMU:-$REPO/bin/gotcmu}")
TOOLS=$REPO/build/bin
STARTED=$(date +%s)

if [ "$MODE" = gotcmu ] && [ ! -x "$GOTCMU" ]; then
	echo "test-vm: $GOTCMU missing: run 'make build' (or use -m fileio to test the harness alone)" >&2
	exit 2
fi
case $GOTCMU in /tmp/*|/run/*) echo "test-vm: the guest cannot see $GOTCMU (its /tmp and /run are its own)" >&2; exit 2 ;; esac

echo "test-vm: building test tools into $TOOLS"
(cd "$REPO" && CGO_ENABLED=0 go build -o "$TOOLS/ackwriter" ./test/cmd/ackwriter &&
	CGO_ENABLED=0 go build -o "$TOOLS/cucompare" ./test/cmd/cucompare &&
	CGO_ENABLED=0 go build -o "$TOOLS/hardfaults" ./test/cmd/hardfaults &&
	test/guest/build.sh "$TOOLS" &&
	CGO_ENABLED=0 go test -c -o "$TOOLS/netlink.test" ./netlink) || exit 2
G=$("$HERE/build-guest.sh") || exit 2

rm -rf "$OUT"; mkdir -p "$OUT"
ENVS=(-e "MODE=$MODE" -e "GOTCMU=$GOTCMU" -e "ACKWRITER=$TOOLS/ackwriter" -e "NETLINK_TEST=$TOOLS/netlink.test"
	-e "HARDFAULTS=$TOOLS/hardfaults"
	-e "SUITES=$SUITES")
[ -n "${GOTCMU_ARGS:-}" ] && ENVS+=(-e "GOTCMU_ARGS=$GOTCMU_ARGS")
[ -n "${CU_TESTS:-}" ] && ENVS+=(-e "CU_TESTS=$CU_TESTS")
[ -n "${FAULTS:-}" ] && ENVS+=(-e "FAULTS=$FAULTS")
for v in CU_SUITE_TIMEOUT CU_BUDGET; do
	[ -n "${!v:-}" ] && ENVS+=(-e "$v=${!v}")
done
echo "test-vm: booting $G (mode $MODE, suites: $SUITES); output in $OUT"
T=${T:-2400} "$HERE/run-guest.sh" "${ENVS[@]}" "$G" "$OUT" "$HERE/guest-main.sh"
GUEST_RC=$?

CU_RC=0
if [[ " $SUITES " == *" cu "* ]]; then
	if [ -s "$OUT/cu/names" ]; then
		read -r BASE CAND < "$OUT/cu/names"
		case $MODE in
		gotcmu) CAND_TITLE=gotcmu ;;
		tcmu-runner) CAND_TITLE="tcmu-runner" ;;
		fileio) CAND_TITLE="LIO fileio #2" ;;
		esac
		echo
		echo "==== iscsi-test-cu, SCSI family: LIO fileio vs $CAND_TITLE (same boot, 128 MiB file LUNs on tmpfs)"
		"$TOOLS/cucompare" -base-name "LIO fileio" -name "$CAND_TITLE" -md "$OUT/iscsi-test-cu.md" \
			"$OUT/cu/$BASE" "$OUT/cu/$CAND"
		CU_RC=$?
		if [ "$CU_RC" -eq 0 ]; then
			echo "PASS iscsi-test-cu: every test passing on LIO fileio passes on $CAND_TITLE" >> "$OUT/summary.txt"
		else
			echo "FAIL iscsi-test-cu: comparison with LIO fileio failed (cucompare exit $CU_RC)" >> "$OUT/summary.txt"
		fi
		if [ -n "${RESULTS:-}" ] && [ -s "$OUT/iscsi-test-cu.md" ]; then
			mkdir -p "$RESULTS" && cp "$OUT/iscsi-test-cu.md" "$RESULTS/iscsi-test-cu-$MODE.md"
		fi
	else
		echo "FAIL iscsi-test-cu: the guest left no results" >> "$OUT/summary.txt"
		CU_RC=1
	fi
fi

echo
echo "==== test-vm summary: mode $MODE, guest kernel $(cat "$OUT/guest-kernel" 2>/dev/null || echo '?'), $(($(date +%s) - STARTED)) s"
[ -s "$OUT/summary.txt" ] && cat "$OUT/summary.txt"
NPASS=$(grep -c '^PASS' "$OUT/summary.txt" 2>/dev/null); NFAIL=$(grep -c '^FAIL' "$OUT/summary.txt" 2>/dev/null)
NSKIP=$(grep -c '^SKIP' "$OUT/summary.txt" 2>/dev/null)
echo "passed ${NPASS:-0}, failed ${NFAIL:-0}, skipped ${NSKIP:-0}; guest exit $GUEST_RC; logs in $OUT"
if [ "$MODE" != gotcmu ]; then
	echo "NOTE: mode $MODE checks the harness without gotcmu; gotcmu itself was not tested"
fi
if [ "$GUEST_RC" -ne 0 ] || [ "$CU_RC" -ne 0 ] || [ "${NFAIL:-0}" -ne 0 ] || [ "${NPASS:-0}" -eq 0 ]; then
	echo "test-vm: FAILED"
	exit 1
fi
echo "test-vm: OK"
