#!/bin/bash
# `make test-partition` (and the second half of `make test-ha`): issue 15 point 1's partition in
# the two-guest layout (see guest-partition.sh for the scenario, test/cmd/partition for what is
# checked). Builds the in-guest tools (ackwriter, partition) into build/bin and boots the pair
# through test-ha.sh with guest-partition.sh: a runs gateway A only, b Ceph, gateway B and the
# initiator. About 15 minutes under TCG.
# Usage: test-partition.sh      Env: OUT (default build/test-partition), GOTCMU, T (s)
# Serialise with other guests on a shared machine: flock /tmp/gotcmu-vm.lock test-partition.sh
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
TOOLS=$REPO/build/bin
(cd "$REPO" && CGO_ENABLED=0 go build -o "$TOOLS/ackwriter" ./test/cmd/ackwriter &&
	CGO_ENABLED=0 go build -o "$TOOLS/partition" ./test/cmd/partition) || exit 2
OUT=${OUT:-$REPO/build/test-partition} SCRIPT=$HERE/guest-partition.sh MEM_A=1536 MEM_B=3072 \
	GUEST_ENV="ACKWRITER=$TOOLS/ackwriter PARTITION=$TOOLS/partition" exec "$HERE/test-ha.sh"
