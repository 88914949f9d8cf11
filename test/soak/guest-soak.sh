#!/bin/bash
# Runs INSIDE the guest (test/soak/soak.sh boots it): 4 LUNs served by gotcmu at queue depth 128
# for SOAK_SECS under fio with CRC32C verification, and gotcmu's goroutines, open fds and RSS
# sampled from its metrics endpoint every minute. See soak.sh for the bounds.
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$REPO/test/vm/lib.sh"
MODE=gotcmu
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
SOAK_SECS=${SOAK_SECS:-600}
BACKENDS=${SOAK_BACKENDS:-file file rbd rbd}
MAXG=${SOAK_MAX_GOROUTINES:-20}
MAXFD=${SOAK_MAX_FDS:-8}
MAXRSS=${SOAK_MAX_RSS_MB:-64}
MAXHEAP=${SOAK_MAX_HEAP_MB:-16}
MAXANON=${SOAK_MAX_ANON_MB:-24}
SIZE=$((256 << 20))
CEPH=/tmp/ceph
OUT=/out/soak
mkdir -p "$OUT"
: > "$SUMMARY"
select_handler

finish() {
	[ -n "${FIO:-}" ] && kill "$FIO" 2>/dev/null
	[ -n "${HANDLER_PID:-}" ] && { stop_handler || log "gotcmu did not stop cleanly"; }
	[ -d "$CEPH" ] && "$REPO/test/micro-ceph.sh" stop "$CEPH" >/dev/null 2>&1
	log "soak: $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

# sample LABEL: one line of goroutines, open fds, RSS and the Go heap in use (MiB) from the
# metrics endpoint, and RSS split as the kernel counts it (MiB): anonymous memory (the Go heap and
# librbd's and librados's C heaps; /proc/PID/status RssAnon) and the pages of the TCMU data areas
# mapped in from /dev/uioN (/proc/PID/smaps), which the kernel hands out as its blocks are first
# used, up to max_data_area_mb per device: bounded by the kernel, not by gotcmu. The rest is
# file-backed: the binary and the shared libraries' pages as code paths are first run.
sample() {
	local m g fd rss heap anon uio
	m=$(curl -s --max-time 10 http://127.0.0.1:9560/metrics)
	g=$(awk '$1 == "go_goroutines" { print int($2) }' <<< "$m")
	fd=$(awk '$1 == "process_open_fds" { print int($2) }' <<< "$m")
	rss=$(awk '$1 == "process_resident_memory_bytes" { printf "%.1f", $2 / 1048576 }' <<< "$m")
	heap=$(awk '$1 == "go_memstats_heap_inuse_bytes" { printf "%.1f", $2 / 1048576 }' <<< "$m")
	anon=$(awk '$1 == "RssAnon:" { printf "%.1f", $2 / 1024 }' "/proc/$HANDLER_PID/status")
	uio=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { in_uio = ($6 ~ "^/dev/uio") } in_uio && $1 == "Rss:" { kb += $2 }
		END { printf "%.1f", kb / 1024 }' "/proc/$HANDLER_PID/smaps")
	printf '%-10s %6s s  goroutines=%-5s open_fds=%-5s rss_mib=%-7s anon_mib=%-7s data_area_mib=%-7s go_heap_mib=%s\n' \
		"$1" "$(($(date +%s) - T0))" "${g:-?}" "${fd:-?}" "${rss:-?}" "${anon:-?}" "${uio:-?}" "${heap:-?}" |
		tee -a "$OUT/samples.txt"
	echo "$g $fd $rss $heap $anon" > "$OUT/sample-$1"
}

T0=$(date +%s)
: > "$OUT/samples.txt"
log "soak: ${SOAK_SECS} s, LUNs: $BACKENDS"
handler_present || { fail "gotcmu: $GOTCMU not found (make build)"; finish; }
check "gotcmu starts" start_handler "$OUT/gotcmu.log" || finish
if [[ " $BACKENDS " == *" rbd "* ]]; then
	if MON_PORT_V2=3300 MON_PORT_V1=6789 "$REPO/test/micro-ceph.sh" start "$CEPH" $((3 << 29)) > "$OUT/ceph-start.log" 2>&1; then
		pass "micro Ceph up"
	else
		fail "micro Ceph did not start (see $OUT/ceph-start.log)"; finish
	fi
fi

DEVS=()
i=0
for be in $BACKENDS; do
	case $be in
	file) truncate -s "$SIZE" "/tmp/soak$i.img"; cfg="file//tmp/soak$i.img" ;;
	rbd) CEPH_CONF=$CEPH/ceph.conf rbd create "rbd/soak$i" --size 256M || { fail "rbd create soak$i"; finish; }
		cfg="rbd/rbd/soak$i;conf=$CEPH/ceph.conf" ;;
	*) fail "unknown backend $be"; finish ;;
	esac
	dir=$CFG/core/user_$((10 + i))/soak$i
	mkdir -p "$dir" && put "dev_config=$cfg" "$dir/control" && put "dev_size=$SIZE" "$dir/control" &&
		bounded 60 put 1 "$dir/enable" && put "$(new_uuid)" "$dir/wwn/vpd_unit_serial" ||
		{ fail "LUN $i ($be) enabled"; finish; }
	dev=$(loop_export "$(printf 'naa.50014050000050%02x' "$i")" "$dir")
	check "LUN $i: user:$be on tcm_loop (${dev:-none})" test -b "$dev" || finish
	# tcm_loop's default queue depth is 128 already; say it, so the run is what it claims.
	echo 128 > "/sys/block/${dev#/dev/}/device/queue_depth" 2>/dev/null
	log "LUN $i $dev queue_depth $(cat "/sys/block/${dev#/dev/}/device/queue_depth")"
	DEVS+=("$dev")
	i=$((i + 1))
done

{
	echo "[global]"
	echo "ioengine=libaio"; echo "direct=1"; echo "iodepth=128"; echo "bs=4k"; echo "rw=randwrite"
	echo "size=256m"; echo "verify=crc32c"; echo "verify_backlog=4096"; echo "verify_fatal=1"
	echo "time_based=1"; echo "runtime=$SOAK_SECS"
	for i in "${!DEVS[@]}"; do echo "[lun$i]"; echo "filename=${DEVS[$i]}"; done
} > "$OUT/soak.fio"
sample idle
fio --output="$OUT/fio.txt" "$OUT/soak.fio" &
FIO=$!
sleep 60
sample start
ELAPSED=60
while [ $((ELAPSED + 60)) -lt "$SOAK_SECS" ] && kill -0 "$FIO" 2>/dev/null; do
	sleep 60
	ELAPSED=$((ELAPSED + 60))
	sample "t+$ELAPSED"
done
[ "$ELAPSED" -lt $((SOAK_SECS - 10)) ] && sleep $((SOAK_SECS - 10 - ELAPSED))
sample end
wait "$FIO"; FRC=$?
FIO=""
sample after
cat "$OUT/fio.txt"
grep -E '^\s*(write|read): IOPS' "$OUT/fio.txt" | head -8
check "fio ran ${SOAK_SECS} s on ${#DEVS[@]} LUNs at QD 128 and exited 0 (no I/O or verify error)" test "$FRC" -eq 0
check "fio reports err=0 for every LUN" test "$(grep -c 'err= 0' "$OUT/fio.txt")" -eq "${#DEVS[@]}"
dmesg | grep -i 'I/O error\|blk_update_request' > "$OUT/dmesg-io-errors.txt"
check "no I/O error in the kernel log ($(wc -l < "$OUT/dmesg-io-errors.txt") lines)" test ! -s "$OUT/dmesg-io-errors.txt"
read -r G0 F0 R0 H0 A0 < "$OUT/sample-start"
read -r G1 F1 R1 H1 A1 < "$OUT/sample-end"
check "goroutines stable under load: $G0 -> $G1 (bound +$MAXG)" test "$((G1 - G0))" -le "$MAXG"
check "open fds stable under load: $F0 -> $F1 (bound +$MAXFD)" test "$((F1 - F0))" -le "$MAXFD"
# grew_at_most FROM TO BOUND: TO - FROM <= BOUND, in MiB with decimals.
grew_at_most() { awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN { exit !(b - a <= m) }'; }
check "RSS stable under load: $R0 -> $R1 MiB (bound +$MAXRSS MiB)" grew_at_most "$R0" "$R1" "$MAXRSS"
check "Go heap stable under load: $H0 -> $H1 MiB (bound +$MAXHEAP MiB)" grew_at_most "$H0" "$H1" "$MAXHEAP"
check "anonymous memory stable under load: $A0 -> $A1 MiB (bound +$MAXANON MiB)" grew_at_most "$A0" "$A1" "$MAXANON"
check "gotcmu still running" kill -0 "$HANDLER_PID"
stop_handler; SRC=$?
check "gotcmu exits 0 on SIGTERM after the soak (status $SRC)" test "$SRC" -eq 0
finish
