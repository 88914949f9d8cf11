#!/bin/bash
# Runs INSIDE the guest (demo.sh boots it): the whole story of a gateway, step by step.
#   a micro Ceph cluster; gotcmu as the system's TCMU handler on the D-Bus system bus;
#   targetcli creating a user:rbd LUN on an iSCSI target, as an operator (or ceph-iscsi) does;
#   the open-iscsi initiator logging in over 127.0.0.1; ext4 made, mounted, files written,
#   remounted and read back; a short fio; a summary table and `gotcmu status`.
# Env: GOTCMU, GOTCMU_ARGS, DEMO_SIZE (bytes, default 512 MiB), FIO_SECS (default 10),
#      MODE (gotcmu; tcmu-runner tells the same story with Debian's reference handler).
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck disable=SC2034 # lib.sh appends PASS/FAIL lines to it
SUMMARY=/out/demo-steps.txt
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
# shellcheck source=test/vm/lib-ceph.sh
. "$HERE/lib-ceph.sh"
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
MODE=${MODE:-gotcmu}
select_handler
[ -n "$HANDLER" ] || { echo "demo: MODE must be gotcmu or tcmu-runner, not $MODE"; exit 2; }
SIZE=${DEMO_SIZE:-$((512 << 20))}
FIO_SECS=${FIO_SECS:-10}
IMG=demo
IQN=iqn.2003-01.org.gotcmu:demo
export TARGETCLI_HOME=/tmp/targetcli-home
mkdir -p "$TARGETCLI_HOME" /etc/target
STEPS=9
n=0
step() { n=$((n + 1)); echo; echo "==> [$n/$STEPS] $*"; }
die() { fail "$*"; [ -n "${HANDLER_PID:-}" ] && kill -KILL "$HANDLER_PID"; exit 1; }
# tcli ARGS...: targetcli in one-shot mode, its output shown; a configfs write waiting for a
# handler's netlink reply is ended after 60 s instead of hanging the demo (lib.sh's bounded).
tcli() {
	echo "# targetcli $*"
	bounded 60 targetcli "$@" 2>&1 | grep -v 'Could not load preferences file'
	return "${PIPESTATUS[0]}"
}

step "a Ceph cluster: one monitor, one manager, one OSD (memstore), inside this guest"
ceph_up || die "micro Ceph did not start"
rbd_image "$IMG" "$SIZE" || die "rbd create rbd/$IMG failed"
ceph -s | sed -n '/services:/,/^$/p'
pass "Ceph up; image rbd/$IMG of $((SIZE >> 20)) MiB"

step "$HANDLER becomes the system's TCMU handler: it owns org.kernel.TCMUService1 on the system bus"
handler_present || die "$HANDLER not found (GOTCMU=$GOTCMU; make build)"
start_handler "/out/$HANDLER.log" || { handler_log "/out/$HANDLER.log"; die "$HANDLER did not stay up"; }
owned() { dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner \
	string:org.kernel.TCMUService1 2>/dev/null | grep -q 'boolean true'; }
wait_until 30 owned || die "nobody owns org.kernel.TCMUService1"
pass "$HANDLER running as pid $HANDLER_PID, owning org.kernel.TCMUService1"

step "targetcli: a user:rbd backstore on rbd/$IMG, exported as LUN 0 of an iSCSI target"
tcli /backstores/user:rbd create name=demo size="$((SIZE >> 20))M" cfgstring="rbd/$IMG" || die "backstore not created"
tcli /iscsi create "$IQN" || die "iSCSI target not created"
tcli "/iscsi/$IQN/tpg1/luns" create /backstores/user:rbd/demo || die "LUN not created"
tcli "/iscsi/$IQN/tpg1" set attribute authentication=0 generate_node_acls=1 \
	demo_mode_write_protect=0 cache_dynamic_acls=1 > /dev/null || die "TPG attributes"
targetcli ls "/iscsi/$IQN" 2>&1 | sed 's/^/  /'
pass "user:rbd/demo served by $HANDLER (uio: $(uio_for "/demo/"))"

step "the open-iscsi initiator logs in over 127.0.0.1:3260"
modprobe iscsi_tcp || die "no iscsi_tcp module"
mkdir -p /run/lock/iscsi
iscsid || die "iscsid did not start"
iscsiadm -m discovery -t sendtargets -p 127.0.0.1:3260 || die "discovery failed"
iscsiadm -m node -T "$IQN" -p 127.0.0.1:3260 --login || die "login failed"
disk() { iscsiadm -m session -P 3 2>/dev/null | awk '/Attached scsi disk/ {print $4; exit}'; }
wait_until 60 sh -c "[ -n \"\$(iscsiadm -m session -P 3 2>/dev/null | grep 'Attached scsi disk')\" ]" ||
	die "no disk attached to the session"
DEV=/dev/$(disk)
wait_until 30 test -b "$DEV" || die "$DEV did not appear"
sg_inq "$DEV" | grep -E 'Vendor identification|Product identification|Product revision'
pass "$DEV: $(($(blockdev --getsize64 "$DEV") >> 20)) MiB over iSCSI"

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
python3 - /out/fio.json "$DEV" "$SIZE" "$HANDLER user:rbd" > /out/demo-summary.txt <<'PY' || die "cannot read fio's output"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
dev, size, what = sys.argv[2], int(sys.argv[3]), sys.argv[4]
print("| LUN | size | op | IOPS | MB/s | lat p50 | lat p99 | lat p99.9 |")
print("|---|---:|---|---:|---:|---:|---:|---:|")
for op in ("read", "write"):
    r = j[op]
    pct = r["clat_ns"].get("percentile", {})
    p = lambda q: pct.get(q, 0) / 1000
    print("| %s (%s, iSCSI) | %d MiB | %s | %.0f | %.1f | %.0f us | %.0f us | %.0f us |" % (
        dev, what, size >> 20, op, r["iops"], r["bw_bytes"] / 1e6, p("50.000000"), p("99.000000"), p("99.900000")))
PY
pass "fio done"

step "the data is in Ceph: the image's usage"
rbd du "rbd/$IMG" 2>/dev/null
pass "rbd/$IMG holds the filesystem"

step "summary"
cat /out/demo-summary.txt
echo "(qemu emulates this guest's CPU: absolute figures are small; make bench compares ratios)"
if [ "$HANDLER" = gotcmu ]; then
	echo; echo "gotcmu status:"
	"$GOTCMU" status > /out/gotcmu-status.txt 2>&1 || die "gotcmu status failed: $(cat /out/gotcmu-status.txt)"
	cat /out/gotcmu-status.txt
fi

step "tear-down: unmount, log out, delete the LUN with targetcli while $HANDLER runs, stop $HANDLER"
umount /mnt/demo
iscsiadm -m node -T "$IQN" -p 127.0.0.1:3260 --logout > /dev/null || fail "logout failed"
tcli "/iscsi" delete "$IQN" > /dev/null || fail "iSCSI target not deleted"
tcli /backstores/user:rbd delete demo > /dev/null || fail "backstore not deleted"
stop_handler; rc=$?
[ "$rc" -eq 0 ] && pass "$HANDLER stopped (exit 0)" || fail "$HANDLER exit status $rc"
ceph_logs
echo
if [ "$FAILED" -eq 0 ]; then
	echo "demo: every step passed"
else
	echo "demo: $FAILED step(s) failed; logs in build/demo/"
fi
[ "$FAILED" -eq 0 ]
