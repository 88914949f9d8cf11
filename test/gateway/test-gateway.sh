#!/bin/bash
# `make test-gateway`: issue 14 point 3 (and 4), ceph-iscsi on two gateways. Two guests joined by a
# qemu socket network (10.99.0.1 and 10.99.0.2 inside, nothing reaches a host interface), as
# test/ha/test-ha.sh boots them: guest a runs Ceph and gateway gw-a, guest b gateway gw-b and the
# initiator. On both, the handler under test (HANDLER: gotcmu, the default, or Debian's
# tcmu-runner) and ceph-iscsi's rbd-target-api configured by /etc/ceph/iscsi-gateway.cfg; gwcli
# builds everything (see guest-gateway.sh). The table of checks lands in OUT/table.md and, with
# RESULTS set, in RESULTS/gateway-HANDLER.md.
# Usage: test-gateway.sh   Env: HANDLER, OUT (default build/test-gateway-HANDLER), GOTCMU, T (s), RESULTS
# Serialise with other guests on a shared machine: flock /tmp/gotcmu-vm.lock test-gateway.sh
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
HANDLER=${HANDLER:-gotcmu}
case $HANDLER in gotcmu|tcmu-runner) ;; *) echo "test-gateway: HANDLER must be gotcmu or tcmu-runner" >&2; exit 2 ;; esac
OUT=$(realpath -m "${OUT:-$REPO/build/test-gateway-$HANDLER}")
GOTCMU=$(realpath -m "${GOTCMU:-$REPO/bin/gotcmu}")
T=${T:-1800}
if [ "$HANDLER" = gotcmu ]; then
	[ -x "$GOTCMU" ] || { echo "test-gateway: $GOTCMU missing: run 'make build'" >&2; exit 2; }
	case $GOTCMU in /tmp/*|/run/*) echo "test-gateway: the guests cannot see $GOTCMU" >&2; exit 2 ;; esac
fi
for cmd in rbd-target-api gwcli tcmu-runner multipathd iscsiadm fio sg_rtpg; do
	command -v "$cmd" >/dev/null || { echo "test-gateway: $cmd missing (test/deps.sh installs it)" >&2; exit 2; }
done
G=$("$REPO/test/vm/build-guest.sh") || exit 2
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rm -rf "$OUT"; mkdir -p "$OUT/a" "$OUT/b"
START=$(date +%s)
echo "test-gateway: $HANDLER; booting guests a and b ($G), joined on 127.0.0.1:$PORT; output in $OUT"
ENVS=(-e "GOTCMU=$GOTCMU" -e "HANDLER=$HANDLER")
NIC="-netdev socket,id=n0,listen=127.0.0.1:$PORT -device virtio-net-pci,netdev=n0,mac=52:54:00:99:00:01" \
	MEM=3072 QUIET=1 T=$T "$REPO/test/vm/run-guest.sh" "${ENVS[@]}" "$G" "$OUT/a" "$HERE/guest-gateway.sh" a &
A=$!
for _ in $(seq 50); do
	ss -ltn 2>/dev/null | grep -q "127.0.0.1:$PORT " && break
	sleep 0.2
done
NIC="-netdev socket,id=n0,connect=127.0.0.1:$PORT -device virtio-net-pci,netdev=n0,mac=52:54:00:99:00:02" \
	MEM=2048 QUIET=1 T=$T "$REPO/test/vm/run-guest.sh" "${ENVS[@]}" "$G" "$OUT/b" "$HERE/guest-gateway.sh" b
B_RC=$?
wait $A
A_RC=$?
SECS=$(($(date +%s) - START))
echo "test-gateway: guest a rc=$A_RC, guest b rc=$B_RC, $SECS s"
case $HANDLER in
gotcmu) VERSION=$("$GOTCMU" --version 2>&1 | head -1) ;;
tcmu-runner) VERSION="tcmu-runner $(dpkg-query -W -f '${Version}' tcmu-runner 2>/dev/null)" ;;
esac
COMMIT=$(git -C "$REPO" describe --always --dirty 2>/dev/null)
{
	echo "## ceph-iscsi on two gateways: $HANDLER ($(date -u +%F), $SECS s, test/gateway/test-gateway.sh)"
	echo
	echo "Harness at commit $COMMIT; $VERSION; ceph-iscsi $(dpkg-query -W -f '${Version}' ceph-iscsi 2>/dev/null)."
	echo
	echo "| guest | check | result |"
	echo "|---|---|---|"
	for g in a b; do
		sed -n 's/^\(PASS\|FAIL\|SKIP\) \(.*\)$/| '"$g"' | \2 | \1 |/p' "$OUT/$g/summary.txt" 2>/dev/null
	done
	echo
	echo '```'
	cat "$OUT/b/failover.txt" 2>/dev/null
	echo
	echo "iscsi-test-cu SCSI.MultipathIO, disk2 through $HANDLER on both gateways (the first failure of each test):"
	grep -E '^ *Test: |^ +tests +[0-9]' "$OUT/b/cu-multipath.txt" 2>/dev/null
	echo
	echo "gwcli's errors (~/gwcli.log on gw-a):"
	grep -E ' (ERROR|CRITICAL) ' "$OUT/a/gwcli.log" 2>/dev/null | sed 's/^  | //'
	echo '```'
} > "$OUT/table.md"
for g in a b; do
	echo "--- guest $g"
	cat "$OUT/$g/summary.txt" 2>/dev/null || tail -30 "$OUT/$g/console.log"
done
if [ -n "${RESULTS:-}" ]; then
	mkdir -p "$RESULTS" && cp "$OUT/table.md" "$RESULTS/gateway-$HANDLER.md"
fi
NFAIL=$(cat "$OUT"/a/summary.txt "$OUT"/b/summary.txt 2>/dev/null | grep -c '^FAIL')
NPASS=$(cat "$OUT"/a/summary.txt "$OUT"/b/summary.txt 2>/dev/null | grep -c '^PASS')
echo "test-gateway: $HANDLER: passed $NPASS, failed $NFAIL"
[ "$A_RC" -eq 0 ] && [ "$B_RC" -eq 0 ] && [ "$NFAIL" -eq 0 ] && [ "$NPASS" -gt 0 ]
