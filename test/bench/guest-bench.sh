#!/bin/bash
# Runs INSIDE the guest (bench.sh boots it): the issue 7 table and the cost per IO of issue 13.
# One boot, Ceph inside the guest, fio over tcm_loop against, one after the other (never two
# handlers at once: both want the D-Bus name and the TCM-USER netlink family):
#   gotcmu      user:rbd, user:mem, user:file (tmpfs)
#   tcmu-runner user:rbd (Debian's), user:zbc (file_zbc, host-aware) if it takes random writes
#   fio's rbd engine on the same image (librbd direct)
#   LIO         rd_mcp (ramdisk) and fileio on the same tmpfs
# all of it ROUNDS times, in that order in odd rounds and in the reverse order in even ones (ABBA:
# gotcmu, tcmu-runner, fio-rbd, LIO, then LIO, fio-rbd, tcmu-runner, gotcmu, ...; the zbc probe
# in the first round only), each handler started afresh every round.
# Every fio result lands in /out/bench/<lun>/r<round>/<row>.json. The cost per IO beside it:
#   - a daemon-served LUN: <row>.pre and <row>.post, test/cmd/procstat snapshots taken right
#     before fio starts and right after it exits: the daemon's utime+stime (/proc/PID/stat, all
#     threads, exited ones included), each thread's context switches (/proc/PID/task/*/status)
#     and the tcm_loop disk's completed requests (/sys/block/<dev>/stat), which count every IO
#     of the window whatever the ramp; LIO's LUNs get the disk's counts only (no daemon);
#   - fio-rbd: <row>.rusage, test/cmd/rusage's wait4 figures of the whole fio process (librbd's
#     threads included), and once a round setup-read.rusage / setup-write.rusage, the same fio
#     doing one IO: connecting, opening the image (and, writing, taking its lock), closing —
#     the fixed cost benchreport takes off each row. fio's total_ios count the IOs after the
#     ramp only, so fio-rbd's cost per IO is exact with RAMP=0 (the default).
# bench.sh turns them into the table (test/cmd/benchreport).
# Env: GOTCMU, GOTCMU_ARGS, SECS (per row, default 10), RAMP (default 0: the cost window is the
#      whole fio run), ROUNDS (default 2), SIZE (LUN bytes, default 256 MiB), KNOBS (control
#      tokens both handlers' user backstores get before enable, default
#      max_data_area_mb=64,hw_max_sectors=2048,data_pages_per_blk=1), ROWS (see below),
#      LUNS (subset of the LUN names below, default all), SPIN (gotcmu-*-spin's --spin-wait),
#      GOTCMU_BASE (gotcmu-rbd-base's binary: another build, for a before and after).
#      TOOLS (default $REPO/build/bin) holds procstat and rusage, built by bench.sh.
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
SUMMARY=/out/bench/summary.txt
mkdir -p /out/bench
# shellcheck source=test/vm/lib.sh
. "$REPO/test/vm/lib.sh"
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
TOOLS=${TOOLS:-$REPO/build/bin}
SECS=${SECS:-10}
RAMP=${RAMP:-0}
ROUNDS=${ROUNDS:-2}
HZ=$(getconf CLK_TCK)
SIZE=${SIZE:-$((256 << 20))}
KNOBS=${KNOBS:-max_data_area_mb=64,hw_max_sectors=2048,data_pages_per_blk=1}
# name:rw:bs:iodepth
ROWS=${ROWS:-randread-4k-qd1:randread:4k:1 randread-4k-qd32:randread:4k:32 randwrite-4k-qd1:randwrite:4k:1 randwrite-4k-qd32:randwrite:4k:32 read-1m-qd8:read:1m:8 write-1m-qd8:write:1m:8}
LUNS=${LUNS:-gotcmu-rbd gotcmu-mem gotcmu-file tcmu-runner-rbd tcmu-runner-zbc fio-rbd rd_mcp fileio}
IMAGE=bench
: > "$SUMMARY"

want() { [[ " $LUNS " == *" $1 "* ]]; }

# sample FILE: a procstat snapshot of COST_PID (the daemon serving the LUN, if any) and COST_DEV
# (the tcm_loop disk, if any) into FILE; nothing when neither is set.
sample() {
	local args=()
	[ -n "${COST_PID:-}" ] && args+=(-pid "$COST_PID" -hz "$HZ")
	[ -n "${COST_DEV:-}" ] && args+=(-dev "$COST_DEV")
	[ ${#args[@]} -gt 0 ] || return 0
	"$TOOLS/procstat" "${args[@]}" > "$1" 2>> "$1.err" || { log "procstat ${args[*]} failed: $(cat "$1.err")"; rm -f "$1"; }
}

# fio_rows LUN TARGET...: every row against TARGET (fio's own arguments naming the target), into
# /out/bench/LUN/r$ROUND; the cost window around each: COST_PID and COST_DEV sampled, or with
# COST_RUSAGE=1 fio itself run under rusage.
fio_rows() {
	local lun=$1 spec name rw bs qd dir=/out/bench/$1/r$ROUND; shift
	local -a wrap
	mkdir -p "$dir"
	for spec in $ROWS; do
		IFS=: read -r name rw bs qd <<< "$spec"
		log "$lun: $name (round $ROUND)"
		wrap=()
		[ "${COST_RUSAGE:-0}" = 1 ] && wrap=("$TOOLS/rusage" -o "$dir/$name.rusage" --)
		sample "$dir/$name.pre"
		if ! "${wrap[@]}" fio --name="$lun" "$@" --rw="$rw" --bs="$bs" --iodepth="$qd" --time_based \
			--runtime="$SECS" --ramp_time="$RAMP" --randrepeat=0 --norandommap --lat_percentiles=1 \
			--output-format=json --output="$dir/$name.json" > /dev/null 2>"$dir/$name.err"; then
			fail "$lun $name: fio failed: $(head -3 "$dir/$name.err")"
			rm -f "$dir/$name.json"
		fi
		sample "$dir/$name.post"
	done
	pass "$lun: ${SECS}s per row (round $ROUND)"
}

# disk_rows LUN DEV: write DEV once end to end (so reads hit data), then every row on it.
disk_rows() {
	fio --name=fill --filename="$2" --ioengine=libaio --direct=1 --rw=write --bs=1m --iodepth=8 \
		--size="$SIZE" > /dev/null 2>&1 || { fail "$1: fill failed"; return 1; }
	COST_DEV=${2#/dev/} fio_rows "$1" --filename="$2" --ioengine=libaio --direct=1 --size="$SIZE"
}

# make_user HBA NAME CONFIG SIZE: a user backstore with dev_config CONFIG and the KNOBS; prints
# its configfs path. Each control token is its own write.
make_user() {
	local dir=$CFG/core/user_$1/$2 k
	mkdir -p "$dir" || return 1
	put "dev_config=$3" "$dir/control" || return 1
	put "dev_size=$4" "$dir/control" || return 1
	for k in ${KNOBS//,/ }; do put "$k" "$dir/control" || return 1; done
	bounded 60 put 1 "$dir/enable" || { log "enable of $dir ($3) failed"; rmdir "$dir"; return 1; }
	put "$(new_uuid)" "$dir/wwn/vpd_unit_serial" || return 1
	echo "$dir"
}

# serve LUN WWN BACKSTORE: export on tcm_loop, run the rows, unexport and remove.
serve() {
	local dev
	dev=$(loop_export "$2" "$3") || { fail "$1: no disk on tcm_loop"; remove_backstore "$3"; return 1; }
	log "$1: $dev ($(tr '\n' ' ' < "$3/info" 2>/dev/null)) round $ROUND"
	[ "$ROUND" = 1 ] && cat "$3/info" > "/out/bench/$1.info" 2>/dev/null
	disk_rows "$1" "$dev"
	if ! loop_unexport "$2" || ! remove_backstore "$3"; then fail "$1: removal failed"; fi
}

# ---- Ceph inside the guest, one image for every rbd row, written once end to end.
if want gotcmu-rbd || want tcmu-runner-rbd || want fio-rbd; then
	log "bench: Ceph"
	mkdir -p /etc/ceph
	"$REPO/test/micro-ceph.sh" start /tmp/ceph $((1536 << 20)) > /out/bench/ceph-start.log 2>&1 || { fail "micro Ceph did not start"; exit 1; }
	export CEPH_CONF=/tmp/ceph/ceph.conf
	# The handlers read /etc/ceph by default; fio's engine gets librbd's cache off as both handlers
	# set it.
	ln -sf /tmp/ceph/ceph.conf /etc/ceph/ceph.conf
	cp /tmp/ceph/keyring /etc/ceph/ceph.client.admin.keyring
	printf '[client]\nrbd cache = false\n' >> /tmp/ceph/ceph.conf
	rbd create "rbd/$IMAGE" --size "$((SIZE >> 20))M" || { fail "rbd create"; exit 1; }
	fio --name=fill --ioengine=rbd --clientname=admin --pool=rbd --rbdname="$IMAGE" --rw=write --bs=4m \
		--iodepth=8 --size="$SIZE" > /dev/null 2>&1 || fail "rbd image fill"
	pass "Ceph up, rbd/$IMAGE $((SIZE >> 20)) MiB written"
fi
echo "$KNOBS" > /out/bench/knobs
echo "$RAMP" > /out/bench/ramp
echo "$SECS" > /out/bench/secs
nproc > /out/bench/nproc
# The guest's clock source: under TCG the TSC may be judged unstable, and then every clock read
# (the handler's latency metric, Go's scheduler) is a system call.
cat /sys/devices/system/clocksource/clocksource0/current_clocksource > /out/bench/clocksource 2>/dev/null

# variant LUN NAME WWN NAME=VALUE...: gotcmu started afresh with the NAME=VALUE settings in its
# environment (GOTCMU itself among them), serving LUN on the bench image (backstore NAME).
variant() {
	local lun=$1 name=$2 wwn=$3 kv
	shift 3
	for kv in "$@"; do local -x "$kv"; done
	MODE=gotcmu; select_handler
	if start_handler "/out/bench/$lun.r$ROUND.log"; then
		COST_PID=$HANDLER_PID
		BS=$(make_user 1 "$name" "rbd/rbd/$IMAGE" "$SIZE") && serve "$lun" "$wwn" "$BS"
		COST_PID=
		stop_handler || fail "$lun ($*) did not stop cleanly"
	else
		fail "$lun ($*) did not start"
	fi
}

# The turns of a round, one function each; one_round runs them.
turn_gotcmu() {
	if want gotcmu-rbd || want gotcmu-mem || want gotcmu-file; then
		MODE=gotcmu; select_handler
		if start_handler "/out/bench/gotcmu.r$ROUND.log"; then
			pass "gotcmu running"
			COST_PID=$HANDLER_PID
			if want gotcmu-rbd; then
				BS=$(make_user 1 grbd "rbd/rbd/$IMAGE" "$SIZE") && serve gotcmu-rbd naa.5001405000000b01 "$BS"
			fi
			if want gotcmu-mem; then
				BS=$(make_user 2 gmem "mem/bench" "$SIZE") && serve gotcmu-mem naa.5001405000000b02 "$BS"
			fi
			if want gotcmu-file; then
				truncate -s "$SIZE" /tmp/gotcmu-file.img
				BS=$(make_user 3 gfile "file//tmp/gotcmu-file.img" "$SIZE") && serve gotcmu-file naa.5001405000000b03 "$BS"
				rm -f /tmp/gotcmu-file.img
			fi
			"$GOTCMU" status > "/out/bench/gotcmu-status.r$ROUND.txt" 2>&1
			COST_PID=
			stop_handler || fail "gotcmu did not stop cleanly"
		else
			fail "gotcmu did not start"; handler_log "/out/bench/gotcmu.r$ROUND.log" | tail -20
		fi
	fi
}

# Experiments, not in the default LUNS: gotcmu again on the same image, with
#   gotcmu-rbd-gomaxprocs1  GOMAXPROCS=1: the Go scheduler's cost beside librbd's threads;
#   gotcmu-rbd-gomaxprocs8  GOMAXPROCS=8, more Ps than the guest's CPUs (sysmon takes a P back
#                           from a loop in a long cgo call less often when some are idle);
#   gotcmu-rbd-base         another build, GOTCMU_BASE (e.g. the commit before a change to the
#                           data path): a before and after in one boot;
#   gotcmu-rbd-sysmon       the Go runtime's own sysmon (GODEBUG=schedtrace=0;
#                           cmd/gotcmu/sysmon.go keeps it awake otherwise).
turn_variants() {
	want gotcmu-rbd-gomaxprocs1 && variant gotcmu-rbd-gomaxprocs1 grbd1 naa.5001405000000b04 GOMAXPROCS=1
	want gotcmu-rbd-gomaxprocs8 && variant gotcmu-rbd-gomaxprocs8 grbd8 naa.5001405000000b09 GOMAXPROCS=8
	want gotcmu-rbd-base && [ -x "${GOTCMU_BASE:-}" ] &&
		variant gotcmu-rbd-base grbdb naa.5001405000000b07 "GOTCMU=$GOTCMU_BASE"
	want gotcmu-rbd-sysmon && variant gotcmu-rbd-sysmon grbdm naa.5001405000000b08 GODEBUG=schedtrace=0
	return 0
}

# gotcmu-rbd-spin, gotcmu-mem-spin (not in the default LUNS): gotcmu again with --spin-wait SPIN
# (default 500us), spin-then-block on the uio fd, an experiment (issue 7 point 4).
turn_spin() {
	if want gotcmu-rbd-spin || want gotcmu-mem-spin; then
		MODE=gotcmu; select_handler
		if GOTCMU_ARGS="${GOTCMU_ARGS:-} --spin-wait ${SPIN:-500us}" start_handler "/out/bench/gotcmu-spin.r$ROUND.log"; then
			COST_PID=$HANDLER_PID
			echo "${SPIN:-500us}" > /out/bench/spin
			if want gotcmu-rbd-spin; then
				BS=$(make_user 1 grbds "rbd/rbd/$IMAGE" "$SIZE") && serve gotcmu-rbd-spin naa.5001405000000b05 "$BS"
			fi
			if want gotcmu-mem-spin; then
				BS=$(make_user 2 gmems "mem/bench" "$SIZE") && serve gotcmu-mem-spin naa.5001405000000b06 "$BS"
			fi
			COST_PID=
			stop_handler || fail "gotcmu (spin-wait) did not stop cleanly"
		else
			fail "gotcmu (spin-wait) did not start"
		fi
	fi
}

# tcmu-runner (Debian's); its zbc probe in the first round only.
turn_tcmu_runner() {
	if want tcmu-runner-rbd || want tcmu-runner-zbc; then
		MODE=tcmu-runner; select_handler
		if start_handler "/out/bench/tcmu-runner.r$ROUND.log"; then
			pass "tcmu-runner running"
			COST_PID=$HANDLER_PID
			if want tcmu-runner-rbd; then
				BS=$(make_user 1 trbd "rbd/rbd/$IMAGE" "$SIZE") && serve tcmu-runner-rbd naa.5001405000000c01 "$BS"
			fi
			if want tcmu-runner-zbc && [ "$ROUND" = 1 ]; then
				# file_zbc in its host-aware model: no conventional zones, so every random write lands in
				# a sequential-write-preferred zone. Probe first whether it takes random writes there.
				ZBC_CFG="zbc/model-HA/zsize-16/conv-0@/tmp/zbc.raw"
				if BS=$(make_user 2 tzbc "$ZBC_CFG" "$SIZE") && DEV=$(loop_export naa.5001405000000c02 "$BS"); then
					if fio --name=probe --filename="$DEV" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
						--iodepth=4 --number_ios=256 --size="$SIZE" --zonemode=none > /out/bench/zbc-probe.txt 2>&1; then
						echo "yes" > /out/bench/zbc-random-writes
						disk_rows tcmu-runner-zbc "$DEV"
					else
						echo "no: $(grep -m1 -iE 'error|err=' /out/bench/zbc-probe.txt)" > /out/bench/zbc-random-writes
						skip "tcmu-runner-zbc: file_zbc (host-aware) refuses random writes: $(cat /out/bench/zbc-random-writes)"
					fi
					cat "/sys/block/${DEV#/dev/}/queue/zoned" > /out/bench/zbc-zoned 2>/dev/null
					loop_unexport naa.5001405000000c02; remove_backstore "$BS"
				else
					echo "no: file_zbc did not take $ZBC_CFG" > /out/bench/zbc-random-writes
					fail "tcmu-runner-zbc: backstore $ZBC_CFG not served"
				fi
			fi
			handler_log "/out/bench/tcmu-runner.r$ROUND.log" > "/out/bench/tcmu-runner-all.r$ROUND.log"
			COST_PID=
			stop_handler || fail "tcmu-runner did not stop cleanly"
		else
			fail "tcmu-runner did not start"; handler_log "/out/bench/tcmu-runner.r$ROUND.log" | tail -20
		fi
	fi
}

# fio's own librbd engine on the same image: the ceiling for any librbd client.
turn_fio_rbd() {
	if want fio-rbd; then
		RBDARGS=(--ioengine=rbd --clientname=admin --pool=rbd --rbdname="$IMAGE" --size="$SIZE")
		mkdir -p "/out/bench/fio-rbd/r$ROUND"
		for rw in read write; do
			"$TOOLS/rusage" -o "/out/bench/fio-rbd/r$ROUND/setup-$rw.rusage" -- fio --name=setup "${RBDARGS[@]}" \
				--rw="$rw" --bs=4k --number_ios=1 > /dev/null 2>&1 || fail "fio-rbd: the one-IO $rw run failed"
		done
		COST_RUSAGE=1 fio_rows fio-rbd "${RBDARGS[@]}"
	fi
}

# LIO's own backstores: no userspace hop.
turn_lio() {
	if want rd_mcp; then
		dir=$CFG/core/rd_mcp_10/rd
		if mkdir -p "$dir" && put "rd_pages=$((SIZE / 4096))" "$dir/control" && put 1 "$dir/enable" &&
			put "$(new_uuid)" "$dir/wwn/vpd_unit_serial"; then
			serve rd_mcp naa.5001405000000d01 "$dir"
		else
			fail "rd_mcp backstore"
		fi
	fi
	if want fileio; then
		truncate -s "$SIZE" /tmp/fileio.img
		if BS=$(make_fileio 11 fio0 /tmp/fileio.img "$SIZE"); then
			serve fileio naa.5001405000000d02 "$BS"
		else
			fail "fileio backstore"
		fi
		rm -f /tmp/fileio.img
	fi
}

# one_round: every LUN once into r$ROUND, the turns in the order of the header in odd rounds and
# in the reverse order in even ones (ABBA): the guest's Ceph gets cheaper per IO over a boot
# (make scale's per-thread figures, 2026-12-06), which would favour whichever turn comes later in
# every round.
TURNS=(turn_gotcmu turn_variants turn_spin turn_tcmu_runner turn_fio_rbd turn_lio)
one_round() {
	local i
	if [ $((ROUND % 2)) = 1 ]; then
		for i in "${TURNS[@]}"; do "$i"; done
	else
		for ((i = ${#TURNS[@]} - 1; i >= 0; i--)); do "${TURNS[i]}"; done
	fi
}

COST_PID=
for ROUND in $(seq "$ROUNDS"); do
	log "bench: round $ROUND of $ROUNDS"
	one_round
done
echo "$ROUNDS" > /out/bench/rounds

[ -d /tmp/ceph ] && "$REPO/test/micro-ceph.sh" stop /tmp/ceph > /dev/null 2>&1
uname -r > /out/bench/guest-kernel
log "bench: $FAILED failed"
[ "$FAILED" -eq 0 ]
