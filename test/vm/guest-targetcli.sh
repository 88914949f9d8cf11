#!/bin/bash
# Runs INSIDE the guest (test-vm.sh boots it): issue 5 point 5, gotcmu as the system's TCMU
# handler seen through targetcli (targetcli-fb + rtslib, as on a gateway), D-Bus, `gotcmu status`
# and the metrics endpoint, with Ceph inside the guest (lib-ceph.sh, shared with guest-rbd.sh).
#   - the system bus runs with the project's D-Bus policy (systemd/org.kernel.TCMUService1.conf,
#     and not gotcmu's own tcmu.conf) and gotcmu owns org.kernel.TCMUService1;
#   - `targetcli ls` lists user:rbd and user:file, served by gotcmu;
#   - `targetcli /backstores/user:X help create` shows the ConfigDesc gotcmu publishes;
#   - bad config strings are refused by targetcli with gotcmu's own CheckConfig message, and
#     nothing is created;
#   - `targetcli /backstores/user:rbd create name=d0 size=64M cfgstring=rbd/img` makes a LUN
#     gotcmu serves: exported with targetcli on tcm_loop, data written and read back, in the image;
#   - `gotcmu status` (text and --json) shows the device;
#   - 127.0.0.1:9560/metrics answers, and d0's counters move with the I/O;
#   - a user:file LUN made with targetcli too; both deleted with targetcli; gotcmu exits 0.
# gotcmu only: the other MODEs are not gotcmu (SKIP). Env: MODE, GOTCMU, GOTCMU_ARGS.
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
# shellcheck source=test/vm/lib-ceph.sh
. "$HERE/lib-ceph.sh"
MODE=${MODE:-gotcmu}
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
OUT=/out/targetcli
WWN=naa.50014050000000c1
METRICS=http://127.0.0.1:9560/metrics
POLICY=/etc/dbus-1/system.d/org.kernel.TCMUService1.conf
# Debian's python3 with python3-dbus (targetcli's own); the PATH may lead to another one.
PY=/usr/bin/python3
export TARGETCLI_HOME=/tmp/targetcli-home
mkdir -p "$OUT" "$TARGETCLI_HOME" /etc/target
HANDLER=gotcmu

finish() {
	[ -n "${HANDLER_PID:-}" ] && { stop_handler || log "gotcmu did not stop cleanly"; }
	ceph_logs
	log "targetcli ($MODE): $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

if [ "$MODE" != gotcmu ]; then
	skip "targetcli suite: it tests gotcmu's D-Bus service, status and metrics; mode $MODE has none"
	exit 0
fi
[ -x "$GOTCMU" ] || { fail "gotcmu starts: $GOTCMU not found (make build)"; finish; }

# tcli NAME ARGS...: targetcli ARGS (one-shot mode) with its output in $OUT/NAME.txt; a command
# that waits in the kernel for gotcmu's netlink reply is ended after 60 s (lib.sh's bounded).
tcli() {
	local name=$1; shift
	bounded 60 targetcli "$@" > "$OUT/$name.txt" 2>&1
}

# dbus_prop SUBTYPE PROPERTY: a property of gotcmu's /org/kernel/TCMUService1/SUBTYPE object.
dbus_prop() {
	"$PY" - "$@" <<'PY'
import dbus, sys
o = dbus.SystemBus().get_object("org.kernel.TCMUService1", "/org/kernel/TCMUService1/" + sys.argv[1])
print(o.Get("org.kernel.TCMUService1", sys.argv[2], dbus_interface="org.freedesktop.DBus.Properties"))
PY
}

# dbus_check CONFIG: gotcmu's CheckConfig answer for CONFIG ("<subtype>/<config>", as targetcli
# sends it): "true <message>" or "false <message>".
dbus_check() {
	"$PY" - "$1" <<'PY'
import dbus, sys
sub = sys.argv[1].split("/", 1)[0]
o = dbus.SystemBus().get_object("org.kernel.TCMUService1", "/org/kernel/TCMUService1/" + sub)
ok, msg = o.CheckConfig(sys.argv[1], dbus_interface="org.kernel.TCMUService1", timeout=30)
print("true" if ok else "false", msg)
PY
}

# name_owner_pid: the pid of the connection owning org.kernel.TCMUService1.
name_owner_pid() {
	"$PY" - <<'PY'
import dbus
bus = dbus.SystemBus()
d = dbus.Interface(bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus"), "org.freedesktop.DBus")
print(d.GetConnectionUnixProcessID("org.kernel.TCMUService1"))
PY
}

# metric NAME DEVICE [LABEL=VALUE]: the sum of NAME's samples for DEVICE (and LABEL), as an integer.
metric() {
	curl -sf --max-time 10 "$METRICS" | grep "^$1{" | grep -F "device=\"$2\"" | grep -F "${3:-device=}" |
		awk '{s += $2} END {printf "%d\n", s}'
}

log "targetcli: gotcmu through targetcli, D-Bus, status and metrics"
check "micro Ceph cluster running in the guest" ceph_up || finish
check "rbd image rbd/img (64 MiB) created" rbd_image img $((64 << 20)) || finish

# 1. gotcmu on the system bus, under the project's policy.
check "gotcmu starts and stays up" start_handler "$OUT/gotcmu.log" || { handler_log "$OUT/gotcmu.log"; finish; }
check "the system bus has the D-Bus policy from systemd/ ($POLICY)" cmp "$REPO/systemd/org.kernel.TCMUService1.conf" "$POLICY"
check "gotcmu's config file systemd/tcmu.conf is not in the bus's policy directory" \
	test ! -e /etc/dbus-1/system.d/tcmu.conf
owned_by_gotcmu() { [ "$(name_owner_pid 2>/dev/null)" = "$HANDLER_PID" ]; }
check "org.kernel.TCMUService1 is owned by gotcmu (pid $HANDLER_PID)" wait_until 20 owned_by_gotcmu || finish

# 2. targetcli ls and help.
tcli ls ls
lists() { grep -q "o- user:rbd " "$OUT/ls.txt" && grep -q "o- user:file " "$OUT/ls.txt"; }
check "targetcli ls lists user:rbd and user:file" lists || cat "$OUT/ls.txt"
for sub in rbd file; do
	dbus_prop "$sub" ConfigDesc > "$OUT/configdesc-$sub.txt" 2>&1
	tcli "help-$sub" "/backstores/user:$sub" help create
	shows_desc() {
		[ -s "$OUT/configdesc-$1.txt" ] && grep -q . "$OUT/configdesc-$1.txt" &&
			while IFS= read -r line; do grep -qF -- "$line" "$OUT/help-$1.txt" || return 1; done < "$OUT/configdesc-$1.txt"
	}
	check "targetcli help create on user:$sub shows gotcmu's ConfigDesc ($(head -1 "$OUT/configdesc-$sub.txt"))" shows_desc "$sub"
done

# 3. Bad config strings: targetcli must refuse them with gotcmu's message, and create nothing.
#    (targetcli sends "<subtype>/<cfgstring>" to CheckConfig.)
refused() { # refused SUBTYPE NAME CFGSTRING
	local sub=$1 name=$2 cfg=$3 answer msg
	answer=$(dbus_check "$sub/$cfg")
	msg=${answer#* }
	[ "${answer%% *}" = false ] && [ -n "$msg" ] || { log "CheckConfig($sub/$cfg) answered '$answer'"; return 1; }
	if tcli "bad-$name" "/backstores/user:$sub" create name="$name" size=64M cfgstring="$cfg"; then
		log "targetcli accepted $sub/$cfg"; return 1
	fi
	grep -qF "cfgstring invalid: $msg" "$OUT/bad-$name.txt" || { log "targetcli said: $(cat "$OUT/bad-$name.txt")"; return 1; }
	! ls -d "$CFG"/core/user_*/"$name" >/dev/null 2>&1
}
check "targetcli refuses user:rbd cfgstring=rbd/nosuchimage with gotcmu's message" refused rbd bad0 rbd/nosuchimage
check "targetcli refuses user:rbd cfgstring=rbd (no image) with gotcmu's message" refused rbd bad1 rbd
check "targetcli refuses user:rbd cfgstring='rbd/img;osd_op_timeout=x' with gotcmu's message" refused rbd bad2 'rbd/img;osd_op_timeout=x'
check "targetcli refuses user:file cfgstring=disk.img (relative) with gotcmu's message" refused file bad3 disk.img

# 4. The issue's command: a user:rbd LUN gotcmu serves, exported with targetcli on tcm_loop.
tcli create-d0 /backstores/user:rbd create name=d0 size=64M cfgstring=rbd/img
check "targetcli /backstores/user:rbd create name=d0 size=64M cfgstring=rbd/img" test $? -eq 0 ||
	{ cat "$OUT/create-d0.txt"; finish; }
UIO=$(uio_for "/d0/rbd/rbd/img")
check "d0 has a uio device (${UIO:-none})" test -n "$UIO"
tcli loop-create /loopback create "$WWN" && tcli loop-lun "/loopback/$WWN/luns" create /backstores/user:rbd/d0
check "targetcli exports d0 on tcm_loop" test $? -eq 0
ADDR=$(cat "$CFG/loopback/$WWN/tpgt_1/address" 2>/dev/null)
wait_until 20 test -d "/sys/class/scsi_disk/$ADDR:0/device/block"
DEV=/dev/$(ls "/sys/class/scsi_disk/$ADDR:0/device/block" 2>/dev/null | head -1)
check "d0 appears as a disk ($DEV)" wait_until 10 test -b "$DEV" || finish
check "d0's capacity is 64 MiB" test "$(blockdev --getsize64 "$DEV")" = $((64 << 20))

W0=$(metric gotcmu_bytes_total d0 'class="write"')
R0=$(metric gotcmu_commands_total d0 'class="read"')
dd if=/dev/urandom of=/tmp/tc-pattern bs=1M count=16 status=none
dd if=/tmp/tc-pattern of="$DEV" bs=1M oflag=direct status=none
round_trip() { dd if="$DEV" bs=1M count=16 iflag=direct status=none | cmp - /tmp/tc-pattern; }
check "16 MiB written to d0 read back through tcm_loop" round_trip
in_image() { rbd export rbd/img - 2>/dev/null | cmp -n $((16 << 20)) - /tmp/tc-pattern; }
check "the 16 MiB are in rbd/img" in_image

# 5. gotcmu status.
"$GOTCMU" status > "$OUT/status.txt" 2>&1
cat "$OUT/status.txt"
status_shows() { grep -E '^d0 ' "$OUT/status.txt" | grep -F rbd/img | grep -qF 64.0MiB; }
check "gotcmu status shows d0 (rbd/img, 64.0MiB)" status_shows
"$GOTCMU" status --json > "$OUT/status.json" 2>&1
json_shows() {
	"$PY" - "$OUT/status.json" <<'PY'
import json, sys
devs = [d for d in json.load(open(sys.argv[1]))["devices"] if d.get("name") == "d0"]
sys.exit(0 if len(devs) == 1 and devs[0].get("size") == 64 << 20 else 1)
PY
}
check "gotcmu status --json has d0 with size 67108864" json_shows

# 6. The metrics endpoint, and d0's counters moving with the I/O above.
curl -sf --max-time 10 "$METRICS" > "$OUT/metrics.txt"
check "metrics endpoint $METRICS answers" test -s "$OUT/metrics.txt"
W1=$(metric gotcmu_bytes_total d0 'class="write"')
R1=$(metric gotcmu_commands_total d0 'class="read"')
check "d0's written bytes moved by at least 16 MiB ($W0 -> $W1)" test "$((W1 - W0))" -ge $((16 << 20))
check "d0's read commands moved ($R0 -> $R1)" test "$R1" -gt "$R0"
check "d0's gotcmu_device_size_bytes is 67108864" test "$(metric gotcmu_device_size_bytes d0)" = $((64 << 20))
check "d0's latency histogram counts writes" test "$(metric gotcmu_command_latency_seconds_count d0 'class="write"')" -gt 0

# 7. A user:file LUN through targetcli too.
rm -f /tmp/tc-f0.img
tcli create-f0 /backstores/user:file create name=f0 size=32M cfgstring=/tmp/tc-f0.img
check "targetcli /backstores/user:file create name=f0 size=32M cfgstring=/tmp/tc-f0.img" test $? -eq 0 ||
	cat "$OUT/create-f0.txt"
check "f0 has a uio device served by gotcmu" test -n "$(uio_for "/f0/file//tmp/tc-f0.img")"
tcli ls-after ls /backstores
listed() { grep -q "o- d0 " "$OUT/ls-after.txt" && grep -q "o- f0 " "$OUT/ls-after.txt"; }
check "targetcli ls lists d0 under user:rbd and f0 under user:file" listed
"$GOTCMU" status > "$OUT/status-2.txt" 2>&1
check "gotcmu status shows f0" grep -qE '^f0 ' "$OUT/status-2.txt"

# 8. Deleted with targetcli while gotcmu runs.
tcli loop-delete /loopback delete "$WWN"
check "targetcli deletes the tcm_loop target" test $? -eq 0
tcli delete-d0 /backstores/user:rbd delete d0 && tcli delete-f0 /backstores/user:file delete f0
check "targetcli deletes d0 and f0" test $? -eq 0
check "their uio devices are gone" eval 'test -z "$(uio_for /d0/rbd/)" && test -z "$(uio_for /f0/file/)"'
check "gotcmu still running" kill -0 "$HANDLER_PID"
"$GOTCMU" status > "$OUT/status-3.txt" 2>&1
check "gotcmu status no longer lists d0 or f0" eval '! grep -qE "^(d0|f0) " "$OUT/status-3.txt"'
stop_handler; SRC=$?
check "gotcmu exits 0 on SIGTERM (status $SRC)" test "$SRC" -eq 0
rm -f /tmp/tc-pattern /tmp/tc-f0.img
finish
