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
#
# The faults and their checks are Go tests: TestFaults in test/guest (faults_test.go and the
# files beside it, build tag guest), each fault a subtest, each check a subtest of it that says
# why it failed. test-vm.sh builds the test binary into the tools directory with test2json and
# test/cmd/testsummary; this script runs it and turns its events into the summary's PASS, FAIL
# and SKIP lines.
# Env: GOTCMU, GOTCMU_ARGS, ACKWRITER, HARDFAULTS, FAULTS (a subset of the names above, default all).
set -o pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
export REPO SUMMARY
export GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
export ACKWRITER=${ACKWRITER:-$REPO/build/bin/ackwriter}
TOOLS=$(dirname "$ACKWRITER")
export HARDFAULTS=${HARDFAULTS:-$TOOLS/hardfaults}
for tool in guest.test test2json testsummary; do
	[ -x "$TOOLS/$tool" ] || { fail "faults: $TOOLS/$tool not found (test-vm.sh builds it)"; exit 1; }
done
# The guest's memory every 10 s (two Ceph clusters, tmpfs images and the daemons share it): a
# guest that runs short stalls whole instead of failing a check, and this log says so.
mkdir -p /out/faults
(while :; do
	printf '%s %s\n' "$(date +%T)" "$(awk '/^(MemAvailable|Shmem|AnonPages):/ { printf "%s %d MiB  ", $1, $2 / 1024 }' /proc/meminfo)"
	ps -eo rss=,comm= --sort=-rss | head -6 | awk '{ printf "  %s %d MiB", $2, $1 / 1024 } END { print "" }'
	sleep 10
done > /out/faults/meminfo.log 2>&1) &
MEMLOG=$!
trap 'kill $MEMLOG 2>/dev/null' EXIT
# The faults are bounded inside; -test.timeout bounds the whole below the guest's own timeout.
"$TOOLS/test2json" -t -p faults "$TOOLS/guest.test" -test.v=test2json -test.run '^TestFaults$' -test.timeout 35m |
	"$TOOLS/testsummary" -summary "$SUMMARY"
