#!/bin/bash
# Runs INSIDE the guest (demo.sh boots it): gotcmu serving a filesystem, told step by step.
#   gotcmu as the handler; a user:file LUN created through configfs; exported on tcm_loop;
#   mkfs, mount, files written, remounted and read back; a short fio; a summary table.
# Env: GOTCMU, GOTCMU_ARGS, DEMO_SIZE (bytes, default 512 MiB), FIO_SECS (default 10),
#      MODE (gotcmu; tcmu-runner tells the same story with the reference handler).
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck disable=SC2034 # lib.sh appends PASS/FAIL lines to it
SUMMARY=/out/demo-steps.txt
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
MODE=${MODE:-gotcmu}
select_handler
[ -n "$HANDLER" ] || { echo "demo: MODE must be gotcmu or tcmu-runner, not $MODE"; exit 2; }
SIZE=${DEMO_SIZE:-$((512 << 20))}
FIO_SECS=${FIO_SECS:-10}
WWN=naa.50014050000000d1
IMG=/tmp/demo-lun.img
STEPS=7
n=0
step() { n=$((n + 1)); echo; echo "==> [$n/$STEPS] $*"; }
die() { fail "$*"; [ -n "${HANDLER_PID:-}" ] && kill -KILL "$HANDLER_PID"; exit 1; }

step "$HANDLER takes the role of the system's TCMU handler (log: /out/$HANDLER.log)"
handler_present || die "$HANDLER not found (GOTCMU=$GOTCMU; make build)"
start_handler "/out/$HANDLER.log" || { handler_log "/out/$HANDLER.log"; die "$HANDLER did not stay up"; }
pass "$HANDLER running as pid $HANDLER_PID"

step "a $((SIZE >> 20)) MiB user:$HANDLER_SUBTYPE backstore on a file, created through configfs as rtslib does"
truncate -s "$SIZE" "$IMG"
BS=$(make_user_backstore 1 demo "$IMG" "$SIZE") || die "enable failed: $HANDLER did not take the device"
pass "$BS served by $HANDLER (uio: $(uio_for "tcm-user/1/demo/"))"

step "exported on the tcm_loop fabric: a SCSI disk in this guest"
DEV=$(loop_export "$WWN" "$BS") || die "no disk appeared"
sg_inq "$DEV" | grep -E 'Vendor identification|Product identification|Product revision'
pass "$DEV"

step "ext4 on it, files written, unmounted, mounted again and read back"
modprobe ext4 2>/dev/null
mkfs.ext4 -q -F "$DEV" || die "mkfs.ext4 failed"
mkdir -p /mnt/demo && mount "$DEV" /mnt/demo || die "mount failed"
cp -a /usr/share/doc/fio /usr/share/doc/libiscsi-bin /mnt/demo/ 2>/dev/null
dd if=/dev/urandom of=/mnt/demo/random.bin bs=1M count=64 status=none
(cd /mnt/demo && find . -type f -exec sha256sum {} + | sort -k2) > /tmp/demo.sums
FILES=$(wc -l < /tmp/demo.sums)
umount /mnt/demo && echo 3 > /proc/sys/vm/drop_caches && mount "$DEV" /mnt/demo || die "remount failed"
(cd /mnt/demo && sha256sum --quiet -c /tmp/demo.sums) || die "files differ after remount"
df -h /mnt/demo | tail -1
pass "$FILES files, $(du -sh /mnt/demo | cut -f1), identical after a remount"

step "fio for ${FIO_SECS}s on the filesystem: 4k random read/write (70/30), queue depth 16, O_DIRECT"
fio --name=demo --filename=/mnt/demo/fio.dat --size=128M --rw=randrw --rwmixread=70 --bs=4k \
	--iodepth=16 --ioengine=libaio --direct=1 --time_based --runtime="$FIO_SECS" \
	--output-format=json --output=/out/fio.json > /dev/null || die "fio failed"
python3 - /out/fio.json "$DEV" "$SIZE" "$HANDLER user:$HANDLER_SUBTYPE" > /out/demo-summary.txt <<'PY' || die "cannot read fio's output"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
dev, size, what = sys.argv[2], int(sys.argv[3]), sys.argv[4]
print("| LUN | size | op | IOPS | MB/s | lat p50 | lat p99 |")
print("|---|---:|---|---:|---:|---:|---:|")
for op in ("read", "write"):
    r = j[op]
    pct = r["clat_ns"].get("percentile", {})
    p = lambda q: pct.get(q, 0) / 1000
    print("| %s (%s) | %d MiB | %s | %.0f | %.1f | %.0f us | %.0f us |" % (
        dev, what, size >> 20, op, r["iops"], r["bw_bytes"] / 1e6, p("50.000000"), p("99.000000")))
PY
pass "fio done"

step "summary"
cat /out/demo-summary.txt
if [ "$HANDLER" = gotcmu ] && "$GOTCMU" status > /out/gotcmu-status.txt 2>&1; then
	echo; echo "gotcmu status:"; cat /out/gotcmu-status.txt
fi

step "tear-down: unmount, remove the LUN while $HANDLER runs, stop $HANDLER"
umount /mnt/demo
loop_unexport "$WWN" && remove_backstore "$BS" || die "removal failed"
kill -0 "$HANDLER_PID" || die "$HANDLER died during the removal"
stop_handler; rc=$?
[ "$rc" -ne 124 ] || die "$HANDLER did not stop on SIGTERM"
[ "$HANDLER" != gotcmu ] || [ "$rc" -eq 0 ] || die "gotcmu exited $rc on SIGTERM"
pass "clean"
echo; echo "demo: done (logs and fio.json in the output directory)"
