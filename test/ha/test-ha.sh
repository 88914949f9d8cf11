#!/bin/bash
# `make test-ha`: issue 6 point 4, two gateways and a multipath initiator in two guests (see
# guest-ha.sh for the scenario and what is checked). Guest a runs Ceph and gateway A, guest b
# gateway B and the initiator; they are joined by a qemu socket network device listening on this
# machine's loopback (10.99.0.1 and 10.99.0.2 inside), so no traffic reaches any host interface.
# Both guests boot at once under the VM lock; the run takes about 10 minutes under TCG.
# Usage: test-ha.sh      Env: OUT (default build/test-ha), GOTCMU (default bin/gotcmu), T (s);
#   for another two-guest scenario (test-partition.sh): SCRIPT (the in-guest script, default
#   guest-ha.sh), MEM_A and MEM_B (MiB, default 3072 and 2048), GUEST_ENV (NAME=VALUE ... for both)
# Serialise with other guests on a shared machine: flock /tmp/gotcmu-vm.lock test-ha.sh
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
OUT=$(realpath -m "${OUT:-$REPO/build/test-ha}")
GOTCMU=$(realpath -m "${GOTCMU:-$REPO/bin/gotcmu}")
T=${T:-1800}
SCRIPT=${SCRIPT:-$HERE/guest-ha.sh}
TOOLS=$REPO/build/bin
ENVS=(-e "GOTCMU=$GOTCMU" -e "TOOLS=$TOOLS")
for v in ${GUEST_ENV:-}; do ENVS+=(-e "$v"); done
[ -x "$GOTCMU" ] || { echo "test-ha: $GOTCMU missing: run 'make build'" >&2; exit 2; }
case $GOTCMU in /tmp/*|/run/*) echo "test-ha: the guests cannot see $GOTCMU" >&2; exit 2 ;; esac
# b's verdict is Go (test/guest's TestHA): build it where the guests see it.
"$REPO/test/guest/build.sh" "$TOOLS" || exit 2
G=$("$REPO/test/vm/build-guest.sh") || exit 2
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rm -rf "$OUT"; mkdir -p "$OUT/a" "$OUT/b"
START=$(date +%s)
echo "test-ha: booting guests a and b ($G), joined on 127.0.0.1:$PORT; output in $OUT"
# a listens, b connects: start a first.
NIC="-netdev socket,id=n0,listen=127.0.0.1:$PORT -device virtio-net-pci,netdev=n0,mac=52:54:00:99:00:01" \
	MEM=${MEM_A:-3072} QUIET=1 T=$T "$REPO/test/vm/run-guest.sh" "${ENVS[@]}" "$G" "$OUT/a" "$SCRIPT" a &
A=$!
for _ in $(seq 50); do
	ss -ltn 2>/dev/null | grep -q "127.0.0.1:$PORT " && break
	sleep 0.2
done
NIC="-netdev socket,id=n0,connect=127.0.0.1:$PORT -device virtio-net-pci,netdev=n0,mac=52:54:00:99:00:02" \
	MEM=${MEM_B:-2048} QUIET=1 T=$T "$REPO/test/vm/run-guest.sh" "${ENVS[@]}" "$G" "$OUT/b" "$SCRIPT" b
B_RC=$?
wait $A
A_RC=$?
echo "test-ha: guest a rc=$A_RC, guest b rc=$B_RC, $(($(date +%s) - START)) s"
for g in a b; do
	echo "--- guest $g"
	cat "$OUT/$g/summary.txt" 2>/dev/null || tail -30 "$OUT/$g/console.log"
done
[ "$A_RC" -eq 0 ] && [ "$B_RC" -eq 0 ]
