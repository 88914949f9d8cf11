#!/bin/bash
# `make demo`: boot the real kernel and show gotcmu serving a Ceph image to an iSCSI initiator
# (test/vm/guest-demo.sh: Ceph, D-Bus, targetcli, open-iscsi, ext4, fio, a summary),
# with progress lines as it goes. Output (logs, fio.json, the summary table) in build/demo.
# Env: GOTCMU (default bin/gotcmu), GOTCMU_ARGS, DEMO_SIZE, FIO_SECS, OUT,
#      MODE (gotcmu; tcmu-runner runs the same demo with Debian's reference handler).
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
OUT=$(realpath -m "${OUT:-$REPO/build/demo}")
GOTCMU=$(realpath -m "${GOTCMU:-$REPO/bin/gotcmu}")
MODE=${MODE:-gotcmu}
if [ "$MODE" = gotcmu ] && [ ! -x "$GOTCMU" ]; then
	echo "demo: $GOTCMU missing: run 'make build'" >&2; exit 2
fi
G=$("$HERE/build-guest.sh") || exit 2
rm -rf "$OUT"; mkdir -p "$OUT"
ENVS=(-e "GOTCMU=$GOTCMU" -e "MODE=$MODE")
for v in GOTCMU_ARGS DEMO_SIZE FIO_SECS; do
	[ -n "${!v:-}" ] && ENVS+=(-e "$v=${!v}")
done
echo "demo: booting a Debian kernel with LIO and TCMU under qemu (about 10 s) ..."
# The console is kept in $OUT/console.log; only the demo's own lines are shown.
QUIET=1 T=${T:-900} "$HERE/run-guest.sh" "${ENVS[@]}" "$G" "$OUT" "$HERE/guest-demo.sh" &
PID=$!
touch "$OUT/console.log"
tail -n +1 -f --pid="$PID" "$OUT/console.log" | grep --line-buffered -vE '^(SeaBIOS|Booting from|\[ *[0-9]+\.[0-9]+\] )'
wait "$PID"
