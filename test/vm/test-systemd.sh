#!/bin/bash
# `make test-systemd` (issue 14 point 2): boot the guest with systemd as PID 1, install the package
# into its overlay root with dpkg, and check the shipped unit as systemd runs it
# (test/vm/guest-systemd.sh says what is checked). Prints every PASS/FAIL and a summary; fails if
# any check failed or the guest did not report.
#
# Usage: test-systemd.sh DEB       DEB: the package (`make test-systemd` builds it: make deb)
# Env: OUT (default build/test-systemd; the guest's /out), RESULTS (a file to write the summary
#      to, e.g. test/results/systemd.txt), T (guest timeout, s; default 900), MEM, CPUS.
# Serialise with other guests on a shared machine: flock /tmp/gotcmu-vm.lock test-systemd.sh ...
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
[ $# = 1 ] && [ -f "$1" ] || { sed -n '7,9p' "$0" >&2; exit 2; }
DEB=$(readlink -f "$1")
case $DEB in /tmp/*|/run/*) echo "test-systemd: the guest cannot see $DEB (its /tmp and /run are its own)" >&2; exit 2 ;; esac
OUT=$(realpath -m "${OUT:-$REPO/build/test-systemd}")
TOOLS=$REPO/build/bin
STARTED=$(date +%s)

(cd "$REPO" && CGO_ENABLED=0 go build -o "$TOOLS/ackwriter" ./test/cmd/ackwriter) || exit 2
G=$("$HERE/build-guest.sh") || exit 2
rm -rf "$OUT"; mkdir -p "$OUT"
echo "test-systemd: booting $G with systemd as PID 1, $(basename "$DEB"); output in $OUT"
T=${T:-900} "$HERE/run-guest.sh" -s -e "GOTCMU_DEB=$DEB" -e "ACKWRITER=$TOOLS/ackwriter" \
	"$G" "$OUT" "$HERE/guest-systemd.sh"
GUEST_RC=$?
SECS=$(($(date +%s) - STARTED))

NPASS=$(grep -c '^PASS' "$OUT/summary.txt" 2>/dev/null); NFAIL=$(grep -c '^FAIL' "$OUT/summary.txt" 2>/dev/null)
{
	echo "# make test-systemd, $(date -u +%F): $(basename "$DEB") in a Debian $(cat "$OUT/guest-kernel" 2>/dev/null || echo '?') guest under qemu TCG, systemd as PID 1"
	echo "# test/vm/guest-systemd.sh: ${NPASS:-0} PASS, ${NFAIL:-0} FAIL; guest exit $GUEST_RC; $SECS s in all (build, boot, checks)"
	echo
	cat "$OUT/summary.txt" 2>/dev/null
	if [ -s "$OUT/systemd/streams.txt" ]; then echo; cat "$OUT/systemd/streams.txt"; fi
} > "$OUT/result.txt"
echo
echo "==== test-systemd summary"
cat "$OUT/result.txt"
[ -n "${RESULTS:-}" ] && cp "$OUT/result.txt" "$RESULTS"
if [ "$GUEST_RC" -ne 0 ] || [ "${NFAIL:-0}" -ne 0 ] || [ "${NPASS:-0}" -eq 0 ]; then
	echo "test-systemd: FAILED"
	exit 1
fi
echo "test-systemd: OK"
