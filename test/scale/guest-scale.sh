#!/bin/bash
# Runs INSIDE the guest (test/scale/scale.sh boots it): issue 16, N user:rbd LUNs per daemon.
# One boot, Ceph inside the guest, one tcm_loop target; for each N of NS and each daemon of
# DAEMONS, one daemon at a time (both want the TCM-USER netlink family):
#   1. N fresh images <daemon>-n<N>-0.. (SIZE_MB each); start the daemon; create N user:rbd
#      backstores on them, one after the other as targetcli would, and export each as a LUN
#      of the target: create_s; then lunready reads 4 KiB from every LUN at once: ready_s
#      (both from the first mkdir); then writes 4 KiB to every LUN at once (the exclusive
#      locks taken): first_write_s;
#   2. idle: the daemon's context switches a second, RssAnon/RssFile/RssShmem
#      (/proc/PID/status), OS threads, fds (and by kind),
#      RADOS clients (threads named msgr-worker-0: each librados client starts one set of
#      messenger workers), and for gotcmu its goroutines and the cost of one metrics scrape
#      (series, ms) and of one `gotcmu status` (ms); for both, this run's entries in Ceph's
#      service map (ceph-iscsi reads it) and the time of one `ceph service dump`;
#   3. fio, one job per LUN, 4k random 70/30 read/write at iodepth 4 each for FIO_SECS after
#      a 2 s ramp (at most LOAD_INFLIGHT commands in all, default 256: iodepth
#      LOAD_INFLIGHT / N at N above 64, so 1 at 256; the one memstore OSD of the emulated guest
#      answered 1,024 in flight slower than the 30 s op timeout, 2026-12-06):
#      total IOPS, p99 read and write latency (fio's group report), the daemon's CPU and
#      switches per IO and the guest's busy share (/proc), RSS after the load;
#   4. SIGKILL, start again, lunready from the start: adopt_s (first read answered on every
#      LUN; a read needs no exclusive lock, so no lock takeover is in this figure); ADOPTS
#      times (default 1): adopt_s is their median (the lower middle one of an even count),
#      adopts.txt in the turn's directory has each.
#      ADOPT_OPENS, one word per adoption (ADOPTS is then their number), runs gotcmu's with
#      that open_concurrency (- for the spec's own): adopt_s is the median of the - ones;
#   5. the LUNs leave the target, then SIGTERM: drain_s until the daemon has exited with its N
#      devices open; then the backstores are removed with no daemon running.
# One line per (daemon, N) in /out/scale/rows.tsv (header in its first line); logs beside it.
# Env: GOTCMU, NS (default "1 16"), DAEMONS (default "gotcmu:1 gotcmu:8 tcmu-runner"; gotcmu:K
#      runs gotcmu with rbd_images_per_client = K, gotcmu:K:P:A also with GOMAXPROCS=P and
#      MALLOC_ARENA_MAX=A (- for the default), gotcmu:K:P:A:thp with transparent_hugepages = true (:nothp: false), gotcmu:K:P:A:H:sysmon with the Go runtime's own sysmon (GODEBUG=schedtrace=0), gotcmu:K:P:A:H:S:O with open_concurrency = O; #TAG a second turn; a spec ending in @N,N... runs at those N only:
#      test/scale/spec.sh), SIZE_MB (default 16), MEMSTORE_MB (default 4096), FIO_SECS
#      (default 10), TOOLS (lunready's directory, default $REPO/build/bin), PROFILE_SECS
#      (default 5: the daemon's CPU profile under a second fio run of the same load, perf's for
#      either daemon and Go's for gotcmu (--debug-addr); 0 skips it), LOAD_INFLIGHT (default 256),
#      ADOPTS (default 1), ADOPT_OPENS (default none).
#      After the load, threads-load.txt: the daemon's CPU and switches per IO by kind of thread;
#      procs-load.txt: the whole guest's CPU per IO by process; the OSD's threads
#      (osd-threads-load.txt), client ops per IO (osd-load.txt) and the kinds of op it served
#      (osd-ops.txt, from its op history).
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
OUT=/out/scale
SUMMARY=$OUT/summary.txt
mkdir -p "$OUT"
# shellcheck source=test/vm/lib.sh
. "$REPO/test/vm/lib.sh"
# shellcheck source=test/scale/spec.sh
. "$HERE/spec.sh"
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
TOOLS=${TOOLS:-$REPO/build/bin}
NS=${NS:-1 16}
DAEMONS=${DAEMONS:-gotcmu:1 gotcmu:8 tcmu-runner}
SIZE_MB=${SIZE_MB:-16}
FIO_SECS=${FIO_SECS:-10}
LOAD_INFLIGHT=${LOAD_INFLIGHT:-256}
PROFILE_SECS=${PROFILE_SECS:-5}
ADOPTS=${ADOPTS:-1}
# memstore keeps every object written to as long as its highest byte written (a 4 KiB write
# near an object's end holds the whole 4 MiB): random writes fill it at N objects per image.
# A full OSD stops every write (and then tcmu-runner's commands time out after 30 s): each
# (daemon, N)'s images are removed after its turn, and the store is given room.
MEMSTORE_MB=${MEMSTORE_MB:-4096}
WWN=naa.5001405000005ca1
: > "$SUMMARY"
ROWS=$OUT/rows.tsv
printf 'daemon\tn\tcreate_s\tready_s\trss_anon_kib\trss_file_kib\trss_shmem_kib\tthreads\tgoroutines\tfds\trados_clients\tscrape_series\tscrape_ms\tstatus_ms\tiops\tp99_read_us\tp99_write_us\trss_load_kib\tadopt_s\tdrain_s\tfirst_write_s\tcpu_us_per_io\tswitches_per_io\tdaemon_cpus\tguest_busy\tidle_switches_per_s\tsvc_entries\tsvc_dump_ms\tload_qd\n' > "$ROWS"
# 256 librados clients hold some 13 fds each: above the default soft limit of 1024.
ulimit -n 1048576

log "scale: Ceph"
mkdir -p /etc/ceph
"$REPO/test/micro-ceph.sh" start /tmp/ceph $((MEMSTORE_MB << 20)) > "$OUT/ceph-start.log" 2>&1 || { fail "micro Ceph did not start"; exit 1; }
export CEPH_CONF=/tmp/ceph/ceph.conf
ln -sf /tmp/ceph/ceph.conf /etc/ceph/ceph.conf
cp /tmp/ceph/keyring /etc/ceph/ceph.client.admin.keyring
printf '[client]\nrbd cache = false\n' >> /tmp/ceph/ceph.conf
pass "Ceph up"
nproc > "$OUT/nproc"
free -m > "$OUT/free"
uname -r > "$OUT/guest-kernel"

# mkimages PREFIX N: images PREFIX0 .. PREFIX<N-1> of SIZE_MB, in one process (an rbd(8) per
# image costs a second or more under TCG). Every (daemon, N) gets images of its own, so that no
# run inherits an exclusive lock the previous daemon's SIGKILLed client still holds.
mkimages() {
	/usr/bin/python3 - "$1" "$2" "$SIZE_MB" <<'PY'
import sys, rados, rbd
prefix, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with rados.Rados(conffile="/etc/ceph/ceph.conf") as c, c.open_ioctx("rbd") as io:
    for i in range(n):
        rbd.RBD().create(io, "%s%d" % (prefix, i), mb << 20)
PY
}

# rmimages PREFIX N: remove them (memstore frees their objects).
rmimages() {
	/usr/bin/python3 - "$1" "$2" <<'PY'
import sys, rados, rbd
prefix, n = sys.argv[1], int(sys.argv[2])
with rados.Rados(conffile="/etc/ceph/ceph.conf") as c, c.open_ioctx("rbd") as io:
    for i in range(n):
        rbd.RBD().remove(io, "%s%d" % (prefix, i))
PY
}

# proc_field PID FIELD: a kB field of /proc/PID/status, as a number.
proc_field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
# rollup_field PID FIELD: a kB field of /proc/PID/smaps_rollup, which walks the page tables. Memory
# comes from here: proc(5) calls status' RSS fields inaccurate, and the guest's 6.1 kernel keeps
# them in per-thread caches synced every 64 page events (250 MiB off at 1,000 threads, at most).
rollup_field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/smaps_rollup"; }

# rados_clients PID: threads named msgr-worker-0, one per librados client.
rados_clients() { grep -lx 'msgr-worker-0' /proc/"$1"/task/*/comm 2>/dev/null | wc -l; }

# start_daemon NAME IPC PROCS ARENAS THP SYSMON OPENS LOG: start the daemon in the background
# (PROCS: gotcmu's GOMAXPROCS, ARENAS its MALLOC_ARENA_MAX, OPENS its open_concurrency, - for the
# default; THP thp or nothp for gotcmu's transparent_hugepages = true or false; SYSMON sysmon for
# the Go runtime's own sysmon); sets DPID.
start_daemon() {
	local name=$1 ipc=$2 procs=$3 arenas=$4 thp=$5 sysmon=$6 opens=$7 out=$8 env=()
	[ "$procs" = - ] || env+=("GOMAXPROCS=$procs")
	[ "$arenas" = - ] || env+=("MALLOC_ARENA_MAX=$arenas")
	[ "$sysmon" != sysmon ] || env+=("GODEBUG=schedtrace=0")
	case $name in
	gotcmu)
		printf 'rbd_images_per_client = %s\n' "$ipc" > /tmp/scale-tcmu.conf
		case $thp in
		thp) echo "transparent_hugepages = true" >> /tmp/scale-tcmu.conf ;;
		nothp) echo "transparent_hugepages = false" >> /tmp/scale-tcmu.conf ;;
		esac
		[ "$opens" = - ] || echo "open_concurrency = $opens" >> /tmp/scale-tcmu.conf
		env "${env[@]}" "$GOTCMU" --config /tmp/scale-tcmu.conf -l "" --metrics-addr 127.0.0.1:9560 --debug-addr 127.0.0.1:9198 > "$out" 2>&1 & ;;
	tcmu-runner)
		mkdir -p "$out.d"
		tcmu-runner --tcmu-log-dir="$out.d" > "$out" 2>&1 & ;;
	esac
	DPID=$!
}

# wait_exit PID SECONDS: wait for PID (a child) to exit; 1 if it is still running.
wait_exit() {
	local deadline=$(($(date +%s) + $2))
	while kill -0 "$1" 2>/dev/null; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
	wait "$1" 2>/dev/null
	return 0
}

secs_since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# midlayer DEV...: the disks' SCSI midlayer counters, summed: "DONE ERR TMO" (commands
# completed, completed other than GOOD: BUSY, CHECK CONDITION or a host error, timed out).
midlayer() {
	local d f v sum=(0 0 0) i
	for d in "$@"; do
		i=0
		for f in iodone_cnt ioerr_cnt iotmo_cnt; do
			v=$(cat "/sys/block/${d#/dev/}/device/$f" 2> /dev/null) || v=0
			sum[i]=$((sum[i] + v)) i=$((i + 1))
		done
	done
	echo "${sum[*]}"
}

# cpu_split: the guest's CPU time so far from /proc/stat, "USER SYSTEM SOFTIRQ IDLE" in ticks
# (user with nice, system with irq; idle with iowait).
cpu_split() { awk '$1 == "cpu" { print $2 + $3, $4 + $7, $8, $5 + $6; exit }' /proc/stat; }

# cost_snapshot PID DEV...: one line "daemon_ticks daemon_switches guest_busy_ticks
# guest_ticks ios": the daemon's CPU (utime + stime of all its threads, /proc/PID/stat), its
# context switches (voluntary and not, summed over /proc/PID/task/*/status), the guest's busy and
# total CPU ticks (/proc/stat), and the IOs the disks DEV... have completed (reads + writes of
# /sys/block/*/stat).
cost_snapshot() {
	local pid=$1 ticks sw cpu ios=0 d s
	shift
	ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
	sw=$(cat /proc/"$pid"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }')
	cpu=$(awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat)
	for d in "$@"; do
		read -r -a s < "/sys/block/${d#/dev/}/stat"
		ios=$((ios + s[0] + s[4]))
	done
	echo "$ticks $sw $cpu $ios"
}

# thread_ticks PID: one line "tid kind cpu_ns runs" per thread of PID: its kind is its name
# (comm) with digits as N, so librados' msgr-worker-0..2 are one kind and the Go runtime's
# threads are "gotcmu"; its CPU time and the times it was scheduled in
# (/proc/PID/task/TID/schedstat; the name, which may hold spaces, from .../stat).
thread_ticks() {
	ls /proc/"$1"/task 2>/dev/null | awk -v p="/proc/$1/task/" '{
		f = p $1 "/stat"; g = p $1 "/schedstat"; l = ""; ss = ""
		getline l < f; close(f); getline ss < g; close(g)
		if (l == "" || ss == "") next
		o = index(l, "("); c = length(l); while (c > o && substr(l, c, 1) != ")") c--
		kind = substr(l, o + 1, c - o - 1); gsub(/[0-9]+/, "N", kind); gsub(/ /, "_", kind)
		split(ss, x, " "); print $1, kind, x[1], x[3] }'
}

# thread_cost BEFORE AFTER IOS: from two thread_ticks files, what each kind of thread did
# between them, the most CPU first: "kind threads cpu_ms cpu_us_per_io runs_per_io" (runs: the
# times its threads were scheduled in, each a switch to them; a thread started in between
# counts from zero, one that ended is missing).
thread_cost() {
	awk -v ios="$3" 'NR == FNR { c0[$1] = $3; r0[$1] = $4; next }
		{ n[$2]++; ns[$2] += $3 - c0[$1]; rn[$2] += $4 - r0[$1]; all += $3 - c0[$1]; allr += $4 - r0[$1] }
		END { if (ios <= 0) ios = -1
			for (k in n) printf "%s %d %.0f %.0f %.2f\n", k, n[k], ns[k] / 1e6, ns[k] / 1e3 / ios, rn[k] / ios
			printf "all %d %.0f %.0f %.2f\n", FNR, all / 1e6, all / 1e3 / ios, allr / ios }' "$1" "$2" | sort -k3,3nr
}

# proc_ticks: thread_ticks for every process of the guest, kernel threads included, by process
# name (/proc/PID/stat and schedstat sum all of a process's threads): "pid kind cpu_ns runs"
# (runs 0: /proc/PID/schedstat is the main thread's alone, so no switch counts here).
proc_ticks() {
	ls /proc | awk '/^[0-9]+$/ {
		f = "/proc/" $1 "/stat"; l = ""; getline l < f; close(f)
		if (l == "") next
		o = index(l, "("); c = length(l); while (c > o && substr(l, c, 1) != ")") c--
		kind = substr(l, o + 1, c - o - 1); gsub(/[0-9]+/, "N", kind); gsub(/ /, "_", kind)
		split(substr(l, c + 2), x, " "); printf "%s %s %.0f 0\n", $1, kind, (x[12] + x[13]) * 1e7 }'
}

# osd_asok: the admin socket of the guest's OSD (micro-ceph.sh names it by its pid).
osd_asok() { ls /tmp/ceph/run/osd.0.*.asok 2> /dev/null | head -1; }

# osd_cost BEFORE AFTER IOS: from two `perf dump`s of the OSD, its client ops per IO of the
# disks: "counter per_io" for the op counts (reads, writes, read-modify-writes) and bytes.
osd_cost() {
	jq -rn --slurpfile a "$1" --slurpfile b "$2" --argjson ios "$3" '
		["op", "op_r", "op_w", "op_rw", "op_in_bytes", "op_out_bytes"][] as $k
		| "\($k) \((($b[0].osd[$k] // 0) - ($a[0].osd[$k] // 0)) / (if $ios > 0 then $ios else 1 end) * 100 | round / 100)"'
}

# cost_per_io BEFORE AFTER SECONDS: "cpu_us_per_io switches_per_io daemon_cpus guest_busy"
# from two cost_snapshot lines SECONDS apart (USER_HZ 100: a tick is 10 ms).
cost_per_io() {
	awk -v a="$1" -v b="$2" -v secs="$3" 'BEGIN { split(a, x, " "); split(b, y, " "); io = y[5] - x[5]
		if (io <= 0 || secs <= 0) { print "- - - -"; exit }
		printf "%.0f %.2f %.2f %.2f\n", (y[1] - x[1]) * 10000 / io, (y[2] - x[2]) / io, (y[1] - x[1]) / 100 / secs, (y[3] - x[3]) / (y[4] - x[4]) }'
}

# one NAME IPC PROCS ARENAS LABEL THP N: the five steps for one daemon at N LUNs; appends its row.
one() {
	local name=$1 ipc=$2 procs=$3 arenas=$4 label=$5 thp=$6 sysmon=$7 opens=$8 n=$9 i dir t0 create ready lock adopt drain addr devs=() d
	local anon file shmem threads gor=- fds clients series=- scrape=- status=- iops=- p99r=- p99w=- rssload=-
	local c0 c1 t1 cost="- - - -" idlesw=- svc=- svcms=-
	local L=$OUT/$label-n$n
	mkdir -p "$L"
	log "scale: $label, N=$n"
	mkimages "$label-n$n-" "$n" || { fail "$label N=$n: rbd images not created"; return 1; }
	start_daemon "$name" "$ipc" "$procs" "$arenas" "$thp" "$sysmon" "$opens" "$L/daemon.log"
	# Started before any device exists: give it the time to join the netlink family, as
	# start_handler does (an ADDED event nobody hears would block its enable write).
	sleep 3
	kill -0 "$DPID" 2>/dev/null || { fail "$label N=$n: daemon did not start"; return 1; }
	# 1. create and export, then every LUN answers a read
	t0=$(date +%s%N)
	mkdir -p "$CFG/loopback/$WWN/tpgt_1" && put "naa.5001405$(printf '%09x' $RANDOM)" "$CFG/loopback/$WWN/tpgt_1/nexus" ||
		{ fail "$label N=$n: tcm_loop target"; return 1; }
	for ((i = 0; i < n; i++)); do
		dir=$CFG/core/user_1/s$i
		if ! { mkdir -p "$dir" && put "dev_config=rbd/rbd/$label-n$n-$i" "$dir/control" && put "dev_size=$((SIZE_MB << 20))" "$dir/control" &&
			bounded 120 put 1 "$dir/enable" && put "$(new_uuid)" "$dir/wwn/vpd_unit_serial" &&
			mkdir "$CFG/loopback/$WWN/tpgt_1/lun/lun_$i" && ln -s "$dir" "$CFG/loopback/$WWN/tpgt_1/lun/lun_$i/s$i"; }; then
			fail "$label N=$n: LUN $i not created"; break
		fi
	done
	create=$(secs_since "$t0")
	addr=$(cat "$CFG/loopback/$WWN/tpgt_1/address")
	for ((i = 0; i < n; i++)); do
		wait_until 120 test -d "/sys/class/scsi_disk/$addr:$i/device/block" || { fail "$label N=$n: no disk for LUN $i"; continue; }
		d=$(ls "/sys/class/scsi_disk/$addr:$i/device/block" | head -1)
		wait_until 10 test -b "/dev/$d" && devs+=("/dev/$d")
	done
	ready=$("$TOOLS/lunready" -since "$t0" -timeout 300s "${devs[@]}" 2> "$L/ready.err" | cut -d' ' -f1)
	[ -s "$L/ready.err" ] && fail "$label N=$n: $(cat "$L/ready.err")"
	log "$label N=$n: created in $create s, all answered at $ready s"
	# Every LUN's first write (user:rbd: the image's exclusive lock taken), all at once.
	lock=$("$TOOLS/lunready" -write -timeout 300s "${devs[@]}" 2> "$L/lock.err" | cut -d' ' -f1)
	[ -s "$L/lock.err" ] && fail "$label N=$n: first writes: $(cat "$L/lock.err")"
	log "$label N=$n: every LUN written once after $lock s"
	# 2. idle: what the daemon does with no IO (context switches a second over 5 s)
	sleep 2
	c0=$(cost_snapshot "$DPID"); t1=$(date +%s%N)
	sleep 5
	c1=$(cost_snapshot "$DPID")
	idlesw=$(awk -v a="$c0" -v b="$c1" -v s="$(secs_since "$t1")" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", (y[2] - x[2]) / s }')
	anon=$(rollup_field "$DPID" Anonymous); file=$(proc_field "$DPID" RssFile); shmem=$(proc_field "$DPID" RssShmem)
	threads=$(proc_field "$DPID" Threads)
	fds=$(find /proc/"$DPID"/fd -mindepth 1 | wc -l)
	clients=$(rados_clients "$DPID")
	cat /proc/"$DPID"/status > "$L/status-idle"
	# Every mapping's residency, for telling RssAnon apart offline (test/scale/anon.sh): the Go
	# heap, glibc's arenas and main heap, thread stacks.
	cat /proc/"$DPID"/smaps > "$L/smaps-idle" 2>/dev/null
	# What the fds are, by kind (numbers masked): sockets, eventfds, epoll sets, timerfds, uio.
	find /proc/"$DPID"/fd -mindepth 1 -printf '%l\n' 2>/dev/null | sed 's/[0-9]\+/N/g' | sort | uniq -c | sort -rn > "$L/fds-idle.txt"
	if [ "$name" = gotcmu ]; then
		t1=$(date +%s%N)
		curl -s http://127.0.0.1:9560/metrics > "$L/metrics.txt"
		scrape=$(awk -v a="$t1" -v b="$(date +%s%N)" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
		series=$(grep -vc '^#' "$L/metrics.txt")
		gor=$(awk '$1 == "go_goroutines" { print $2 }' "$L/metrics.txt")
		t1=$(date +%s%N)
		"$GOTCMU" status > "$L/gotcmu-status.txt" 2>&1
		status=$(awk -v a="$t1" -v b="$(date +%s%N)" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
	fi
	# Ceph's service map as ceph-iscsi reads it (rbd-target-api's device status, the dashboard):
	# this run's entries under the tcmu-runner service, and what one `ceph service dump` costs.
	t1=$(date +%s%N)
	if timeout 60 ceph service dump -f json > "$L/service-dump.json" 2> "$L/service-dump.err"; then
		svcms=$(awk -v a="$t1" -v b="$(date +%s%N)" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
		svc=$(jq --arg p ":rbd/$label-n$n-" '[.services["tcmu-runner"].daemons // {} | keys[] | select(contains($p))] | length' \
			"$L/service-dump.json")
	fi
	log "$label N=$n idle: $idlesw switches/s, $fds fds, $threads threads; service map: ${svc} entries (${svcms} ms)"
	# 3. the aggregate load
	local jobs=() qd=$((LOAD_INFLIGHT / n))
	qd=$((qd > 4 ? 4 : qd < 1 ? 1 : qd))
	for d in "${devs[@]}"; do jobs+=(--name="${d#/dev/}" --filename="$d"); done
	thread_ticks "$DPID" > "$L/threads-before"
	proc_ticks > "$L/procs-before"
	local osdpid asok
	osdpid=$(cat /tmp/ceph/run/osd.0.pid 2> /dev/null); asok=$(osd_asok)
	[ -z "$osdpid" ] || thread_ticks "$osdpid" > "$L/osd-threads-before"
	if [ -n "$asok" ]; then
		ceph daemon "$asok" config set osd_op_history_size 2000 > /dev/null 2>&1
		ceph daemon "$asok" perf dump > "$L/osd-perf-before.json" 2> /dev/null
	fi
	c0=$(cost_snapshot "$DPID" "${devs[@]}"); t1=$(date +%s%N)
	if fio --thread --ioengine=libaio --direct=1 --rw=randrw --rwmixread=70 --bs=4k --iodepth="$qd" \
		--size=$((SIZE_MB << 20)) --time_based --runtime="$FIO_SECS" --ramp_time=2 --randrepeat=0 --norandommap \
		--lat_percentiles=1 --group_reporting --output-format=json --output="$L/fio.json" "${jobs[@]}" \
		> /dev/null 2> "$L/fio.err"; then
		iops=$(jq -r '.jobs[0] | (.read.iops + .write.iops) | floor' "$L/fio.json")
		p99r=$(jq -r '.jobs[0].read.lat_ns.percentile["99.000000"] / 1000 | floor' "$L/fio.json")
		p99w=$(jq -r '.jobs[0].write.lat_ns.percentile["99.000000"] / 1000 | floor' "$L/fio.json")
	else
		fail "$label N=$n: fio: $(head -3 "$L/fio.err")"
	fi
	c1=$(cost_snapshot "$DPID" "${devs[@]}")
	thread_ticks "$DPID" > "$L/threads-after"
	proc_ticks > "$L/procs-after"
	cost=$(cost_per_io "$c0" "$c1" "$(secs_since "$t1")")
	local ios
	ios=$(awk -v a="$c0" -v b="$c1" 'BEGIN { split(a, x, " "); split(b, y, " "); print y[5] - x[5] }')
	# Where the daemon's CPU went under the load, by kind of thread (its own, librados', librbd's),
	thread_cost "$L/threads-before" "$L/threads-after" "$ios" > "$L/threads-load.txt"
	# the whole guest's, by process (the OSD, the kernel's threads; fio has exited by now): what
	# an IO costs outside the daemon too,
	thread_cost "$L/procs-before" "$L/procs-after" "$ios" > "$L/procs-load.txt"
	# and the OSD's: its threads, its client ops per IO, and what those ops were (the op vectors
	# of the last 2,000, offsets and lengths masked).
	if [ -n "$osdpid" ]; then
		thread_ticks "$osdpid" > "$L/osd-threads-after"
		thread_cost "$L/osd-threads-before" "$L/osd-threads-after" "$ios" > "$L/osd-threads-load.txt"
	fi
	if [ -n "$asok" ] && ceph daemon "$asok" perf dump > "$L/osd-perf-after.json" 2> /dev/null; then
		osd_cost "$L/osd-perf-before.json" "$L/osd-perf-after.json" "$ios" > "$L/osd-load.txt"
		ceph daemon "$asok" dump_historic_ops 2> /dev/null | jq -r '.ops[].description' |
			sed -E 's/^osd_op\(client\.[0-9]+\.[0-9]+:[0-9]+ [0-9.a-f]+ [^ ]+ //; s/[0-9]+~[0-9]+/N~N/g; s/ e[0-9]+\)$//; s/snapc [0-9a-f]+=\[[^]]*\]/snapc/' |
			sort | uniq -c | sort -rn > "$L/osd-ops.txt"
	fi
	rm -f "$L/procs-before" "$L/procs-after" "$L"/osd-threads-before "$L"/osd-threads-after
	rssload=$(rollup_field "$DPID" Rss)
	cat /proc/"$DPID"/status > "$L/status-load"
	log "$label N=$n: iodepth $qd: $iops IOPS, p99 read $p99r us, write $p99w us; CPU us, switches per IO, daemon CPUs, guest busy: $cost"
	# The daemon's profile under the same load, in a run of its own (PROFILE_SECS, 0: none) so
	# that the profiler's cost is in no figure above: perf samples every thread of either daemon
	# (C and Go; perf-dso.txt and perf-sym.txt, by the shared object and the function), and Go's
	# profiler gotcmu's Go threads (cpu.pprof).
	if [ "$PROFILE_SECS" -gt 0 ]; then
		fio --thread --ioengine=libaio --direct=1 --rw=randrw --rwmixread=70 --bs=4k --iodepth="$qd" \
			--size=$((SIZE_MB << 20)) --time_based --runtime=$((PROFILE_SECS + 2)) --randrepeat=0 --norandommap \
			"${jobs[@]}" > /dev/null 2>&1 &
		local fpid=$! ppid=
		sleep 1
		if command -v perf > /dev/null; then
			perf record -q -F 499 -p "$DPID" -o "$L/perf.data" -- sleep "$PROFILE_SECS" > "$L/perf.err" 2>&1 &
			ppid=$!
		fi
		if [ "$name" = gotcmu ]; then
			curl -s -o "$L/cpu.pprof" "http://127.0.0.1:9198/debug/pprof/profile?seconds=$PROFILE_SECS" ||
				log "$label N=$n: no CPU profile"
		fi
		[ -z "$ppid" ] || wait "$ppid"
		wait "$fpid"
		if [ -s "$L/perf.data" ]; then
			perf report -i "$L/perf.data" --stdio --sort dso --percent-limit 0.5 > "$L/perf-dso.txt" 2>> "$L/perf.err"
			perf report -i "$L/perf.data" --stdio --sort dso,sym --percent-limit 0.3 > "$L/perf-sym.txt" 2>> "$L/perf.err"
			rm -f "$L/perf.data"
		fi
	fi
	# 4. SIGKILL, restart, every LUN answers again: ADOPTS times, or once per word of
	# ADOPT_OPENS; adopts.txt has a line for each (header in its first), adopt_s is the median
	# of the spec's own (WORD -): the reads lunready saw fail before every LUN answered, the
	# disks' completions other than GOOD and timeouts (midlayer), and the guest's CPU over the
	# adoption, by user, system and softirq time, in % of all its CPUs' time.
	local plan=() o lerrs m0 m1 s0 s1
	if [ -n "${ADOPT_OPENS:-}" ]; then
		read -ra plan <<< "$ADOPT_OPENS"
	else
		for ((i = 0; i < ADOPTS; i++)); do plan+=(-); done
	fi
	echo "word open_concurrency adopt_s read_errors not_good timeouts user_pct system_pct softirq_pct" > "$L/adopts.txt"
	for ((i = 0; i < ${#plan[@]}; i++)); do
		o=${plan[i]}
		[ "$o" != - ] || o=$opens
		m0=$(midlayer "${devs[@]}"); s0=$(cpu_split)
		kill -KILL "$DPID"; wait "$DPID" 2>/dev/null
		t0=$(date +%s%N)
		start_daemon "$name" "$ipc" "$procs" "$arenas" "$thp" "$sysmon" "$o" "$L/daemon-adopt$( ((i == 0)) || echo "-$((i + 1))").log"
		adopt=- lerrs=-
		# (A file, not a process substitution: the guest has no /dev/fd.)
		"$TOOLS/lunready" -since "$t0" -timeout 300s "${devs[@]}" > "$L/adopt.out" 2> "$L/adopt.err"
		read -r adopt _ lerrs < "$L/adopt.out"
		m1=$(midlayer "${devs[@]}"); s1=$(cpu_split)
		[ -s "$L/adopt.err" ] && fail "$label N=$n: adopt: $(cat "$L/adopt.err")"
		echo "${plan[i]} $o ${adopt:--} ${lerrs:--} $(awk -v a="$m0 $s0" -v b="$m1 $s1" 'BEGIN {
			split(a, x, " "); split(b, y, " "); for (j = 1; j <= 7; j++) d[j] = y[j] - x[j]
			t = d[4] + d[5] + d[6] + d[7]; if (t == 0) t = 1
			printf "%d %d %.0f %.0f %.0f", d[2], d[3], 100 * d[4] / t, 100 * d[5] / t, 100 * d[6] / t }')" >> "$L/adopts.txt"
		log "$label N=$n: adopted in $adopt s$([ "$name" != gotcmu ] || echo " (open_concurrency ${o/#-/default})"): $(tail -1 "$L/adopts.txt" | cut -d' ' -f4-) (read errors, not GOOD, timeouts, guest user/system/softirq %)"
	done
	adopt=$(awk 'NR > 1 && $1 == "-" && $3 != "-" { print $3 }' "$L/adopts.txt" | sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }')
	# 5. unexport, SIGTERM with N devices open, remove with no daemon
	for ((i = 0; i < n; i++)); do
		rm -f "$CFG/loopback/$WWN/tpgt_1/lun/lun_$i/s$i"; rmdir "$CFG/loopback/$WWN/tpgt_1/lun/lun_$i"
	done
	rmdir "$CFG/loopback/$WWN/tpgt_1" "$CFG/loopback/$WWN" || fail "$label N=$n: tcm_loop target not removed"
	t0=$(date +%s%N)
	kill -TERM "$DPID"
	if wait_exit "$DPID" 120; then
		drain=$(secs_since "$t0")
	else
		drain=-; fail "$label N=$n: still running 120 s after SIGTERM"; kill -KILL "$DPID"; wait "$DPID" 2>/dev/null
	fi
	log "$label N=$n: SIGTERM to exit $drain s"
	# Not timed: 8 at a time (with no daemon the kernel waits for no reply).
	for ((i = 0; i < n; i++)); do echo "$CFG/core/user_1/s$i"; done | timeout 120 xargs -r -P 8 rmdir
	for ((i = 0; i < n; i++)); do
		[ -d "$CFG/core/user_1/s$i" ] && { bounded 30 rmdir "$CFG/core/user_1/s$i" || fail "$label N=$n: backstore $i not removed"; }
	done
	rmimages "$label-n$n-" "$n" > "$L/rmimages.log" 2>&1 || log "$label N=$n: images not removed: $(tail -1 "$L/rmimages.log")"
	ceph df > "$L/ceph-df.txt" 2>&1
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$n" "$create" "$ready" \
		"$anon" "$file" "$shmem" "$threads" "$gor" "$fds" "$clients" "$series" "$scrape" "$status" "$iops" "$p99r" "$p99w" \
		"$rssload" "$adopt" "$drain" "$lock" "${cost// /$'\t'}" "$idlesw" "$svc" "$svcms" "$qd" >> "$ROWS"
	pass "$label N=$n"
}

start_dbus || log "no system D-Bus: gotcmu status is not measured"
for n in $NS; do
	for spec in $DAEMONS; do
		spec_at "$spec" "$n" || continue
		# shellcheck disable=SC2046 # eight words
		one $(spec_fields "$spec") "$n"
	done
done
"$REPO/test/micro-ceph.sh" stop /tmp/ceph > /dev/null 2>&1
log "scale: $FAILED failed"
[ "$FAILED" -eq 0 ]
