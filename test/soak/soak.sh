#!/bin/bash
# `make soak` (issue 15 point 4): gotcmu serving 4 LUNs for SOAK_S seconds (default 3600) in the
# VM, fio writing with CRC32C verification (verify_backlog, verify_fatal) on every LUN, the file
# LUNs at queue depth 128, the rbd ones at SOAK_RBD_IODEPTH (default 16; see guest-soak.sh); the
# two rbd LUNs on a micro Ceph of 3 memstore OSDs (pool size 3, min_size 2), one of
# which is SIGKILLed at a fifth of the run and started again a minute later (it comes back empty and
# is backfilled by its peers while fio goes on).
# The daemon's goroutines, open fds, OS threads, anonymous memory, RSS and Go heap (its metrics
# endpoint, 127.0.0.1:9560, and /proc) are sampled every minute (every SOAK_S/40 s, 10 s at least,
# for runs shorter than 40 minutes); test/cmd/soakreport fits a least-squares line to each series
# over the last half of the run and fails when a slope per hour exceeds its bound (its defaults:
# see its doc.go; SOAKREPORT_ARGS passes others). The run fails on any I/O or verify error, if the
# cluster is not active+clean again before the load ends, or if gotcmu does not exit 0 on SIGTERM.
# RSS also counts the TCMU data-area pages the kernel maps in as its blocks are first used
# (data_area_mib): bounded by max_data_area_mb, they are not gotcmu's to free; RSS has no bound.
# Usage: test/soak/soak.sh         Env: SOAK_S (SOAK_SECS is an alias), SOAK_BACKENDS (default
#   "file file rbd rbd"), SOAK_RBD_IODEPTH, SOAK_EVERY, SOAK_OSD_KILL_AT, SOAK_OSD_DOWN, SOAKREPORT_ARGS,
#   RESULTS (a directory to write soak.md into, e.g. test/results), OUT (default build/soak),
#   GOTCMU (default bin/gotcmu), MEM (MiB, default 10240), SOAK_STALL_MS, CPUS.
# Serialise with other guests: flock /tmp/gotcmu-vm.lock test/soak/soak.sh
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
OUT=$(realpath -m "${OUT:-$REPO/build/soak}")
GOTCMU=$(realpath -m "${GOTCMU:-$REPO/bin/gotcmu}")
TOOLS=$REPO/build/bin
SOAK_S=${SOAK_S:-${SOAK_SECS:-3600}}
case $SOAK_S in *[!0-9]*|'') echo "soak: SOAK_S must be a number of seconds, not $SOAK_S" >&2; exit 2 ;; esac
[ "$SOAK_S" -ge 300 ] || { echo "soak: SOAK_S must be 300 s at least (the OSD fault and a last half to fit)" >&2; exit 2; }
[ -x "$GOTCMU" ] || { echo "soak: $GOTCMU missing: run 'make build'" >&2; exit 2; }
case $GOTCMU in /tmp/*|/run/*) echo "soak: the guest cannot see $GOTCMU" >&2; exit 2 ;; esac
(cd "$REPO" && CGO_ENABLED=0 go build -o "$TOOLS/soakreport" ./test/cmd/soakreport) || exit 2
G=$("$REPO/test/vm/build-guest.sh") || exit 2
rm -rf "$OUT"; mkdir -p "$OUT"
ENVS=(-e "GOTCMU=$GOTCMU" -e "SOAK_S=$SOAK_S" -e "SOAKREPORT=$TOOLS/soakreport")
for v in SOAK_BACKENDS SOAK_RBD_IODEPTH SOAK_EVERY SOAK_OSD_KILL_AT SOAK_OSD_DOWN SOAK_STALL_MS SOAKREPORT_ARGS GOTCMU_ARGS; do
	[ -n "${!v:-}" ] && ENVS+=(-e "$v=${!v}")
done
echo "soak: booting $G for ${SOAK_S} s of load; output in $OUT"
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
# The tree the binary was built from, taken now: the run lasts an hour, and HEAD may move meanwhile.
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)
git -C "$REPO" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT (with uncommitted changes)"
START=$(date +%s)
# 16 GiB: in the 6 GiB guest of the 15:44 run of 2026-12-05 (three memstore OSDs holding three
# copies of both images, two tmpfs images) the guest reclaimed gotcmu's file-backed pages (its RSS
# fell from 108 to 56 MiB) and stalled for tens of seconds at a time; in 10 GiB the run of
# 2026-12-06 01:12 had 3.5 GiB left at +1500 s, falling 150-200 MiB a minute (the memstore OSDs:
# gotcmu's RSS stayed at 107 MiB), and was stopped before the guest ran out.
MEM=${MEM:-16384}
MEM=$MEM T=$((SOAK_S + 1500)) QUIET=1 "$REPO/test/vm/run-guest.sh" "${ENVS[@]}" "$G" "$OUT" "$HERE/guest-soak.sh"
RC=$?
ELAPSED=$(($(date +%s) - START))
S=$OUT/soak
echo
echo "==== soak: $ELAPSED s, guest exit $RC; logs in $OUT"
for f in events.txt samples.tsv idle.tsv trend.txt; do [ -s "$S/$f" ] && cat "$S/$f"; done
[ -s "$OUT/summary.txt" ] && cat "$OUT/summary.txt"
OK=1
if [ "$RC" -ne 0 ] || grep -q '^FAIL' "$OUT/summary.txt" 2>/dev/null || ! grep -q '^PASS' "$OUT/summary.txt" 2>/dev/null; then
	OK=0
fi

# record FILE: the run as Markdown, for test/results/soak.md.
record() {
	local commit=$COMMIT verdict
	verdict=PASS; [ "$OK" = 1 ] || verdict=FAIL
	{
		echo "# Soak: $verdict (issue 15 point 4, \`make soak\`)"
		echo
		echo "- Run: $STARTED, $ELAPSED s in all (boot and set-up included); $SOAK_S s of load."
		echo "- gotcmu at commit $commit; guest kernel $(cat "$OUT/guest-kernel" 2>/dev/null || echo '?'), qemu TCG, ${CPUS:-2} vCPU, $MEM MiB."
		echo "- LUNs: ${SOAK_BACKENDS:-file file rbd rbd} (256 MiB each, tcm_loop); fio randwrite 4 KiB, iodepth 128 on the file LUNs,"
		echo "  ${SOAK_RBD_IODEPTH:-16} on the rbd ones, verify=crc32c verify_backlog=4096 verify_fatal=1 on every LUN for the whole run."
		echo "  The rbd LUNs with cmd_time_out 0 and qfull_time_out 5, as ceph-iscsi sets them; the file LUNs with the kernel's defaults."
		echo "- Ceph: micro Ceph (test/micro-ceph.sh) of 1 mon, 1 mgr, 3 memstore OSDs, pool rbd of size 3, min_size 2."
		echo "  Fault: osd.1 SIGKILLed at +${SOAK_OSD_KILL_AT:-$((SOAK_S / 5))} s and started again (it comes back with an empty store and is backfilled)."
		echo
		echo "## Events (seconds since fio started)"
		echo
		sed 's/^/    /' "$S/events.txt" 2>/dev/null
		echo
		echo "## Guest stalls (a 1 s sleep in the guest that took ${SOAK_STALL_MS:-10000} ms or more)"
		echo
		if [ -s "$S/stalls.txt" ]; then sed 's/^/    /' "$S/stalls.txt"; else echo "None."; fi
		if [ -s "$S/dmesg-io-errors.txt" ]; then
			echo
			echo "The kernel's I/O errors (its clock is the guest's uptime; fio started at the uptime in Events):"
			echo
			sed 's/^/    /' "$S/dmesg-io-errors.txt"
		fi
		echo
		echo "## Trend over the last half (test/cmd/soakreport)"
		echo
		if [ -s "$S/trend.md" ]; then cat "$S/trend.md"; else echo "No trend table: soakreport said"; echo; sed 's/^/    /' "$S/trend.txt" 2>/dev/null; fi
		echo
		echo "## fio"
		echo
		grep -E '^\s*(lun[0-9]+:|write: IOPS|read: IOPS)|err=|verify' "$S/fio.txt" 2>/dev/null | sed 's/^ */    /'
		echo
		echo "## Checks (the guest's summary)"
		echo
		sed 's/^/    /' "$OUT/summary.txt" 2>/dev/null
		echo
		echo "## Samples (t_s: seconds since fio started; memory in MiB)"
		echo
		sed 's/^/    /' "$S/samples.tsv" "$S/idle.tsv" 2>/dev/null
	} > "$1"
}
if [ -n "${RESULTS:-}" ]; then
	mkdir -p "$RESULTS" && record "$RESULTS/soak.md" && echo "soak: wrote $RESULTS/soak.md"
fi
if [ "$OK" = 0 ]; then
	echo "soak: FAILED"
	exit 1
fi
echo "soak: OK"
