#!/bin/bash
# `make scale`: issue 16, how gotcmu and Debian's tcmu-runner grow with the number of user:rbd LUNs.
#   1. One guest boot (test/vm/build-guest.sh + run-guest.sh) with Ceph inside; for each N of NS
#      and each daemon of DAEMONS in turn, test/scale/guest-scale.sh creates N LUNs on one tcm_loop
#      target and measures start-up, memory, threads, RADOS clients, an aggregate fio load,
#      adoption after SIGKILL and the SIGTERM drain (one line per daemon and N in rows.tsv).
#   0. Before the boot, on this machine: one idle image's cost in memory, threads and RADOS clients
#      (rbd's BenchmarkImageCost against a micro Ceph here: go-ceph alone and gotcmu's handler at
#      rbd_images_per_client 1, 4 and 16), and what linking librbd costs each thread
#      (test/scale/tls-cost.sh), for the report.
#   2. test/results/scale.md (the tables) and scale.png (the curves), from that file (gnuplot).
# Usage: test/scale/scale.sh      (make scale runs it under flock /tmp/gotcmu-vm.lock)
#        The default takes about 30 minutes under TCG: every LUN costs some 6 s of each daemon's
#        turn (created one after the other, adopted, removed), and gotcmu and tcmu-runner run twice. NS=256 (SIZE_MB=4, so that the
#        images fit the memstore OSD) took 39 minutes for gotcmu and tcmu-runner together
#        (2026-12-06 04:46; test/results/scale-data/run8).
# Env:   OUT (default build/scale), RESULTS (default test/results), GOTCMU (default bin/gotcmu),
#        NS (default "1 16 64"), DAEMONS (default "tcmu-runner gotcmu:1 gotcmu:8@1,16 gotcmu:1#2
#        tcmu-runner#2": gotcmu at rbd_images_per_client 1 and 8, the second at N = 1 and 16 only;
#        gotcmu:1 and tcmu-runner twice each, in ABBA order, since a boot's IOPS drift with the turn), SIZE_MB (default 16), MEMSTORE_MB (default 4096),
#        FIO_SECS (default 10), LOAD_INFLIGHT (default 256: guest-scale.sh), ADOPTS (default 1: adoptions per turn), ADOPT_OPENS (gotcmu's open_concurrency for each adoption: guest-scale.sh), MEM (guest MiB, default 10240), T (guest seconds, default 2400), GOTCMU_REV (the commit GOTCMU was built from, for the record; default
#        git describe of this tree), REPORT=0 (only the guest run), GUEST=0 (only the report, from OUT),
#        IMAGE_COST=0 (no step 0: for a run that only compares daemons in the guest).
# Exit status: 0 when every measurement ran; 1 if one failed (the tables show what there is).
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
cd "$REPO" || exit 2
export PATH=$PATH:/usr/local/go/bin
OUT=$(realpath -m "${OUT:-$REPO/build/scale}")
RESULTS=$(realpath -m "${RESULTS:-$REPO/test/results}")
GOTCMU=$(realpath -m "${GOTCMU:-$REPO/bin/gotcmu}")
rc=0

command -v gnuplot >/dev/null || { echo "scale: gnuplot missing (gnuplot-nox; run test/deps.sh)" >&2; exit 2; }
mkdir -p "$OUT" "$RESULTS"

if [ "${GUEST:-1}" != 0 ]; then
	# Step 0, on this machine: one idle image's cost (rbd's BenchmarkImageCost), each configuration
	# in a process of its own against one micro Ceph; the report reads it from the guest's directory.
	echo "==== scale 0/2: one idle image's cost on a micro Ceph here (rbd BenchmarkImageCost)"
	CEPHDIR=$(mktemp -d /tmp/gotcmu-scale-ceph.XXXXXX)
	if [ "${IMAGE_COST:-1}" = 0 ]; then
		echo "scale: IMAGE_COST=0: not measured"; : > "$OUT/image-cost.txt"
	elif go test -c -tags "$("$REPO/test/ceph-tag.sh")" -o "$REPO/build/bin/rbd.test" ./rbd &&
		MON_PORT_V2=3310 MON_PORT_V1=6799 "$REPO/test/micro-ceph.sh" start "$CEPHDIR" > "$OUT/image-cost-ceph.log" 2>&1; then
		for c in go-ceph go-ceph-registered go-ceph-mon-op-timeout images-per-client-1 images-per-client-4 images-per-client-16; do
			(cd rbd && CEPH_CONF=$CEPHDIR/ceph.conf "$REPO/build/bin/rbd.test" -test.run '^$' \
				-test.bench "^BenchmarkImageCost/$c\$" -test.benchtime 1x) | grep '^BenchmarkImageCost/' || rc=1
		done > "$OUT/image-cost.txt"
		cat "$OUT/image-cost.txt"
	else
		echo "scale: BenchmarkImageCost could not run (see $OUT/image-cost-ceph.log)"; rc=1
	fi
	"$REPO/test/micro-ceph.sh" stop "$CEPHDIR" > /dev/null 2>&1; rm -rf "$CEPHDIR"
	# What linking librbd costs each thread (static TLS), for the memory table.
	"$HERE/tls-cost.sh" > "$OUT/tls-cost.txt" || { echo "scale: tls-cost.sh failed"; rc=1; }
	[ -x "$GOTCMU" ] || { echo "scale: $GOTCMU missing: run 'make build'" >&2; exit 2; }
	case $GOTCMU in /tmp/*|/run/*) echo "scale: the guest cannot see $GOTCMU" >&2; exit 2 ;; esac
	# The guest runs it from this machine's root: a static binary.
	CGO_ENABLED=0 go build -o "$REPO/build/bin/lunready" ./test/cmd/lunready || exit 2
	G=$("$REPO/test/vm/build-guest.sh") || exit 2
	rm -rf "$OUT/guest"; mkdir -p "$OUT/guest"
	ENVS=(-e "GOTCMU=$GOTCMU" -e "NS=${NS:-1 16 64}" -e "DAEMONS=${DAEMONS:-tcmu-runner gotcmu:1 gotcmu:8@1,16 gotcmu:1#2 tcmu-runner#2}")
	for v in SIZE_MB MEMSTORE_MB FIO_SECS PROFILE_SECS LOAD_INFLIGHT ADOPTS ADOPT_OPENS; do
		[ -n "${!v:-}" ] && ENVS+=(-e "$v=${!v}")
	done
	echo "==== scale 1/2: one guest boot (MEM ${MEM:-10240} MiB)"
	QUIET=1 MEM=${MEM:-10240} T=${T:-2400} "$REPO/test/vm/run-guest.sh" "${ENVS[@]}" "$G" "$OUT/guest" "$HERE/guest-scale.sh" &
	pid=$!
	touch "$OUT/guest/console.log"
	tail -n +1 -f --pid="$pid" "$OUT/guest/console.log" | grep --line-buffered -E '^\[[0-9:]+\] |^(PASS|FAIL|SKIP) '
	wait "$pid" || { echo "scale: the guest run failed (see $OUT/guest/console.log)"; rc=1; }
	mkdir -p "$OUT/guest/scale"
	cp "$OUT/image-cost.txt" "$OUT/tls-cost.txt" "$OUT/guest/scale/" 2>/dev/null
	{
		echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "gotcmu: $("$GOTCMU" --version 2>&1 | head -1), tree ${GOTCMU_REV:-$(git describe --always --dirty 2>/dev/null)}"
		echo "guest: ${MEM:-10240} MiB, $(cat "$OUT/guest/scale/nproc" 2>/dev/null) CPUs under qemu TCG, kernel $(cat "$OUT/guest/scale/guest-kernel" 2>/dev/null)"
		echo "run: NS=${NS:-1 16 64} DAEMONS=${DAEMONS:-tcmu-runner gotcmu:1 gotcmu:8@1,16 gotcmu:1#2 tcmu-runner#2} SIZE_MB=${SIZE_MB:-16} MEMSTORE_MB=${MEMSTORE_MB:-4096} FIO_SECS=${FIO_SECS:-10} LOAD_INFLIGHT=${LOAD_INFLIGHT:-256} ADOPTS=${ADOPTS:-1} ADOPT_OPENS=${ADOPT_OPENS:-} PROFILE_SECS=${PROFILE_SECS:-5}"
	} > "$OUT/guest/scale/meta"
fi

[ "${REPORT:-1}" = 0 ] && exit $rc
echo "==== scale 2/2: the tables and curves"
"$HERE/report.sh" "$OUT/guest/scale" "$RESULTS/scale.md" "$RESULTS/scale.png" || rc=1
exit $rc
