#!/bin/bash
# Runs INSIDE the guest (test/soak/soak.sh boots it; see there for what it checks): 4 LUNs served by
# gotcmu (file LUNs at queue depth 128, rbd LUNs at SOAK_RBD_IODEPTH, default 16) for SOAK_S
# seconds under fio with CRC32C verification, the rbd ones on a
# micro Ceph of 3 memstore OSDs (pool size 3, min_size 2) with one OSD SIGKILLed and started again
# a fifth of the way in; gotcmu's goroutines, open fds, OS threads, memory and Go heap sampled every SOAK_EVERY
# seconds into /out/soak/samples.tsv, whose last-half trend test/cmd/soakreport judges.
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$REPO/test/vm/lib.sh"
MODE=gotcmu
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
SOAKREPORT=${SOAKREPORT:-$REPO/build/bin/soakreport}
SOAK_S=${SOAK_S:-3600}
SOAKREPORT_ARGS=${SOAKREPORT_ARGS:-}
BACKENDS=${SOAK_BACKENDS:-file file rbd rbd}
# Sample every minute; more often for short runs, so that the last half has 20 samples at least
# (never more often than every 10 s: a sample reads smaps, a second's work under TCG).
EVERY=${SOAK_EVERY:-$((SOAK_S / 40 < 60 ? (SOAK_S / 40 > 10 ? SOAK_S / 40 : 10) : 60))}
# The OSD fault: osd.1 SIGKILLed at a fifth of the run and started again SOAK_OSD_DOWN s later, so
# that its restart and the backfill after it end before the last half, whose trend is judged. At
# 40% (the run of 2026-12-05 19:16) the backfill took 815 s and ran into the last half, and the
# one step in anonymous memory (9.5 MiB at +2200 s of 3600) fell inside it.
KILL_AT=${SOAK_OSD_KILL_AT:-$((SOAK_S / 5))}
DOWN=${SOAK_OSD_DOWN:-60}
# fio's queue depth per rbd LUN. With three replicas on memstore OSDs sharing the guest's two
# TCG vCPUs with fio and the file LUNs, the rbd LUNs complete a few tens of writes a second: at
# queue depth 128 a command waited longer than the 30 s SCSI and TCMU timeouts (the first 600 s
# run of 2026-12-05, 33 s into the load: aborts, then a write failed with "Logical unit
# communication failure"). At 16 a command waits an eighth as long; the file LUNs stay at 128.
RBD_QD=${SOAK_RBD_IODEPTH:-16}
SIZE=$((256 << 20))
CEPH=/tmp/ceph
OUT=/out/soak
mkdir -p "$OUT"
uname -r > /out/guest-kernel
: > "$SUMMARY"
select_handler

finish() {
	[ -n "${FIO:-}" ] && kill "$FIO" 2>/dev/null
	[ -n "${FAULT:-}" ] && kill "$FAULT" 2>/dev/null
	[ -n "${PROBE:-}" ] && kill "$PROBE" 2>/dev/null
	[ -n "${HANDLER_PID:-}" ] && { stop_handler || log "gotcmu did not stop cleanly"; }
	if [ -d "$CEPH" ]; then
		cp "$CEPH"/*.log "$OUT/" 2>/dev/null
		"$REPO/test/micro-ceph.sh" stop "$CEPH" >/dev/null 2>&1
	fi
	log "soak: $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

# now: seconds since the load started.
now() { echo $(($(date +%s) - T0)); }
# event WHAT: a timed line in events.txt (copied into the record).
event() { echo "+$(now) s $*" | tee -a "$OUT/events.txt"; }

# metric NAME: a value of gotcmu's metrics endpoint (fetched into M by sample).
metric() { awk -v n="$1" '$1 == n { print $2 }' <<< "$M"; }
# mib BYTES: in MiB with one decimal; "?" when empty.
mib() { [ -n "$1" ] && awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }' || echo '?'; }
# status KEY: a field of /proc/PID/status, its number only.
status() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$HANDLER_PID/status"; }

# sample: one line of samples.tsv: goroutines, open fds and the Go heap in use from the metrics
# endpoint; OS threads and RSS split as the kernel counts it (MiB): anonymous memory (the Go heap
# and librbd's and librados's C heaps; smaps_rollup's Anonymous) and the pages of the TCMU data areas mapped in
# from /dev/uioN (smaps), which the kernel hands out as their blocks are first used, up to
# max_data_area_mb per device: bounded by the kernel, not by gotcmu. The rest of RSS is
# file-backed: the binary and the shared libraries' pages as code paths are first run.
# The C heap (glibc malloc, gotcmu_c_heap_bytes: librados', librbd's and gotcmu's cgo allocations)
# in use and held free by malloc's arenas tells a leak from memory malloc keeps; the guest's
# MemAvailable tells whether the guest itself ran short (the 15:44 run of 2026-12-05 did not say).
sample() {
	local t g fd heap gosys rss anon uio thr avail
	t=$(now)
	M=$(curl -s --max-time 10 http://127.0.0.1:9560/metrics)
	g=$(metric go_goroutines); fd=$(metric process_open_fds)
	heap=$(mib "$(metric go_memstats_heap_inuse_bytes)")
	# What the Go runtime holds from the OS and has not given back: heap (in use, idle, free),
	# stacks, GC metadata, mspans; RssAnon less this and the C heap is the rest (thread stacks,
	# librados' own mmaps).
	gosys=$(awk '$1 == "go_memstats_sys_bytes" { s = $2 } $1 == "go_memstats_heap_released_bytes" { r = $2 }
		END { if (s != "") print s - r }' <<< "$M")
	rss=$(mib "$(metric process_resident_memory_bytes)")
	# Anonymous memory from smaps_rollup, which walks the page tables. proc(5) calls the status
	# fields inaccurate: the guest's 6.1 kernel keeps RssAnon in per-thread caches synced every 64
	# page events (split RSS counting, replaced in 6.2), so with N threads it may be off by up to
	# N x 64 pages.
	anon=$(awk '$1 == "Anonymous:" { print $2 }' "/proc/$HANDLER_PID/smaps_rollup"); thr=$(status Threads)
	[ -n "$anon" ] && anon=$(mib $((anon << 10)))
	uio=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { in_uio = ($6 ~ "^/dev/uio") } in_uio && $1 == "Rss:" { kb += $2 }
		END { print kb * 1024 }' "/proc/$HANDLER_PID/smaps")
	avail=$(awk '$1 == "MemAvailable:" { print $2 * 1024 }' /proc/meminfo)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "${g:-?}" "${fd:-?}" "${thr:-?}" "${anon:-?}" \
		"${heap:-?}" "$(mib "$gosys")" "$rss" "$(mib "$uio")" "$(mib "$(metric 'gotcmu_c_heap_bytes{state="in_use"}')")" \
		"$(mib "$(metric 'gotcmu_c_heap_bytes{state="free"}')")" "$(mib "$avail")"
}
COLS=$(printf '%s\t' t_s goroutines open_fds threads anon_mib go_heap_mib go_sys_mib rss_mib data_area_mib c_heap_mib c_free_mib guest_avail_mib)

# stall_probe: the guest's own pulse. A 1 s sleep that takes STALL_MS or more means every process
# of the guest waited (TCG starved by the host, or the guest reclaiming memory), gotcmu and the
# OSDs alike; each such gap goes to stalls.txt, so that a command the kernel timed out can be told
# from one gotcmu held while the rest of the guest ran. (The 15:44 run of 2026-12-05 failed a file
# LUN's reads in the same half minute as an rbd LUN's writes; the monitor's log showed it delayed
# 89 s then, and the OSDs missed each other's heartbeats for 40 s: a guest stall, read by hand.)
# 10 s: at 3 s the first run with the probe (19:16) logged 171 gaps in the hour, a 1 s sleep
# taking 3-7.5 s whenever fio, the OSDs and gotcmu kept both TCG vCPUs busy: that is the load,
# not a stall. The kernel's command timer is 30 s.
STALL_MS=${SOAK_STALL_MS:-10000}
stall_probe() {
	local prev cur gap
	prev=$(date +%s%N)
	while sleep 1; do
		cur=$(date +%s%N)
		gap=$(((cur - prev) / 1000000))
		[ "$gap" -ge "$STALL_MS" ] && echo "+$(now) s the guest stalled: a 1 s sleep took $gap ms" >> "$OUT/stalls.txt"
		prev=$cur
	done
}

# osd_fault: osd.1 SIGKILLed at KILL_AT, started again DOWN s later, then the time until every PG
# is active+clean again (the restarted memstore OSD comes back empty and is backfilled). Runs in
# the background beside the sampling; its steps go to events.txt, its verdict to osd-fault.rc.
osd_fault() {
	local pid
	[ "$(now)" -lt "$KILL_AT" ] && sleep $((KILL_AT - $(now)))
	pid=$(cat "$CEPH/run/osd.1.pid")
	event "pg stat before: $(ceph pg stat 2>&1)"
	kill -KILL "$pid" || { event "osd.1 (pid ${pid:-?}) could not be killed"; echo 1 > "$OUT/osd-fault.rc"; return; }
	event "osd.1 (pid $pid) SIGKILLed"
	sleep "$DOWN"
	if ! timeout 300 "$REPO/test/micro-ceph.sh" start-osd "$CEPH" 1 >> "$OUT/osd-restart.log" 2>&1; then
		event "osd.1 did not come back up (see osd-restart.log)"; echo 1 > "$OUT/osd-fault.rc"; return
	fi
	event "osd.1 started again and up in the OSD map"
	until ceph pg stat 2>/dev/null | grep -Eq '^([0-9]+) pgs: \1 active\+clean;'; do
		[ "$(now)" -lt "$SOAK_S" ] || { event "PGs not all active+clean by the end of the load: $(ceph pg stat 2>&1)"
			echo 1 > "$OUT/osd-fault.rc"; return; }
		sleep 5
	done
	event "every PG active+clean again: $(ceph pg stat 2>&1)"
	echo 0 > "$OUT/osd-fault.rc"
}

: > "$OUT/events.txt"
log "soak: ${SOAK_S} s, LUNs: $BACKENDS, a sample every $EVERY s"
handler_present || { fail "gotcmu: $GOTCMU not found (make build)"; finish; }
[ -x "$SOAKREPORT" ] || { fail "soakreport: $SOAKREPORT not found"; finish; }
check "gotcmu starts" start_handler "$OUT/gotcmu.log" || finish
RBD=0
if [[ " $BACKENDS " == *" rbd "* ]]; then
	RBD=1
	export CEPH_CONF=$CEPH/ceph.conf
	# 1 GiB of memstore per OSD: each holds a copy of every rbd image (2 x 256 MiB), under the
	# backfillfull ratio (90%) with room to spare, so the restarted OSD can be backfilled.
	if OSDS=3 MON_PORT_V2=3300 MON_PORT_V1=6789 "$REPO/test/micro-ceph.sh" start "$CEPH" $((1 << 30)) > "$OUT/ceph-start.log" 2>&1; then
		pass "micro Ceph up: 3 memstore OSDs, pool rbd of size $(ceph osd pool get rbd size -f plain 2>&1 | awk '{print $2}'), min_size $(ceph osd pool get rbd min_size 2>&1 | awk '{print $2}')"
	else
		fail "micro Ceph did not start (see $OUT/ceph-start.log)"; finish
	fi
fi

DEVS=(); KINDS=()
i=0
for be in $BACKENDS; do
	case $be in
	file) truncate -s "$SIZE" "/tmp/soak$i.img"; cfg="file//tmp/soak$i.img" ;;
	rbd) rbd create "rbd/soak$i" --size 256M || { fail "rbd create soak$i"; finish; }
		cfg="rbd/rbd/soak$i;conf=$CEPH/ceph.conf" ;;
	*) fail "unknown backend $be"; finish ;;
	esac
	dir=$CFG/core/user_$((10 + i))/soak$i
	mkdir -p "$dir" && put "dev_config=$cfg" "$dir/control" && put "dev_size=$SIZE" "$dir/control" &&
		bounded 60 put 1 "$dir/enable" && put "$(new_uuid)" "$dir/wwn/vpd_unit_serial" ||
		{ fail "LUN $i ($be) enabled"; finish; }
	# The rbd LUNs as ceph-iscsi sets them up (ceph_iscsi_config/lun.py): no kernel command timer
	# (cmd_time_out 0), so a command waits for rados_osd_op_timeout (30 s) and gotcmu's recovery
	# instead of the kernel's 30 s timer racing it; qfull_time_out 5. The file LUNs keep the
	# kernel's defaults. (In the 15:44 run both timers were 30 s, and the kernel failed the writes
	# a backfilling cluster had held 30 s a second before gotcmu's own timeout fired.)
	if [ "$be" = rbd ]; then
		put 0 "$dir/attrib/cmd_time_out" && put 5 "$dir/attrib/qfull_time_out" ||
			{ fail "LUN $i: cmd_time_out 0 and qfull_time_out 5 as ceph-iscsi sets them"; finish; }
	fi
	dev=$(loop_export "$(printf 'naa.50014050000050%02x' "$i")" "$dir")
	check "LUN $i: user:$be on tcm_loop (${dev:-none})" test -b "$dev" || finish
	# tcm_loop's default queue depth is 128 already; say it, so the run is what it claims.
	echo 128 > "/sys/block/${dev#/dev/}/device/queue_depth" 2>/dev/null
	log "LUN $i $dev queue_depth $(cat "/sys/block/${dev#/dev/}/device/queue_depth")"
	DEVS+=("$dev"); KINDS+=("$be")
	i=$((i + 1))
done

{
	echo "[global]"
	echo "ioengine=libaio"; echo "direct=1"; echo "iodepth=128"; echo "bs=4k"; echo "rw=randwrite"
	echo "size=256m"; echo "verify=crc32c"; echo "verify_backlog=4096"; echo "verify_fatal=1"
	echo "time_based=1"; echo "runtime=$SOAK_S"
	for i in "${!DEVS[@]}"; do
		echo "[lun$i]"; echo "filename=${DEVS[$i]}"
		[ "${KINDS[$i]}" = rbd ] && echo "iodepth=$RBD_QD"
	done
} > "$OUT/soak.fio"
T0=$(date +%s)
{ echo "# before the load:"; echo "#$COLS"; printf '#'; sample; } > "$OUT/idle.tsv"
fio --output="$OUT/fio.txt" "$OUT/soak.fio" &
FIO=$!
T0=$(date +%s)
event "fio started on ${#DEVS[@]} LUNs (guest uptime $(cut -d' ' -f1 /proc/uptime) s: the kernel log's clock)"
: > "$OUT/stalls.txt"
stall_probe &
PROBE=$!
if [ "$RBD" = 1 ]; then
	osd_fault &
	FAULT=$!
fi
echo "$COLS" > "$OUT/samples.tsv"
k=1
while kill -0 "$FIO" 2>/dev/null; do
	next=$((k * EVERY))
	[ "$next" -le $((SOAK_S - 2)) ] || break
	[ "$(now)" -lt "$next" ] && sleep $((next - $(now)))
	kill -0 "$FIO" 2>/dev/null || break
	sample >> "$OUT/samples.tsv"
	k=$((k + 1))
done
wait "$FIO"; FRC=$?
FIO=""
event "fio exited $FRC"
{ echo "# after the load:"; printf '#'; sample; } >> "$OUT/idle.tsv"
cat "$OUT/samples.tsv" "$OUT/idle.tsv"
grep -E '^\s*(write|read): IOPS|err=' "$OUT/fio.txt"
check "fio ran ${SOAK_S} s on ${#DEVS[@]} LUNs (file at QD 128, rbd at QD $RBD_QD) and exited 0 (no I/O or verify error)" test "$FRC" -eq 0
check "fio reports err=0 for every LUN" test "$(grep -c 'err= 0' "$OUT/fio.txt")" -eq "${#DEVS[@]}"
if [ "$RBD" = 1 ]; then
	wait "$FAULT"; FAULT=""
	check "osd.1 SIGKILLed at +${KILL_AT} s, started again ${DOWN} s later, every PG active+clean again before the end of the load" \
		test "$(cat "$OUT/osd-fault.rc" 2>/dev/null)" = 0
	ceph -s > "$OUT/ceph-status.txt" 2>&1
fi
kill "$PROBE" 2>/dev/null; PROBE=""
log "guest stalls of ${STALL_MS} ms or more: $(wc -l < "$OUT/stalls.txt")$(sort -t' ' -k11 -n "$OUT/stalls.txt" | tail -1 | awk '{ print ", longest " $11 " ms at " $1 " s" }')"
dmesg | grep -i 'I/O error\|blk_update_request' > "$OUT/dmesg-io-errors.txt"
check "no I/O error in the kernel log ($(wc -l < "$OUT/dmesg-io-errors.txt") lines)" test ! -s "$OUT/dmesg-io-errors.txt"
# shellcheck disable=SC2086 # SOAKREPORT_ARGS is a list of words
"$SOAKREPORT" $SOAKREPORT_ARGS -run "$SOAK_S" -md "$OUT/trend.md" "$OUT/samples.tsv" > "$OUT/trend.txt" 2>&1; SRC=$?
cat "$OUT/trend.txt"
check "anonymous memory, Go heap, goroutines, fds and OS threads flat over the last half (soakreport exit $SRC)" test "$SRC" -eq 0
check "gotcmu still running" kill -0 "$HANDLER_PID"
stop_handler; SRC=$?
check "gotcmu exits 0 on SIGTERM after the soak (status $SRC)" test "$SRC" -eq 0
finish
