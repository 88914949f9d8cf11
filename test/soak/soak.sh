#!/bin/bash
# `make soak` (issue 8 point 3): gotcmu serving 4 LUNs at queue depth 128 for SOAK_SECS (default
# 600 s) in the VM, fio writing with CRC32C verification (verify_backlog, verify_fatal) on every
# LUN. The daemon's goroutines, open fds, RSS and Go heap (from its metrics endpoint, 127.0.0.1:9560) are
# sampled every minute; the run fails on any I/O or verify error, or if between the first sample
# under load and the last one
#   goroutines grow by more than SOAK_MAX_GOROUTINES (default 20),
#   open fds grow by more than SOAK_MAX_FDS (default 8),
#   RSS grows by more than SOAK_MAX_RSS_MB MiB (default 64),
#   the Go heap in use grows by more than SOAK_MAX_HEAP_MB MiB (default 16),
#   anonymous memory (Go and C heaps) grows by more than SOAK_MAX_ANON_MB MiB (default 24).
# RSS also counts the TCMU data-area pages the kernel maps in as its blocks are first used
# (printed as data_area_mib): bounded by max_data_area_mb, they are not gotcmu's to free.
# Usage: test/soak/soak.sh         Env: SOAK_SECS, SOAK_BACKENDS (default "file file rbd rbd"),
#   the bounds above, OUT (default build/soak), GOTCMU (default bin/gotcmu), MEM, CPUS.
# Serialise with other guests: flock /tmp/gotcmu-vm.lock test/soak/soak.sh
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
OUT=$(realpath -m "${OUT:-$REPO/build/soak}")
GOTCMU=$(realpath -m "${GOTCMU:-$REPO/bin/gotcmu}")
SOAK_SECS=${SOAK_SECS:-600}
[ -x "$GOTCMU" ] || { echo "soak: $GOTCMU missing: run 'make build'" >&2; exit 2; }
case $GOTCMU in /tmp/*|/run/*) echo "soak: the guest cannot see $GOTCMU" >&2; exit 2 ;; esac
G=$("$REPO/test/vm/build-guest.sh") || exit 2
rm -rf "$OUT"; mkdir -p "$OUT"
ENVS=(-e "GOTCMU=$GOTCMU" -e "SOAK_SECS=$SOAK_SECS")
for v in SOAK_BACKENDS SOAK_MAX_GOROUTINES SOAK_MAX_FDS SOAK_MAX_RSS_MB SOAK_MAX_HEAP_MB SOAK_MAX_ANON_MB GOTCMU_ARGS; do
	[ -n "${!v:-}" ] && ENVS+=(-e "$v=${!v}")
done
echo "soak: booting $G for ${SOAK_SECS} s of load; output in $OUT"
START=$(date +%s)
T=$((SOAK_SECS + 900)) QUIET=1 "$REPO/test/vm/run-guest.sh" "${ENVS[@]}" "$G" "$OUT" "$HERE/guest-soak.sh"
RC=$?
echo
echo "==== soak: $(($(date +%s) - START)) s, guest exit $RC; logs in $OUT"
[ -s "$OUT/soak/samples.txt" ] && cat "$OUT/soak/samples.txt"
[ -s "$OUT/summary.txt" ] && cat "$OUT/summary.txt"
if [ "$RC" -ne 0 ] || grep -q '^FAIL' "$OUT/summary.txt" 2>/dev/null || ! grep -q '^PASS' "$OUT/summary.txt" 2>/dev/null; then
	echo "soak: FAILED"
	exit 1
fi
echo "soak: OK"
