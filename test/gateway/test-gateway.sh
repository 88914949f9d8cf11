#!/bin/bash
# `make test-gateway`: issue 14 point 3 (and 4), ceph-iscsi on two gateways. Two guests joined by a
# qemu socket network (10.99.0.1 and 10.99.0.2 inside, nothing reaches a host interface), as
# test/ha/test-ha.sh boots them: guest a runs Ceph and gateway gw-a, guest b gateway gw-b and the
# initiator. Both boot with systemd as PID 1 (run-guest.sh -s); on both, systemd runs the handler
# under test (HANDLER: gotcmu, the default, installed from GOTCMU_DEB, or Debian's tcmu-runner) and
# ceph-iscsi's rbd-target-api configured by /etc/ceph/iscsi-gateway.cfg; gwcli builds everything
# (see guest-gateway.sh). The table of checks lands in OUT/table.md and, with RESULTS set, in
# RESULTS/gateway-HANDLER.md; the SCSI family's results through the ceph-iscsi target in
# RESULTS/gateway-cu/HANDLER/; once both handlers have a run there, the two tables side by side
# (RESULTS/gateway-compare.md, test/cmd/gwcompare) and the SCSI family's comparison test by test
# (RESULTS/gateway-cu-compare.md, test/cmd/cucompare), tcmu-runner as the baseline of both.
# With SCALE_DISKS=N (`make scale-gateway`, issue 16) the guests run guest-gateway-scale.sh's
# scenario instead: N disks through ceph-iscsi, timed, and the table goes to
# RESULTS/gateway-scale-HANDLER.md with the figures.
# Usage: test-gateway.sh   Env: HANDLER, GOTCMU_DEB (`make test-gateway` builds it: make deb),
#        OUT (default build/test-gateway-HANDLER), T (s), RESULTS, CU_TESTS (the SCSI family's
#        suites to run, comma separated: test/vm/lib.sh's cu_suite_list; default all),
#        SCALE_DISKS
# Serialise with other guests on a shared machine: flock /tmp/gotcmu-vm.lock test-gateway.sh
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
HANDLER=${HANDLER:-gotcmu}
case $HANDLER in gotcmu|tcmu-runner) ;; *) echo "test-gateway: HANDLER must be gotcmu or tcmu-runner" >&2; exit 2 ;; esac
OUT=$(realpath -m "${OUT:-$REPO/build/test-gateway-$HANDLER}")
T=${T:-5400}
if [ "$HANDLER" = gotcmu ]; then
	[ -f "${GOTCMU_DEB:-}" ] || { echo "test-gateway: GOTCMU_DEB (the package) missing: make test-gateway builds it" >&2; exit 2; }
	GOTCMU_DEB=$(readlink -f "$GOTCMU_DEB")
	case $GOTCMU_DEB in /tmp/*|/run/*) echo "test-gateway: the guests cannot see $GOTCMU_DEB" >&2; exit 2 ;; esac
fi
for cmd in rbd-target-api gwcli tcmu-runner multipathd iscsiadm fio sg_rtpg; do
	command -v "$cmd" >/dev/null || { echo "test-gateway: $cmd missing (test/deps.sh installs it)" >&2; exit 2; }
done
SCALE_DISKS=${SCALE_DISKS:-0}
MEM_A=3072 MEM_B=2048
if [ "$SCALE_DISKS" -gt 0 ]; then
	# lunready, static, for the initiator's read of every LUN (guest-gateway-scale.sh).
	(cd "$REPO" && CGO_ENABLED=0 PATH=$PATH:/usr/local/go/bin go build -o build/bin/lunready ./test/cmd/lunready) || exit 2
	# Each guest's handler holds N images (some 4 MiB and 16 threads each); a also Ceph.
	MEM_A=$((4096 + 8 * SCALE_DISKS)) MEM_B=$((3072 + 8 * SCALE_DISKS))
fi
G=$("$REPO/test/vm/build-guest.sh") || exit 2
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rm -rf "$OUT"; mkdir -p "$OUT/a" "$OUT/b"
START=$(date +%s)
echo "test-gateway: $HANDLER; booting guests a and b ($G), joined on 127.0.0.1:$PORT; output in $OUT"
ENVS=(-s -e "GOTCMU_DEB=${GOTCMU_DEB:-}" -e "HANDLER=$HANDLER" -e "CU_TESTS=${CU_TESTS:-}" -e "SCALE_DISKS=$SCALE_DISKS")
NIC="-netdev socket,id=n0,listen=127.0.0.1:$PORT -device virtio-net-pci,netdev=n0,mac=52:54:00:99:00:01" \
	MEM=$MEM_A QUIET=1 T=$T "$REPO/test/vm/run-guest.sh" "${ENVS[@]}" "$G" "$OUT/a" "$HERE/guest-gateway.sh" a &
A=$!
for _ in $(seq 50); do
	ss -ltn 2>/dev/null | grep -q "127.0.0.1:$PORT " && break
	sleep 0.2
done
NIC="-netdev socket,id=n0,connect=127.0.0.1:$PORT -device virtio-net-pci,netdev=n0,mac=52:54:00:99:00:02" \
	MEM=$MEM_B QUIET=1 T=$T "$REPO/test/vm/run-guest.sh" "${ENVS[@]}" "$G" "$OUT/b" "$HERE/guest-gateway.sh" b
B_RC=$?
wait $A
A_RC=$?
SECS=$(($(date +%s) - START))
echo "test-gateway: guest a rc=$A_RC, guest b rc=$B_RC, $SECS s"
case $HANDLER in
gotcmu) VERSION="gotcmu $(dpkg-deb -f "$GOTCMU_DEB" Version) (the package)" ;;
tcmu-runner) VERSION="tcmu-runner $(dpkg-query -W -f '${Version}' tcmu-runner 2>/dev/null)" ;;
esac
COMMIT=$(git -C "$REPO" describe --always --dirty 2>/dev/null)
{
	if [ "$SCALE_DISKS" -gt 0 ]; then
		echo "## $SCALE_DISKS disks through ceph-iscsi on two gateways: $HANDLER ($(date -u +%F), $SECS s, make scale-gateway)"
	else
		echo "## ceph-iscsi on two gateways: $HANDLER ($(date -u +%F), $SECS s, test/gateway/test-gateway.sh)"
	fi
	echo
	echo "Harness at commit $COMMIT; $VERSION; ceph-iscsi $(dpkg-query -W -f '${Version}' ceph-iscsi 2>/dev/null)."
	echo
	echo "| guest | check | result |"
	echo "|---|---|---|"
	for g in a b; do
		sed -n 's/^\(PASS\|FAIL\|SKIP\) \(.*\)$/| '"$g"' | \2 | \1 |/p' "$OUT/$g/summary.txt" 2>/dev/null
	done
	echo
	if [ "$SCALE_DISKS" -gt 0 ]; then
		echo
		echo "Figures (guest-gateway-scale.sh: gw_a and gw_b are the handler on each gateway, idle with every LUN):"
		echo
		echo "| figure | value |"
		echo "|---|---:|"
		cat "$OUT"/a/scale.txt "$OUT"/b/scale.txt 2>/dev/null | awk '{ printf "| %s | %s |\n", $1, $2 }'
		echo
	fi
	echo '```'
	if [ "$SCALE_DISKS" -eq 0 ]; then
		cat "$OUT/b/failover.txt" 2>/dev/null
		echo
		echo "iscsi-test-cu SCSI.MultipathIO, disk2 through $HANDLER on both gateways (the first failure of each test):"
		grep -E '^ *Test: |^ +tests +[0-9]' "$OUT/b/cu-multipath.txt" 2>/dev/null
		echo
	fi
	echo "gwcli's errors (~/gwcli.log on gw-a):"
	grep -E ' (ERROR|CRITICAL) ' "$OUT/a/gwcli.log" 2>/dev/null | sed 's/^  | //'
	echo '```'
} > "$OUT/table.md"
for g in a b; do
	echo "--- guest $g"
	cat "$OUT/$g/summary.txt" 2>/dev/null || tail -30 "$OUT/$g/console.log"
done
if [ -n "${RESULTS:-}" ]; then
	if [ "$SCALE_DISKS" -gt 0 ]; then
		mkdir -p "$RESULTS" && cp "$OUT/table.md" "$RESULTS/gateway-scale-$HANDLER.md"
		RESULTS=
	fi
fi
if [ -n "${RESULTS:-}" ]; then
	mkdir -p "$RESULTS" && cp "$OUT/table.md" "$RESULTS/gateway-$HANDLER.md"
	# The SCSI family's CUnit XML, in run_cu's layout (cucompare reads it), for the comparison.
	if ls "$OUT"/b/cu-scsi/*/CUnitAutomated-Results.xml > /dev/null 2>&1; then
		rm -rf "$RESULTS/gateway-cu/$HANDLER"
		for x in "$OUT"/b/cu-scsi/*/CUnitAutomated-Results.xml; do
			t=$(basename "$(dirname "$x")")
			mkdir -p "$RESULTS/gateway-cu/$HANDLER/$t" && cp "$x" "$RESULTS/gateway-cu/$HANDLER/$t/"
		done
	fi
	# Each check side by side with the other handler's last run (issue 14 point 4).
	if [ -s "$RESULTS/gateway-tcmu-runner.md" ] && [ -s "$RESULTS/gateway-gotcmu.md" ]; then
		(cd "$REPO" && go run ./test/cmd/gwcompare -md "$RESULTS/gateway-compare.md" \
			"$RESULTS/gateway-tcmu-runner.md" "$RESULTS/gateway-gotcmu.md") > "$OUT/compare.txt" 2>&1
		echo "test-gateway: gwcompare tcmu-runner against gotcmu: exit $? ($RESULTS/gateway-compare.md)"
	fi
	if [ -d "$RESULTS/gateway-cu/tcmu-runner" ] && [ -d "$RESULTS/gateway-cu/gotcmu" ]; then
		(cd "$REPO" && go run ./test/cmd/cucompare -base-name "tcmu-runner (ceph-iscsi target)" \
			-name "gotcmu (ceph-iscsi target)" -md "$RESULTS/gateway-cu-compare.md" \
			"$RESULTS/gateway-cu/tcmu-runner" "$RESULTS/gateway-cu/gotcmu") > "$OUT/cu-compare.txt" 2>&1
		echo "test-gateway: cucompare tcmu-runner against gotcmu through the ceph-iscsi target: exit $? ($RESULTS/gateway-cu-compare.md)"
	fi
fi
NFAIL=$(cat "$OUT"/a/summary.txt "$OUT"/b/summary.txt 2>/dev/null | grep -c '^FAIL')
NPASS=$(cat "$OUT"/a/summary.txt "$OUT"/b/summary.txt 2>/dev/null | grep -c '^PASS')
echo "test-gateway: $HANDLER: passed $NPASS, failed $NFAIL"
[ "$A_RC" -eq 0 ] && [ "$B_RC" -eq 0 ] && [ "$NFAIL" -eq 0 ] && [ "$NPASS" -gt 0 ]
