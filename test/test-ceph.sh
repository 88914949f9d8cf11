#!/bin/bash
# `make test-ceph`: the Ceph backend's tests against a real micro cluster on this machine.
# Starts test/micro-ceph.sh on free loopback ports in build/ceph, runs `go test` on ./rbd/... with
# CEPH_CONF pointing at it, and stops the cluster however the tests end (the rbd tests would start
# a cluster of their own without CEPH_CONF; starting it here makes sure it never outlives them).
# Usage: test/test-ceph.sh [go test flags...]      Env: TAGS (go-ceph build tag), PKGS (./rbd/...)
set -uo pipefail
REPO=$(readlink -f "$(dirname "$(readlink -f "$0")")/..")
cd "$REPO" || exit 2
TAGS=${TAGS:-}
PKGS=${PKGS:-./rbd/...}
D=$REPO/build/ceph
mkdir -p "$REPO/build"

if ! go list -tags "$TAGS" "$PKGS" >/dev/null 2>&1; then
	echo "test-ceph: no Go packages match $PKGS" >&2
	exit 1
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MON_PORT_V2=$(free_port); MON_PORT_V1=$(free_port)
export MON_PORT_V2 MON_PORT_V1
trap 'test/micro-ceph.sh stop "$D" >/dev/null 2>&1' EXIT
START=$(date +%s)
if ! test/micro-ceph.sh start "$D" 2147483648 > "$REPO/build/ceph-start.log" 2>&1; then
	echo "test-ceph: micro cluster failed to start:" >&2
	cat "$REPO/build/ceph-start.log" >&2
	exit 1
fi
echo "test-ceph: micro cluster up in $(($(date +%s) - START)) s (mon 127.0.0.1:$MON_PORT_V2); $D"
export CEPH_CONF=$D/ceph.conf
# -json through test/cmd/skipcheck: the figures the tests log (fencing outcomes, lock moves against
# their bound, throughput fractions, leak checks) are printed, every skip is listed, subtests' too,
# and one that test/expected-skips.txt does not name fails the run (pipefail: so does a failure of
# go test); the full -v output stays in build/test-ceph.log.
go build -o build/tools/skipcheck ./test/cmd/skipcheck || exit 1
go test -json -tags "$TAGS" -count=1 -timeout 20m "$@" "$PKGS" 2>&1 |
	build/tools/skipcheck -allow test/expected-skips.txt -log "$REPO/build/test-ceph.log" \
		-show '^(--- |ok |FAIL|PASS$|panic)|^ +[a-z_]+_test\.go:[0-9]+: '
