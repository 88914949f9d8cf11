#!/bin/bash
# `make bench`: the performance table of issue 7.
#   1. On this machine: gotcmu's rbd path through uio/uiotest against fio's librbd engine on a
#      native micro Ceph (test/bench/host-rbd.sh).
#   2. One guest boot (test/vm/build-guest.sh + run-guest.sh): Ceph inside the guest and fio over
#      tcm_loop on gotcmu user:rbd/mem/file, tcmu-runner user:rbd (and file_zbc if it takes random
#      writes), fio's rbd engine, LIO rd_mcp and fileio (test/bench/guest-bench.sh).
#      Every LUN ROUNDS times, alternating, with the cost per IO of each row: the serving
#      daemon's CPU time and context switches (test/cmd/procstat) and fio-rbd's whole process
#      (test/cmd/rusage), both built here into build/bin with CGO_ENABLED=0 for the guest.
#   3. The table with ratios and costs per IO (min-max over the rounds), printed and written as
#      markdown, a PNG chart of the ratios and one of the CPU time per IO (test/cmd/benchreport,
#      gnuplot).
# Usage: test/bench/bench.sh       (make bench runs it under flock /tmp/gotcmu-vm.lock)
#        A guest boot with ROUNDS=2 takes about twice as long as one round (~10 min a round).
# Env:   OUT (default build/bench), RESULTS (where bench.md and bench.png go, default test/results),
#        GOTCMU (default bin/gotcmu), GOTCMU_ARGS, SECS (per guest row, default 10), RAMP
#        (default 0), ROUNDS (default 2), KNOBS, LUNS, ROWS, SPIN, GOTCMU_BASE (see guest-bench.sh),
#        HOST=0 skips step 1, GUEST=0 skips step 2,
#        HOST_SECS/HOST_REPEAT (host-rbd.sh's SECS/REPEAT), MEM (guest MiB, default 6144), T.
# Exit status: 0 when every measurement ran; 1 if one failed (the table shows what there is).
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
cd "$REPO" || exit 2
export PATH=$PATH:/usr/local/go/bin
OUT=$(realpath -m "${OUT:-$REPO/build/bench}")
RESULTS=$(realpath -m "${RESULTS:-$REPO/test/results}")
GOTCMU=$(realpath -m "${GOTCMU:-$REPO/bin/gotcmu}")
STARTED=$(date +%s)
rc=0

command -v gnuplot >/dev/null || { echo "bench: gnuplot missing (gnuplot-nox; run test/deps.sh)" >&2; exit 2; }
[ -x "$GOTCMU" ] || { echo "bench: $GOTCMU missing: run 'make build'" >&2; exit 2; }
case $GOTCMU in /tmp/*|/run/*) echo "bench: the guest cannot see $GOTCMU (its /tmp and /run are its own)" >&2; exit 2 ;; esac
mkdir -p "$OUT" "$RESULTS"
go build -o "$REPO/build/bin/benchreport" ./test/cmd/benchreport || exit 2
# The guest runs them from this machine's root: static binaries.
for t in procstat rusage; do
	CGO_ENABLED=0 go build -o "$REPO/build/bin/$t" "./test/cmd/$t" || exit 2
done

if [ "${HOST:-1}" != 0 ]; then
	echo "==== bench 1/3: gotcmu's rbd path on this machine against fio's librbd engine"
	rm -rf "$OUT/host"
	SECS=${HOST_SECS:-5} REPEAT=${HOST_REPEAT:-3} "$HERE/host-rbd.sh" "$OUT/host" || rc=1
fi

# host_load FILE: every 5 s until killed, a line "UNIX-SECONDS CORES": the CPU time this machine
# spent outside the guest's qemu in those 5 s, in cores (other engineers' builds and guests; the
# guest is emulated, so that load shows in its figures). benchreport puts it beside each row.
host_load() {
	local hz t b q pt="" pb pq line
	hz=$(getconf CLK_TCK)
	while :; do
		t=$(date +%s.%N)
		read -r line < /proc/stat
		# shellcheck disable=SC2086 # the cpu line's fields
		b=$(set -- $line; echo $(($2 + $3 + $4 + $7 + $8 + $9)))
		q=0
		for p in $(pgrep -f -- "path=$OUT/guest,"); do
			q=$((q + $(awk '{ i = index($0, ") "); split(substr($0, i + 2), f, " "); print f[12] + f[13] }' "/proc/$p/stat" 2>/dev/null || echo 0)))
		done
		[ -n "$pt" ] && awk -v t="$t" -v pt="$pt" -v b="$b" -v pb="$pb" -v q="$q" -v pq="$pq" -v hz="$hz" \
			'BEGIN { o = ((b - pb) - (q - pq)) / hz / (t - pt); printf "%d %.2f\n", t, (o < 0 ? 0 : o) }' >> "$1"
		pt=$t pb=$b pq=$q
		sleep 5
	done
}

if [ "${GUEST:-1}" != 0 ]; then
	echo "==== bench 2/3: one guest boot, fio over tcm_loop"
	G=$("$REPO/test/vm/build-guest.sh") || exit 2
	rm -rf "$OUT/guest"; mkdir -p "$OUT/guest"
	ENVS=(-e "GOTCMU=$GOTCMU")
	for v in GOTCMU_ARGS GOTCMU_BASE SECS RAMP ROUNDS KNOBS LUNS ROWS SIZE SPIN; do
		[ -n "${!v:-}" ] && ENVS+=(-e "$v=${!v}")
	done
	# The console goes to a file; the guest script's progress lines are shown.
	QUIET=1 MEM=${MEM:-6144} T=${T:-2400} "$REPO/test/vm/run-guest.sh" "${ENVS[@]}" "$G" "$OUT/guest" "$HERE/guest-bench.sh" &
	pid=$!
	mkdir -p "$OUT/guest/bench"
	host_load "$OUT/guest/bench/host-load" &
	loadpid=$!
	touch "$OUT/guest/console.log"
	tail -n +1 -f --pid="$pid" "$OUT/guest/console.log" | grep --line-buffered -E '^\[[0-9:]+\] |^(PASS|FAIL|SKIP) '
	wait "$pid" || { echo "bench: the guest run failed (see $OUT/guest/console.log)"; rc=1; }
	kill "$loadpid"; wait "$loadpid" 2>/dev/null
fi

echo "==== bench 3/3: the table"
HOSTMD=()
[ -s "$OUT/host/host-rbd.md" ] && HOSTMD=(-host "$OUT/host/host-rbd.md")
if "$REPO/build/bin/benchreport" -md "$RESULTS/bench.md" -dat "$OUT/ratios.dat" -gp "$OUT/ratios.gp" \
	-png "$RESULTS/bench.png" -cpudat "$OUT/cpu.dat" -cpupng "$RESULTS/bench-cpu.png" \
	"${HOSTMD[@]}" "$OUT/guest/bench"; then
	gnuplot "$OUT/ratios.gp" 2> "$OUT/gnuplot.err" || { cat "$OUT/gnuplot.err" >&2; rc=1; }
	echo
	echo "bench: $RESULTS/bench.md, bench.png and bench-cpu.png written in $(($(date +%s) - STARTED)) s"
else
	rc=1
fi
exit $rc
