#!/bin/bash
# Runs INSIDE the guest (`make test-faults`, or test-vm.sh faults): issue 8 point 1, the faults,
# and the in-VM half of point 4, the capabilities. Each fault runs under a verifying write load
# (test/cmd/ackwriter: checksummed blocks, O_DIRECT|O_DSYNC, a log of every acknowledged write)
# and prints one line
#   FAULT <name>: acknowledged=N verified=N lost=0 ... acknowledged-after-fault=N
# (also to /out/faults/figures.txt). A fault passes when the stream ends without a write failing
# for good, writes were acknowledged after the fault, and every acknowledged write reads back.
#
#   sigkill        gotcmu SIGKILLed and restarted 5 times under two streams: user:file and user:rbd
#   sigterm        gotcmu stopped with SIGTERM (exit 0, drained) and restarted, both streams
#   osd-restart    the Ceph OSD stopped and started again under the rbd stream
#   osd-timeout    the OSD stopped for longer than osd_op_timeout: commands answered BUSY
#                  (ETIMEDOUT's mapping; counted by gotcmu_status_total), I/O recovers after
#   stale-write    writes in flight while the OSDs are paused (ceph osd pause) past osd_op_timeout:
#                  gotcmu blocklists its own client before answering them; SG_IO gives up on them
#                  (BUSY); a retry with other data succeeds through the same LUN once the OSDs
#                  resume; the LUN and the image hold the retry, never the stale data (issue 12)
#   reset-ring     action/reset_ring written 3 times while commands are in flight
#   tiny-data-area max_data_area_mb=1, 64 writes of 64 KiB in flight (4 MiB wanted), and gotcmu
#                  SIGSTOPped for 5 s with qfull_time_out=1: queue-full (TASK SET FULL), no hang
#   delete         the backstore deleted with targetcli while its stream runs: gotcmu survives,
#                  what was acknowledged is in the image, the other LUNs still serve
#   netlink-kill   gotcmu SIGKILLed while an enable write waits for its netlink reply: the next
#                  gotcmu unblocks the writer, the retried enable works, nothing left in D state
#   mon-sigkill, osd-sigkill, below-min-size, osd-freeze
#                  issue 15 point 1, the hard faults, on a cluster of their own (3 memstore OSDs,
#                  pool size 3, min_size 2): test/cmd/hardfaults runs them and their checks
#   caps           gotcmu under setpriv with only the unit's CapabilityBoundingSet serves a LUN
#                  and answers an unprivileged CheckConfig with the caller's permissions (Status
#                  refused); without CAP_NET_ADMIN no device can be enabled; without
#                  CAP_DAC_OVERRIDE another user's 0600 image is refused; without
#                  CAP_SETUID/SETGID an unprivileged CheckConfig is refused; metrics on loopback
# Env: GOTCMU, GOTCMU_ARGS, ACKWRITER, HARDFAULTS, FAULTS (a subset of the names above, default all).
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
# shellcheck source=test/vm/lib-stream.sh
. "$HERE/lib-stream.sh"
MODE=gotcmu
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
ACKWRITER=${ACKWRITER:-$REPO/build/bin/ackwriter}
HARDFAULTS=${HARDFAULTS:-$REPO/build/bin/hardfaults}
FAULTS=${FAULTS:-sigkill sigterm osd-restart osd-timeout stale-write reset-ring tiny-data-area delete netlink-kill mon-sigkill osd-sigkill below-min-size osd-freeze caps}
select_handler
OUT=/out/faults
FIG=$OUT/figures.txt
CEPH=/tmp/ceph
METRICS=http://127.0.0.1:9560/metrics
mkdir -p "$OUT"
: > "$FIG"
NLOG=0

want() { [[ " $FAULTS " == *" $1 "* ]]; }

finish() {
	[ -n "${HANDLER_PID:-}" ] && kill -CONT "$HANDLER_PID" 2>/dev/null
	if [ -n "${HANDLER_PID:-}" ]; then stop_handler || log "gotcmu did not stop cleanly"; fi
	[ -d "$CEPH" ] && "$REPO/test/micro-ceph.sh" stop "$CEPH" >/dev/null 2>&1
	[ -d "$CEPH3" ] && "$REPO/test/micro-ceph.sh" stop "$CEPH3" >/dev/null 2>&1
	log "faults: $FAILED failed"
	[ -s "$FIG" ] && { echo "==== fault figures"; cat "$FIG"; }
	[ "$FAILED" -eq 0 ]
	exit
}

# gotcmu_start: start gotcmu with its own numbered log in $OUT.
gotcmu_start() {
	NLOG=$((NLOG + 1))
	start_handler "$OUT/gotcmu-$NLOG.log"
}
gotcmu_log() { cat "$OUT"/gotcmu-*.log; }

# gotcmu_kill: SIGKILL and reap it.
gotcmu_kill() {
	kill -KILL "$HANDLER_PID"; wait "$HANDLER_PID" 2>/dev/null; HANDLER_PID=""
}

# make_lun HBA NAME CONFIG SIZE [CONTROL...]: a user backstore (CONFIG is dev_config, e.g.
# file//tmp/x.img), each extra control token written before enable; prints its configfs path.
# The enable write may wait ENABLE_WAIT seconds (default 60) for gotcmu's answer.
make_lun() {
	local dir=$CFG/core/user_$1/$2 cfg=$3 size=$4 tok
	shift 4
	mkdir -p "$dir" || return 1
	put "dev_config=$cfg" "$dir/control" || return 1
	put "dev_size=$size" "$dir/control" || return 1
	for tok in "$@"; do put "$tok" "$dir/control" || return 1; done
	bounded "${ENABLE_WAIT:-60}" put 1 "$dir/enable" || { log "enable of $dir failed" >&2; return 1; }
	put "$(new_uuid)" "$dir/wwn/vpd_unit_serial" || return 1
	echo "$dir"
}

# wwn N: a tcm_loop WWN of its own for LUN number N.
wwn() { printf 'naa.50014050000fa%03x' "$1"; }

# metric REGEX: the sum of the samples whose name and labels match REGEX.
metric() {
	curl -s --max-time 10 "$METRICS" | awk -v re="$1" '$0 !~ /^#/ && $1 ~ re { s += $2 } END { print s + 0 }'
}

# wait_gone PID SECONDS: wait for PID to end without touching netlink; 1 if it did not.
wait_gone() {
	local deadline=$(($(date +%s) + $2))
	while kill -0 "$1" 2>/dev/null; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

# quick_io DEV: 4 MiB of random data written and read back with O_DIRECT at offset 0.
quick_io() {
	dd if=/dev/urandom of=/tmp/qio bs=1M count=4 status=none &&
		dd if=/tmp/qio of="$1" bs=1M oflag=direct status=none &&
		dd if="$1" of=/tmp/qio.back bs=1M count=4 iflag=direct status=none &&
		cmp -s /tmp/qio /tmp/qio.back
}

# d_state: processes in uninterruptible sleep (D), one "pid comm" per line; Ceph's own daemons
# and tools are left out (the hard faults' cluster starts in the background meanwhile, and under
# TCG its I/O puts them in D for moments).
d_state() { awk '$3 == "D" && $2 !~ /^\((ceph|ceph-[a-z]+|rados|rbd)\)$/ { print $1, $2 }' /proc/[0-9]*/stat 2>/dev/null; }
no_d_state() { [ -z "$(d_state)" ]; }

log "faults: $FAULTS"
handler_present || { fail "gotcmu starts: $GOTCMU not found (make build)"; finish; }
[ -x "$ACKWRITER" ] || { fail "ackwriter: $ACKWRITER not found"; finish; }
check "gotcmu starts" gotcmu_start || finish

# Ceph in the guest, for the rbd LUN, started in the background while the user:file faults run
# (it takes one to two minutes under TCG). micro-ceph.sh sets osd heartbeat grace 4 s and
# interval 2 s, so the osd_op_timeout=10 asked for below stays 10 s (gotcmu raises a value
# below grace+interval to grace+interval+5, tcmu-runner's rule).
CEPH_PID=""
if want sigkill || want sigterm || want osd-restart || want osd-timeout || want stale-write; then
	CEPH_T0=$(date +%s)
	(MON_PORT_V2=3300 MON_PORT_V1=6789 "$REPO/test/micro-ceph.sh" start "$CEPH" $((1 << 30)) &&
		CEPH_CONF=$CEPH/ceph.conf rbd create rbd/faults --size 256M) > "$OUT/ceph-start.log" 2>&1 &
	CEPH_PID=$!
fi

# The hard faults' cluster (3 OSDs, pool size 3, min_size 2), started now beside the other.
CEPH3=/tmp/ceph3 CEPH3_PID="" HARD_WANT=""
for f in mon-sigkill osd-sigkill below-min-size osd-freeze; do want "$f" && HARD_WANT+=" $f"; done
if [ -n "$HARD_WANT" ]; then
	CEPH3_T0=$(date +%s)
	(OSDS=3 MON_PORT_V2=3310 MON_PORT_V1=6790 "$REPO/test/micro-ceph.sh" start "$CEPH3" $((384 << 20)) &&
		CEPH_CONF=$CEPH3/ceph.conf rbd create rbd/hard --size 128M) > "$OUT/ceph3-start.log" 2>&1 &
	CEPH3_PID=$!
fi

truncate -s $((256 << 20)) /tmp/file0.img
FILE_BS=$(make_lun 1 file0 file//tmp/file0.img $((256 << 20)))
check "user:file backstore enabled" test -n "$FILE_BS" || finish
FILE_DEV=$(loop_export "$(wwn 1)" "$FILE_BS")
check "user:file LUN on tcm_loop (${FILE_DEV:-none})" test -b "$FILE_DEV" || finish
# Each stream writes its own 16 MiB region of 4 KiB blocks.
REGION=(-blocks 4096)

if want reset-ring; then
	log "=== reset-ring: action/reset_ring written under load"
	stream reset-ring "$FILE_DEV" "${REGION[@]}" -offset $((64 << 20)) -depth 32
	sleep 5
	for i in 1 2 3; do
		put 1 "$FILE_BS/action/reset_ring"
		log "reset_ring $i written with $(acked reset-ring) writes acknowledged"
		sleep 3
	done
	M=$(acked reset-ring)
	recovered reset-ring "$M"
	stream_end reset-ring "$FILE_DEV" "$M"
	check "reset-ring: gotcmu still running" kill -0 "$HANDLER_PID"
	noticed() { gotcmu_log | grep -q 'command ring reset; serving again'; }
	check "reset-ring: gotcmu noticed the reset and resynchronised its ring" noticed
fi

if want tiny-data-area; then
	log "=== tiny-data-area: 1 MiB data area, 64 x 64 KiB writes in flight"
	truncate -s $((128 << 20)) /tmp/tiny.img
	TINY_BS=$(make_lun 2 tiny file//tmp/tiny.img $((128 << 20)) max_data_area_mb=1)
	check "tiny-data-area: backstore with max_data_area_mb=1 enabled" test -n "$TINY_BS"
	# Commands waiting for data-area space more than 1 s are failed with TASK SET FULL.
	put 1 "$TINY_BS/attrib/qfull_time_out"
	TINY_DEV=$(loop_export "$(wwn 2)" "$TINY_BS")
	if check "tiny-data-area: LUN on tcm_loop (${TINY_DEV:-none})" test -b "$TINY_DEV"; then
		TRACE=/sys/kernel/tracing
		[ -d "$TRACE/events" ] || mount -t tracefs nodev "$TRACE" 2>/dev/null
		TRACING=0
		if [ -w "$TRACE/events/scsi/scsi_dispatch_cmd_done/enable" ]; then
			: > "$TRACE/trace"; echo 1 > "$TRACE/events/scsi/scsi_dispatch_cmd_done/enable"; TRACING=1
		fi
		stream tiny-data-area "$TINY_DEV" -bs 65536 -blocks 1024 -depth 64
		sleep 6
		kill -STOP "$HANDLER_PID"
		log "gotcmu stopped for 5 s with the data area full ($(acked tiny-data-area) writes acknowledged)"
		sleep 5
		kill -CONT "$HANDLER_PID"
		M=$(acked tiny-data-area)
		recovered tiny-data-area "$M"
		stream_end tiny-data-area "$TINY_DEV" "$M"
		if [ "$TRACING" = 1 ]; then
			echo 0 > "$TRACE/events/scsi/scsi_dispatch_cmd_done/enable"
			TSF=$(grep -c 'TASK_SET_FULL' "$TRACE/trace")
			echo "FAULT tiny-data-area: TASK SET FULL answers seen by the initiator: $TSF" | tee -a "$FIG"
			check "tiny-data-area: the kernel answered TASK SET FULL while the queue was full ($TSF)" test "$TSF" -gt 0
		else
			skip "tiny-data-area: TASK SET FULL count: no tracefs in the guest kernel"
		fi
	fi
	loop_unexport "$(wwn 2)"; remove_backstore "$TINY_BS"
fi

if want delete; then
	log "=== delete: the backstore deleted with targetcli under load"
	truncate -s $((64 << 20)) /tmp/del.img
	DEL_BS=$(make_lun 3 fdel file//tmp/del.img $((64 << 20)))
	DEL_DEV=$(loop_export "$(wwn 3)" "$DEL_BS")
	if check "delete: LUN on tcm_loop (${DEL_DEV:-none})" test -b "$DEL_DEV"; then
		# The writer gives up 5 s after its device is gone.
		stream delete "$DEL_DEV" -blocks 4096 -depth 16 -give-up 5s
		sleep 6
		T0=$(date +%s)
		# targetcli finds user: backstores through gotcmu's D-Bus service; should it fail,
		# configfs directly (what targetcli does underneath) still tests gotcmu.
		timeout 90 targetcli /backstores/user:file delete fdel > "$OUT/targetcli-delete.txt" 2>&1 &
		TC=$!
		if wait_gone "$TC" 90; then wait "$TC"; TRC=$?; else TRC=124; fi
		cat "$OUT/targetcli-delete.txt"
		if [ -d "$DEL_BS" ]; then
			fail "delete: targetcli (exit $TRC) left $DEL_BS; removing it through configfs"
			loop_unexport "$(wwn 3)"
			rmdir "$DEL_BS" &
			RM=$!
			wait_gone "$RM" 30 || { unblock_netlink; fail "delete: rmdir waited more than 30 s for gotcmu"; }
		else
			pass "delete: targetcli deleted the backstore under I/O in $(($(date +%s) - T0)) s (exit $TRC)"
		fi
		check "delete: backstore gone" test ! -d "$DEL_BS"
		wait "${WPID[delete]}"
		"$ACKWRITER" verify -dev /tmp/del.img -direct=false -log /tmp/delete.ack > "$OUT/delete-verify.txt" 2>&1; VRC=$?
		line=$(grep -o 'acknowledged=.*' "$OUT/delete-verify.txt" | tail -1)
		echo "FAULT delete: ${line:-verify failed} (verified in the backing file after the delete)" | tee -a "$FIG"
		check "delete: every write acknowledged before the delete is in the image (lost=0)" test "$VRC" -eq 0
		check "delete: gotcmu still running" kill -0 "$HANDLER_PID"
		removed() { gotcmu_log | grep -q '"dev":"fdel".*"device closed"'; }
		check "delete: gotcmu closed the device" removed
		check "delete: the other LUN still serves (4 MiB round trip)" quick_io "$FILE_DEV"
		# targetcli took the LUN away with the backstore; the empty target stays.
		rmdir "$CFG/loopback/$(wwn 3)/tpgt_1/lun/lun_0" 2>/dev/null
		rmdir "$CFG/loopback/$(wwn 3)/tpgt_1" "$CFG/loopback/$(wwn 3)" 2>/dev/null
	fi
fi

if want netlink-kill; then
	log "=== netlink-kill: gotcmu killed while an enable waits for its reply"
	truncate -s $((16 << 20)) /tmp/nl.img
	NL=$CFG/core/user_5/nl0
	mkdir -p "$NL"
	put "dev_config=file//tmp/nl.img" "$NL/control"
	put "dev_size=$((16 << 20))" "$NL/control"
	kill -STOP "$HANDLER_PID"
	put 1 "$NL/enable" 2> "$OUT/netlink-enable-1.txt" &
	EN=$!
	sleep 3
	STATE=$(awk '{ print $3 }' "/proc/$EN/stat" 2>/dev/null)
	check "netlink-kill: the enable write waits for gotcmu's reply (state ${STATE:-gone})" test "$STATE" = D
	kill -KILL "$HANDLER_PID"; wait "$HANDLER_PID" 2>/dev/null; HANDLER_PID=""
	sleep 2
	check "netlink-kill: the writer is still blocked with gotcmu dead" kill -0 "$EN"
	T0=$(date +%s%N)
	check "netlink-kill: gotcmu started again" gotcmu_start || finish
	if wait_gone "$EN" 30; then
		wait "$EN"; ERC=$?
		pass "netlink-kill: the blocked enable returned $((($(date +%s%N) - T0) / 1000000)) ms after the start (exit $ERC: $(tr -d '\n' < "$OUT/netlink-enable-1.txt"))"
	else
		fail "netlink-kill: the enable write still blocked 30 s after gotcmu started"
		unblock_netlink
	fi
	if [ "$(cat "$NL/enable" 2>/dev/null)" = 1 ]; then
		pass "netlink-kill: the first enable went through after all"
	else
		check "netlink-kill: the retried enable succeeds" bounded 30 put 1 "$NL/enable"
	fi
	served() { gotcmu_log | grep -q '"dev":"nl0".*"serving device"'; }
	check "netlink-kill: gotcmu serves the device" wait_until 10 served
	# A writer left blocked stays in D; one caught in passing (I/O) leaves it within seconds.
	check "netlink-kill: no process left in D state" wait_until 15 no_d_state || log "in D state: $(d_state | tr '\n' ' ')"
	bounded 30 rmdir "$NL"
fi

RBD_DEV=""
if [ -n "$CEPH_PID" ]; then
	if wait "$CEPH_PID"; then
		pass "micro Ceph up and rbd/faults created ($(($(date +%s) - CEPH_T0)) s after its start)"
		RBD_BS=$(make_lun 4 rbd0 "rbd/rbd/faults;osd_op_timeout=10;conf=$CEPH/ceph.conf" $((256 << 20)))
		check "user:rbd backstore enabled" test -n "$RBD_BS" && RBD_DEV=$(loop_export "$(wwn 4)" "$RBD_BS")
		check "user:rbd LUN on tcm_loop (${RBD_DEV:-none})" test -b "$RBD_DEV" || RBD_DEV=""
		gotcmu_log | grep -o '"osd_op_timeout":[0-9]*' | tail -1
	else
		fail "micro Ceph: did not start (see $OUT/ceph-start.log)"
		tail -20 "$OUT/ceph-start.log"
	fi
fi

if want sigkill; then
	log "=== sigkill: 5 x SIGKILL and restart"
	stream sigkill-file "$FILE_DEV" "${REGION[@]}" -offset 0 -depth 16
	[ -n "$RBD_DEV" ] && stream sigkill-rbd "$RBD_DEV" "${REGION[@]}" -offset 0 -depth 16
	for i in 1 2 3 4 5; do
		sleep 6
		before=$(acked sigkill-file)/$(acked sigkill-rbd)
		gotcmu_kill
		log "SIGKILL $i with $before writes acknowledged (file/rbd)"
		sleep 1
		check "sigkill: gotcmu restarted after SIGKILL $i" gotcmu_start || finish
	done
	MARK_F=$(acked sigkill-file); MARK_R=$(acked sigkill-rbd)
	recovered sigkill-file "$MARK_F"
	[ -n "$RBD_DEV" ] && recovered sigkill-rbd "$MARK_R"
	stream_end sigkill-file "$FILE_DEV" "$MARK_F"
	if [ -n "$RBD_DEV" ]; then stream_end sigkill-rbd "$RBD_DEV" "$MARK_R"; else fail "sigkill-rbd: no rbd LUN"; fi
fi

if want sigterm; then
	log "=== sigterm: SIGTERM and restart"
	stream sigterm-file "$FILE_DEV" "${REGION[@]}" -offset $((32 << 20)) -depth 16
	[ -n "$RBD_DEV" ] && stream sigterm-rbd "$RBD_DEV" "${REGION[@]}" -offset $((32 << 20)) -depth 16
	sleep 8
	T0=$(date +%s%N)
	stop_handler; SRC=$?
	check "sigterm: gotcmu exits 0 on SIGTERM under load (status $SRC, $((($(date +%s%N) - T0) / 1000000)) ms)" test "$SRC" -eq 0
	drained() { grep -q '"drained":true' "$OUT/gotcmu-$NLOG.log"; }
	check "sigterm: gotcmu drained its devices before exiting" drained
	sleep 1
	check "sigterm: gotcmu restarted" gotcmu_start || finish
	MARK_F=$(acked sigterm-file); MARK_R=$(acked sigterm-rbd)
	recovered sigterm-file "$MARK_F"
	[ -n "$RBD_DEV" ] && recovered sigterm-rbd "$MARK_R"
	stream_end sigterm-file "$FILE_DEV" "$MARK_F"
	if [ -n "$RBD_DEV" ]; then stream_end sigterm-rbd "$RBD_DEV" "$MARK_R"; else fail "sigterm-rbd: no rbd LUN"; fi
fi

micro_ceph() { env CEPH_CONF=$CEPH/ceph.conf "$REPO/test/micro-ceph.sh" "$@" "$CEPH"; }

if want osd-restart; then
	log "=== osd-restart: the OSD stopped and started again"
	if [ -n "$RBD_DEV" ]; then
		stream osd-restart "$RBD_DEV" "${REGION[@]}" -offset $((64 << 20)) -depth 16
		sleep 6
		T0=$(date +%s)
		check "osd-restart: OSD stopped" micro_ceph stop-osd
		check "osd-restart: OSD started again" micro_ceph start-osd
		log "OSD down and up again in $(($(date +%s) - T0)) s"
		M=$(acked osd-restart)
		recovered osd-restart "$M" 180
		stream_end osd-restart "$RBD_DEV" "$M"
	else
		fail "osd-restart: no rbd LUN"
	fi
fi

if want osd-timeout; then
	log "=== osd-timeout: the OSD down for 25 s, longer than osd_op_timeout (10 s)"
	if [ -n "$RBD_DEV" ]; then
		BUSY0=$(metric 'gotcmu_status_total\{.*device="rbd0".*status="busy"')
		stream osd-timeout "$RBD_DEV" "${REGION[@]}" -offset $((96 << 20)) -depth 16
		sleep 6
		check "osd-timeout: OSD stopped" micro_ceph stop-osd
		sleep 25
		BUSY1=$(metric 'gotcmu_status_total\{.*device="rbd0".*status="busy"')
		echo "FAULT osd-timeout: commands answered BUSY while the OSD was down: $((BUSY1 - BUSY0))" | tee -a "$FIG"
		check "osd-timeout: commands answered BUSY while the OSD was down ($((BUSY1 - BUSY0)))" test "$BUSY1" -gt "$BUSY0"
		check "osd-timeout: OSD started again" micro_ceph start-osd
		M=$(acked osd-timeout)
		recovered osd-timeout "$M" 180
		stream_end osd-timeout "$RBD_DEV" "$M"
		check "osd-timeout: gotcmu still running" kill -0 "$HANDLER_PID"
	else
		fail "osd-timeout: no rbd LUN"
	fi
fi

if want stale-write; then
	log "=== stale-write: writes stuck while the OSDs are paused, then a retry with other data"
	if [ -n "$RBD_DEV" ]; then
		ceph_() { ceph -c "$CEPH/ceph.conf" "$@"; }
		BS=$(cat "/sys/block/${RBD_DEV##*/}/queue/logical_block_size")
		OFF=$((160 << 20)) N=16 # N writes of 4 KiB at OFF (object 40: one PG), the retry over all
		head -c 4096 /dev/zero | tr '\0' A > /tmp/stale-A
		head -c $((N * 4096)) /dev/zero | tr '\0' B > /tmp/stale-B
		dd if=/dev/zero of="$RBD_DEV" bs=4096 count="$N" seek=$((OFF / 4096)) oflag=direct status=none
		BL0=$(ceph_ osd blocklist ls 2>/dev/null | grep -c /)
		LOG0=$(gotcmu_log | wc -l)
		check "stale-write: OSDs paused" ceph_ osd pause
		sleep 3 # gotcmu's client learns of the pause with the next OSD map
		T0=$(date +%s)
		# WRITE(10) through SG_IO: the midlayer retries BUSY only within the command's own
		# timeout (40 s), then hands the BUSY to sg_raw, so the initiator sees the write fail.
		SG=()
		for i in $(seq 0 $((N - 1))); do
			lba=$(((OFF + i * 4096) / BS)) nb=$((4096 / BS))
			read -ra CDB <<< "$(printf '2a 00 %02x %02x %02x %02x 00 %02x %02x 00' $((lba >> 24 & 255)) \
				$((lba >> 16 & 255)) $((lba >> 8 & 255)) $((lba & 255)) $((nb >> 8)) $((nb & 255)))"
			{ sg_raw -t 40 -s 4096 -i /tmp/stale-A "$RBD_DEV" "${CDB[@]}"; echo "exit $?"; } > "$OUT/stale-A-$i.txt" 2>&1 &
			SG+=($!)
		done
		wait "${SG[@]}"
		# sg_raw prints each command's SCSI status ("SCSI Status: Good", "... Busy").
		GOOD=$(grep -l -i 'status: *good' "$OUT"/stale-A-*.txt | wc -l)
		BUSY=$(grep -l -i 'busy' "$OUT"/stale-A-*.txt | wc -l)
		STATUS=$(cat "$OUT"/stale-A-*.txt | grep -i 'status\|^exit' | sort | uniq -c | tr -s ' \n' ' ')
		echo "FAULT stale-write: $N writes of A answered after $(($(date +%s) - T0)) s with the OSDs paused: ${STATUS:-nothing printed}; $GOOD GOOD, $BUSY BUSY" | tee -a "$FIG"
		check "stale-write: no write succeeded with the OSDs paused ($GOOD)" test "$GOOD" -eq 0
		check "stale-write: the writes were answered BUSY ($BUSY of $N)" test "$BUSY" -gt 0
		BL1=$(ceph_ osd blocklist ls 2>/dev/null | grep -c /)
		check "stale-write: gotcmu's client is on the OSD blocklist ($BL0 -> $BL1 entries)" test "$BL1" -gt "$BL0"
		# The order (blocklist committed, then the answer) is rbd's TestStaleWriteFenced; here
		# the daemon's log shows the fence of its own client after the pause.
		fenced() { gotcmu_log | tail -n +$((LOG0 + 1)) | grep -q "blocklisted this gateway's own rbd client"; }
		check "stale-write: gotcmu logged blocklisting its own client" fenced
		gotcmu_log | tail -n +$((LOG0 + 1)) | grep -o '"addr":"[^"]*","took":[0-9.]*' | head -1
		dd if=/tmp/stale-B of="$RBD_DEV" bs=4096 seek=$((OFF / 4096)) oflag=direct status=none &
		RETRY=$!
		sleep 5
		check "stale-write: the retry waits while the OSDs are paused" kill -0 "$RETRY"
		check "stale-write: OSDs resumed" ceph_ osd unpause
		T1=$(date +%s)
		wait "$RETRY"; RRC=$?
		echo "FAULT stale-write: OSDs paused $((T1 - T0 + 3)) s; the retry completed $(($(date +%s) - T1)) s after they resumed (dd exit $RRC)" | tee -a "$FIG"
		check "stale-write: the retry with other data succeeds through the same LUN" test "$RRC" -eq 0
		lun_holds_b() {
			dd if="$RBD_DEV" of=/tmp/stale-back bs=4096 count="$N" skip=$((OFF / 4096)) iflag=direct status=none &&
				cmp -s /tmp/stale-B /tmp/stale-back
		}
		# The RADOS object holding the region, read by a client of its own.
		image_holds_b() {
			local prefix order
			prefix=$(CEPH_CONF=$CEPH/ceph.conf rbd info rbd/faults | awk '/block_name_prefix/ { print $2 }')
			order=$(CEPH_CONF=$CEPH/ceph.conf rbd info rbd/faults | awk '$1 == "order" { print $2 }')
			CEPH_CONF=$CEPH/ceph.conf rados -p rbd get "$(printf '%s.%016x' "$prefix" $((OFF >> order)))" /tmp/stale-obj &&
				cmp -s -n $((N * 4096)) -i 0:$((OFF % (1 << order))) /tmp/stale-B /tmp/stale-obj
		}
		check "stale-write: the LUN holds the retry (B), no stale A" lun_holds_b
		check "stale-write: the image's object holds the retry (rados get)" image_holds_b
		sleep 5
		check "stale-write: 5 s later the LUN still holds the retry" lun_holds_b
		check "stale-write: gotcmu still running" kill -0 "$HANDLER_PID"
	else
		fail "stale-write: no rbd LUN"
	fi
fi
if [ -n "$HARD_WANT" ]; then
	log "===${HARD_WANT}: hard faults on 3 OSDs (test/cmd/hardfaults)"
	if wait "$CEPH3_PID"; then
		pass "hard faults: micro Ceph with 3 OSDs up and rbd/hard created ($(($(date +%s) - CEPH3_T0)) s after its start)"
		HARD_BS=$(make_lun 7 hard0 "rbd/rbd/hard;osd_op_timeout=10;conf=$CEPH3/ceph.conf" $((128 << 20)))
		HARD_DEV=""
		[ -n "$HARD_BS" ] && HARD_DEV=$(loop_export "$(wwn 7)" "$HARD_BS")
		if check "hard faults: user:rbd LUN on tcm_loop (${HARD_DEV:-none})" test -b "$HARD_DEV"; then
			# Every step inside is bounded; this bounds the whole.
			# shellcheck disable=SC2086 # HARD_WANT is a list of names
			timeout -k 10 1200 "$HARDFAULTS" -dev "$HARD_DEV" -ceph "$CEPH3" -micro-ceph "$REPO/test/micro-ceph.sh" \
				-ackwriter "$ACKWRITER" -device hard0 -out "$OUT" -summary "$SUMMARY" -figures "$FIG" \
				-osd-op-timeout 10s -handler-pid "$HANDLER_PID" $HARD_WANT
			HRC=$?
			[ "$HRC" -le 1 ] || fail "hard faults: hardfaults did not complete (exit $HRC)"
		fi
	else
		fail "hard faults: micro Ceph with 3 OSDs did not start (see $OUT/ceph3-start.log)"
		tail -20 "$OUT/ceph3-start.log"
	fi
fi

if want caps; then
	log "=== caps: gotcmu with only the capabilities the unit grants"
	stop_handler
	UNIT_CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' "$REPO/systemd/gotcmu.service")
	log "unit CapabilityBoundingSet: $UNIT_CAPS"
	# setpriv --bounding-set -all,+net_admin,... from the unit's list.
	capset() { local c out=-all; for c in "$@"; do c=${c#CAP_}; out+=",+${c,,}"; done; echo "$out"; }
	# run_capped LOG CAPS...: gotcmu with the bounding and inheritable sets cut to CAPS (as root
	# its permitted and effective sets are then CAPS), no new privileges.
	run_capped() {
		local logf=$1 set; shift
		set=$(capset "$@")
		NLOG=$((NLOG + 1))
		# shellcheck disable=SC2086 # GOTCMU_ARGS is a list of words
		setpriv --bounding-set "$set" --inh-caps -all --no-new-privs "$GOTCMU" $GOTCMU_ARGS > "$logf" 2>&1 &
		HANDLER_PID=$!
		sleep 2
		kill -0 "$HANDLER_PID" 2>/dev/null && wait_until 20 dbus_up
	}
	dbus_up() { dbus-send --system --print-reply --dest=org.kernel.TCMUService1 /org/kernel/TCMUService1 org.freedesktop.DBus.Peer.Ping > /dev/null 2>&1; }
	# as_nobody METHOD ARGS...: a D-Bus call to gotcmu from uid 65534, its reply or error.
	as_nobody() {
		setpriv --reuid=65534 --regid=65534 --clear-groups dbus-send --system --print-reply \
			--dest=org.kernel.TCMUService1 "$@" 2>&1 | tr -s ' \n' ' '
	}
	checkcfg_nobody() { as_nobody /org/kernel/TCMUService1/file org.kernel.TCMUService1.CheckConfig "string:file/$1"; }
	truncate -s $((16 << 20)) /tmp/secret.img; chmod 600 /tmp/secret.img
	# shellcheck disable=SC2086 # the unit's list is a list of words
	if check "caps: gotcmu starts with only $UNIT_CAPS" run_capped "$OUT/gotcmu-caps.log" $UNIT_CAPS; then
		CAPEFF=$(awk '/^CapEff/ { print $2 }' "/proc/$HANDLER_PID/status")
		log "CapEff $CAPEFF: $(capsh --decode="$CAPEFF" 2>/dev/null)"
		truncate -s $((64 << 20)) /tmp/caps.img
		CAPS_BS=$(make_lun 6 caps0 file//tmp/caps.img $((64 << 20)))
		CAPS_DEV=""
		[ -n "$CAPS_BS" ] && CAPS_DEV=$(loop_export "$(wwn 6)" "$CAPS_BS")
		check "caps: a LUN is served with only these capabilities (4 MiB round trip)" quick_io "${CAPS_DEV:-/nonexistent}"
		# CAP_SETUID/SETGID: CheckConfig from an unprivileged caller runs with the caller's
		# file system credentials, so root's 0600 image is not readable for it.
		R=$(checkcfg_nobody /tmp/secret.img)
		echo "CheckConfig(file//tmp/secret.img) from uid 65534: $R"
		check "caps: CheckConfig from uid 65534 is answered with uid 65534's permissions (false)" grep -q 'boolean false' <<< "$R"
		R=$(as_nobody /org/kernel/TCMUService1 org.kernel.TCMUService1.Gotcmu1.Status)
		echo "Status from uid 65534: $R"
		check "caps: Status (every device and config string) is refused to uid 65534" grep -q 'AccessDenied' <<< "$R"
		# Another user's 0600 image: needs CAP_DAC_OVERRIDE, which the set has.
		truncate -s $((16 << 20)) /tmp/other.img; chown 65534:65534 /tmp/other.img; chmod 600 /tmp/other.img
		OTHER_BS=$(make_lun 6 other0 file//tmp/other.img $((16 << 20)))
		check "caps: another user's 0600 image opens (CAP_DAC_OVERRIDE)" test -n "$OTHER_BS"
		[ -n "$OTHER_BS" ] && remove_backstore "$OTHER_BS"
		loop_unexport "$(wwn 6)"; [ -n "$CAPS_BS" ] && remove_backstore "$CAPS_BS"
		stop_handler
	fi
	# Without CAP_DAC_OVERRIDE the same image is refused: the capability is really used.
	NODAC=()
	for c in $UNIT_CAPS; do [ "$c" = CAP_DAC_OVERRIDE ] || NODAC+=("$c"); done
	if check "caps: gotcmu starts without CAP_DAC_OVERRIDE" run_capped "$OUT/gotcmu-nodac.log" "${NODAC[@]}"; then
		if make_lun 6 other1 file//tmp/other.img $((16 << 20)) > /dev/null 2>&1; then
			fail "caps: without CAP_DAC_OVERRIDE another user's 0600 image was opened"
		else
			pass "caps: without CAP_DAC_OVERRIDE another user's 0600 image is refused"
		fi
		[ -d "$CFG/core/user_6/other1" ] && bounded 30 rmdir "$CFG/core/user_6/other1"
		stop_handler
	fi
	# Without CAP_SETUID/SETGID an unprivileged CheckConfig cannot take the caller's
	# credentials and is refused rather than answered with the daemon's.
	NOSETID=()
	for c in $UNIT_CAPS; do case $c in CAP_SETUID|CAP_SETGID) ;; *) NOSETID+=("$c") ;; esac; done
	if check "caps: gotcmu starts without CAP_SETUID/CAP_SETGID" run_capped "$OUT/gotcmu-nosetid.log" "${NOSETID[@]}"; then
		R=$(checkcfg_nobody /tmp/secret.img)
		echo "CheckConfig from uid 65534 without CAP_SETUID/SETGID: $R"
		check "caps: without CAP_SETUID/SETGID an unprivileged CheckConfig is refused, not answered as root" \
			grep -q 'credentials' <<< "$R"
		stop_handler
	fi
	# Without CAP_NET_ADMIN: TCM-USER's netlink commands are GENL_ADMIN_PERM.
	NONET=()
	for c in $UNIT_CAPS; do [ "$c" = CAP_NET_ADMIN ] || NONET+=("$c"); done
	run_capped "$OUT/gotcmu-nonet.log" "${NONET[@]}"
	NONET_UP=$?
	truncate -s $((16 << 20)) /tmp/nonet.img
	if ENABLE_WAIT=15 make_lun 6 nonet file//tmp/nonet.img $((16 << 20)) > /dev/null 2>&1; then
		fail "caps: without CAP_NET_ADMIN a new device was enabled"
	else
		pass "caps: without CAP_NET_ADMIN no new device can be enabled (gotcmu up: $([ $NONET_UP = 0 ] && echo yes || echo no))"
	fi
	grep -i 'netlink\|permitted\|EPERM' "$OUT/gotcmu-nonet.log" | head -3
	[ -n "${HANDLER_PID:-}" ] && { kill -KILL "$HANDLER_PID"; wait "$HANDLER_PID" 2>/dev/null; HANDLER_PID=""; }
	[ -d "$CFG/core/user_6/nonet" ] && { unblock_netlink; bounded 30 rmdir "$CFG/core/user_6/nonet"; }
	rmdir "$CFG/core/user_6" 2>/dev/null
	# Metrics: loopback only by default.
	check "caps: gotcmu restarted with defaults" gotcmu_start || finish
	LISTEN=$(awk 'NR > 1 && $4 == "0A" { print $2 }' /proc/net/tcp /proc/net/tcp6 | grep -i ':2558$' | tr '\n' ' ')
	check "caps: metrics listen on 127.0.0.1:9560 only (listening: ${LISTEN:-none})" test "$(echo $LISTEN)" = "0100007F:2558"
	check "caps: metrics answer on loopback" test "$(metric 'go_goroutines')" -gt 0
fi

# Clean up what is left.
stop_handler; SRC=$?
check "gotcmu exits 0 on the final SIGTERM (status $SRC)" test "$SRC" -eq 0
finish
