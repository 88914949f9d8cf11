#!/bin/bash
# gotcmu's rbd path on this machine against fio's librbd engine, same micro Ceph, same image, same
# run (issue 4 point 9, issue 7 point 2): a native micro cluster (test/micro-ceph.sh, memstore),
# then for each row fio --ioengine=rbd and test/cmd/ringload (a handler.Device with the rbd backend
# driven through uio/uiotest's fake kernel) one after the other, and the ratio gotcmu/fio.
#
# Usage: test/bench/host-rbd.sh [OUTDIR]     (default build/bench-host)
# Env:   SECS (measured seconds per run, default 5), RAMP (default 1), REPEAT (runs of each tool per
#        row, alternating fio and gotcmu; the median counts; default 3), TAGS (go-ceph build tag;
#        default from test/ceph-tag.sh), ROWS (subset, e.g. "randread:4k:32 write:1m:8"),
#        SHARING=1 also measures rbd Options.ImagesPerClient: 4 images at 4k randread QD32 each,
#        one client per image against one client for all four,
#        PROFILE=1 writes a CPU profile of each ringload run (OUTDIR/ringload-<row>.pprof).
# Output: the table on stdout and in OUTDIR/host-rbd.md; raw results in OUTDIR/*.json.
# Exit status: 0 when every run completed (goals met or not: the table says), 1 otherwise.
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
cd "$REPO" || exit 2
export PATH=$PATH:/usr/local/go/bin
OUT=$(realpath -m "${1:-$REPO/build/bench-host}")
SECS=${SECS:-5}
RAMP=${RAMP:-1}
REPEAT=${REPEAT:-3}
TAGS=${TAGS:-$(test/ceph-tag.sh)}
ROWS=${ROWS:-randread:4k:32 randwrite:4k:32 read:1m:8 write:1m:8}
IMAGE_SIZE=$((1 << 30))
D=$OUT/ceph
mkdir -p "$OUT"

for tool in fio python3 rbd; do
	command -v "$tool" >/dev/null || { echo "host-rbd: $tool missing (run test/deps.sh)" >&2; exit 2; }
done
fio --enghelp 2>/dev/null | grep -qw rbd || { echo "host-rbd: this fio has no rbd engine" >&2; exit 2; }
echo "host-rbd: building ringload (tags: $TAGS)"
go build -tags "$TAGS" -o "$REPO/build/bin/ringload" ./test/cmd/ringload || exit 2
RINGLOAD=$REPO/build/bin/ringload

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MON_PORT_V2=$(free_port); MON_PORT_V1=$(free_port)
export MON_PORT_V2 MON_PORT_V1
trap 'test/micro-ceph.sh stop "$D" >/dev/null 2>&1' EXIT
# memstore holds every image in RAM, plus room: 3 GiB for the one image, 6 GiB for four.
MEMSTORE=$((3 << 30)); [ "${SHARING:-0}" = 1 ] && MEMSTORE=$((6 << 30))
if ! test/micro-ceph.sh start "$D" "$MEMSTORE" > "$OUT/ceph-start.log" 2>&1; then
	echo "host-rbd: micro cluster failed to start:" >&2; cat "$OUT/ceph-start.log" >&2; exit 1
fi
export CEPH_CONF=$D/ceph.conf
# gotcmu turns librbd's cache off (a gateway must not acknowledge what another cannot read);
# fio's engine gets the same through the conf file, or its writes would land in a writeback cache.
printf '[client]\nrbd cache = false\n' >> "$CEPH_CONF"

bytes() { case $1 in *k) echo $((${1%k} << 10)) ;; *m) echo $((${1%m} << 20)) ;; *) echo "$1" ;; esac; }

new_image() { # new_image NAME: a 1 GiB image, written once end to end so reads hit data
	rbd create "rbd/$1" --size "$((IMAGE_SIZE >> 20))M" || return 1
	fio --name=fill --ioengine=rbd --clientname=admin --pool=rbd --rbdname="$1" --rw=write --bs=4m \
		--iodepth=8 --size="$IMAGE_SIZE" --output-format=terse > /dev/null
}

# fio_rbd RW BS QD IMAGE JSON: fio's librbd engine; prints "IOPS MB/s".
fio_rbd() {
	fio --name=fio-rbd --ioengine=rbd --clientname=admin --pool=rbd --rbdname="$4" --rw="$1" --bs="$2" \
		--iodepth="$3" --time_based --runtime="$SECS" --ramp_time="$RAMP" --randrepeat=0 \
		--output-format=json --output="$5" > /dev/null || return 1
	python3 - "$5" "$1" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
r = j["read" if "read" in sys.argv[2] else "write"]
print("%.0f %.1f" % (r["iops"], r["bw_bytes"] / 1e6))
PY
}

# ringload_rbd RW BS QD JSON [ARGS...]: gotcmu through the fake kernel; prints "IOPS MB/s".
ringload_rbd() {
	local rw=$1 bs=$2 qd=$3 json=$4; shift 4
	"$RINGLOAD" -image rbd/bench -size "$IMAGE_SIZE" -rw "$rw" -bs "$(bytes "$bs")" -qd "$qd" \
		-runtime "${SECS}s" -ramp "${RAMP}s" -json "$@" > "$json" || return 1
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f %.1f" % (r["iops"], r["mb_per_s"]))' "$json"
}

echo "host-rbd: micro cluster up (mon 127.0.0.1:$MON_PORT_V2); writing the 1 GiB image once"
new_image bench || { echo "host-rbd: cannot create the image" >&2; exit 1; }

MD=$OUT/host-rbd.md
{
	echo "| row (median of $REPEAT runs of ${SECS} s) | fio librbd | gotcmu (ringload) | gotcmu / fio |"
	echo "|---|---:|---:|---:|"
} > "$MD"
# median V...: the middle value (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# On a shared machine a run's figure moves with whatever else runs: each tool runs REPEAT times per
# row, the two alternating, and the medians are compared.
rc=0
for row in $ROWS; do
	IFS=: read -r rw bs qd <<< "$row"
	name=$rw-$bs-qd$qd
	unit=IOPS; field=1
	case $rw in read|write) unit=MB/s; field=2 ;; esac
	fs=(); gs=()
	for i in $(seq "$REPEAT"); do
		f=$(fio_rbd "$rw" "$bs" "$qd" bench "$OUT/fio-$name-$i.json") || { echo "host-rbd: fio $name failed" >&2; rc=1; continue 2; }
		prof=()
		[ "${PROFILE:-0}" = 1 ] && [ "$i" = 1 ] && prof=(-cpuprofile "$OUT/ringload-$name.pprof")
		g=$(ringload_rbd "$rw" "$bs" "$qd" "$OUT/ringload-$name-$i.json" "${prof[@]}") ||
			{ echo "host-rbd: ringload $name failed" >&2; rc=1; continue 2; }
		fs+=("$(echo "$f" | cut -d' ' -f$field)"); gs+=("$(echo "$g" | cut -d' ' -f$field)")
	done
	fv=$(median "${fs[@]}"); gv=$(median "${gs[@]}")
	ratio=$(python3 -c "print('%.2f' % ($gv / $fv) if $fv > 0 else 'n/a')")
	line="| $rw $bs QD$qd | $fv $unit | $gv $unit | ${ratio}x |"
	echo "$line" >> "$MD"
	echo "host-rbd: $line   (fio: ${fs[*]}; gotcmu: ${gs[*]})"
done

if [ "${SHARING:-0}" = 1 ]; then
	for i in 1 2 3; do new_image "bench$i" || rc=1; done
	{
		echo
		echo "RADOS client sharing (rbd Options.ImagesPerClient): 4 images, 4k randread QD32 on each at once"
		echo
		echo "| images per client | total IOPS |"
		echo "|---:|---:|"
	} >> "$MD"
	declare -A shared=()
	for i in $(seq "$REPEAT"); do
		for per in 1 4; do
			"$RINGLOAD" -image rbd/bench -images bench,bench1,bench2,bench3 -images-per-client "$per" \
				-size "$IMAGE_SIZE" -rw randread -bs 4096 -qd 32 -runtime "${SECS}s" -ramp "${RAMP}s" -json \
				> "$OUT/sharing-$per-$i.json" || { rc=1; continue; }
			shared[$per]+=" $(python3 -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["iops"])' "$OUT/sharing-$per-$i.json")"
		done
	done
	for per in 1 4; do
		# shellcheck disable=SC2086 # a list of numbers
		echo "| $per | $(median ${shared[$per]:-0}) |" >> "$MD"
		echo "host-rbd: $per image(s) per client: IOPS${shared[$per]:-}"
	done
fi

echo
echo "==== gotcmu's rbd path (uiotest) vs fio --ioengine=rbd, native micro Ceph, same image: median of $REPEAT ${SECS}s runs each"
cat "$MD"
echo
echo "Goals: >= 0.9x on every row (issue 4), >= 0.95x (issue 7). Raw results: $OUT"
exit $rc
