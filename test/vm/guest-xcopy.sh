#!/bin/bash
# Runs INSIDE the guest (test-vm.sh's "xcopy" suite): EXTENDED COPY stays inside what the initiator
# can reach (issue 12 point 1; LIO's CVE-2020-28374 class, which for user backstores is the
# handler's to prevent). Two iSCSI targets on 127.0.0.1, node ACLs only (no demo mode):
#   tenant 1: LUN 0 = A1, LUN 1 = A2, mapped to this machine's initiator name
#   tenant 2: LUN 0 = B, mapped to another initiator name only
# The initiator logs in to tenant 1 (tenant 2 refuses its login), then sends EXTENDED COPY to A1
# with B's NAA designator in a target descriptor, which it learns from nowhere but B's serial:
# pulling B into A1 and pushing A1 onto B must both end in CHECK CONDITION, ILLEGAL REQUEST,
# COPY TARGET DEVICE NOT REACHABLE, with A1 and B unchanged (read back on the LUN and in B's file);
# a copy inside A1, and one from A2 into A1, must still work and move the data.
# gotcmu only: the other MODEs are not gotcmu (SKIP). Env: MODE, GOTCMU.
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$HERE/lib.sh"
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
if [ "${MODE:-gotcmu}" != gotcmu ]; then
	skip "xcopy suite: it tests gotcmu's EXTENDED COPY; mode $MODE is not gotcmu"
	exit 0
fi
select_handler
OUT=/out/xcopy
mkdir -p "$OUT"
IQN1=iqn.2003-01.org.gotcmu:tenant1
IQN2=iqn.2003-01.org.gotcmu:tenant2
OTHER_HOST=iqn.1994-05.org.example:tenant2-host
SIZE=$((16 << 20))
BS=512

finish() {
	iscsiadm -m node --logoutall=all > /dev/null 2>&1
	[ -n "${HANDLER_PID:-}" ] && { stop_handler || fail "xcopy: gotcmu did not stop cleanly"; }
	log "xcopy: $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

# acl_export IQN INITIATOR BACKSTORE...: an iSCSI target on 127.0.0.1:3260 whose LUN i is the i-th
# backstore, reachable only by INITIATOR (a node ACL mapping every LUN; no demo mode).
acl_export() {
	local tpg=$CFG/iscsi/$1/tpgt_1 init=$2 lun=0 bs; shift 2
	for bs in "$@"; do
		mkdir -p "$tpg/lun/lun_$lun" "$tpg/acls/$init/lun_$lun" || return 1
		ln -s "$bs" "$tpg/lun/lun_$lun/$(basename "$bs")" || return 1
		ln -s "$tpg/lun/lun_$lun" "$tpg/acls/$init/lun_$lun/map_$lun" || return 1
		lun=$((lun + 1))
	done
	mkdir "$tpg/np/127.0.0.1:3260" || return 1
	put 0 "$tpg/attrib/authentication" && put 0 "$tpg/attrib/generate_node_acls" && put 1 "$tpg/enable"
}

serial_of() { sed 's/^.*: //' "$1/wwn/vpd_unit_serial"; }

# naa SERIAL: the 16-byte NAA IEEE Registered Extended designator LIO derives from a unit serial
# (company id 001405, then the serial's hex digits), as 32 hex digits.
naa() { local h; h=$(tr -dc '0-9a-fA-F' <<< "$1"); printf '6001405%s' "${h:0:25}" | tr 'A-F' 'a-f'; }

# disk_of SERIAL: the /dev/sdX whose unit serial number is SERIAL.
disk_of() {
	local d
	for d in /sys/block/sd*; do
		if sg_vpd -p sn "/dev/${d##*/}" 2>/dev/null | grep -qF "$1"; then echo "/dev/${d##*/}"; return 0; fi
	done
	return 1
}

hexbytes() { sed 's/../\\x&/g' <<< "$1"; }

# xcopy DEV NAA_SRC NAA_DST BLOCKS SRC_LBA DST_LBA: EXTENDED COPY(LID1) through DEV, one block to
# block segment from target descriptor 0 to 1; prints sg_raw's report, returns its status.
xcopy() {
	local dev=$1 p
	p=$(mktemp)
	{
		printf '\x00\x18\x00\x40\x00\x00\x00\x00\x00\x00\x00\x1c\x00\x00\x00\x00' # header: 2 targets, 1 segment
		for n in "$2" "$3"; do
			printf '\xe4\x00\x00\x00\x01\x03\x00\x10'
			printf '%b' "$(hexbytes "$n")"
			printf '\x00\x00\x00\x00\x00\x00\x02\x00' # block size 512
		done
		printf '\x02\x00\x00\x18\x00\x00\x00\x01\x00\x00'
		printf '%b' "$(hexbytes "$(printf '%04x%016x%016x' "$4" "$5" "$6")")"
	} > "$p"
	local pll
	read -ra pll <<< "$(printf '%02x %02x %02x %02x' 0 0 0 "$(stat -c %s "$p")")"
	sg_raw -s "$(stat -c %s "$p")" -i "$p" "$dev" 83 00 00 00 00 00 00 00 00 00 "${pll[@]}" 00 00 2>&1
	local rc=$?
	rm -f "$p"
	return $rc
}

refused() { grep -qi 'Illegal Request' <<< "$1" && grep -qi 'copy target device not reachable' <<< "$1"; }

sum_lun() { dd if="$1" bs=$BS skip="$2" count="$3" iflag=direct status=none | md5sum | cut -d' ' -f1; }
sum_file() { dd if="$1" bs=$BS skip="$2" count="$3" status=none | md5sum | cut -d' ' -f1; }

handler_present || { fail "xcopy: gotcmu not found (GOTCMU=$GOTCMU; make build)"; finish; }
check "xcopy: gotcmu starts" start_handler "$OUT/gotcmu.log" || finish
for f in a1 a2 b; do head -c "$SIZE" /dev/urandom > "/tmp/xc-$f.img"; done
A1=$(make_user_file 5 xc_a1 /tmp/xc-a1.img "$SIZE")
A2=$(make_user_file 5 xc_a2 /tmp/xc-a2.img "$SIZE")
B=$(make_user_file 5 xc_b /tmp/xc-b.img "$SIZE")
check "xcopy: three user:file backstores" test -n "$A1" -a -n "$A2" -a -n "$B" || finish
INIT=$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)
check "xcopy: this machine has an initiator name" test -n "$INIT" || finish
check "xcopy: tenant 1's target (A1, A2) mapped to $INIT" acl_export "$IQN1" "$INIT" "$A1" "$A2" || finish
check "xcopy: tenant 2's target (B) mapped to $OTHER_HOST only" acl_export "$IQN2" "$OTHER_HOST" "$B" || finish

modprobe iscsi_tcp
mkdir -p /run/lock/iscsi
pgrep -x iscsid > /dev/null || iscsid || { fail "xcopy: iscsid did not start"; finish; }
iscsiadm -m discovery -t sendtargets -p 127.0.0.1:3260 > "$OUT/discovery.txt" 2>&1
check "xcopy: login to tenant 1" iscsiadm -m node -T "$IQN1" -p 127.0.0.1:3260 --login > /dev/null || finish
iscsiadm -m node -o new -T "$IQN2" -p 127.0.0.1:3260 > /dev/null 2>&1
if iscsiadm -m node -T "$IQN2" -p 127.0.0.1:3260 --login > "$OUT/login-tenant2.txt" 2>&1; then
	fail "xcopy: tenant 2's target let this initiator in: the test needs it refused"
	finish
fi
pass "xcopy: tenant 2's target refuses this initiator's login"
SA1=$(serial_of "$A1"); SA2=$(serial_of "$A2"); SB=$(serial_of "$B")
wait_until 30 disk_of "$SA2" > /dev/null || { fail "xcopy: tenant 1's LUNs did not appear"; finish; }
D1=$(disk_of "$SA1"); D2=$(disk_of "$SA2")
if disk_of "$SB" > /dev/null; then fail "xcopy: B is visible to this initiator"; finish; fi
log "A1 $D1 (naa.$(naa "$SA1")), A2 $D2 (naa.$(naa "$SA2")), B not visible (naa.$(naa "$SB"))"
if ! sg_vpd -p di "$D1" | grep -qi "$(naa "$SA1")"; then
	fail "xcopy: A1's VPD 83h does not carry the NAA computed from its serial"
	sg_vpd -p di "$D1" > "$OUT/a1-vpd83.txt" 2>&1
	finish
fi

# Each refused copy has its own blocks, so that one that got through cannot hide the other.
a1=$(sum_lun "$D1" 0 256); b=$(sum_file /tmp/xc-b.img 1024 256)
r=$(xcopy "$D1" "$(naa "$SB")" "$(naa "$SA1")" 256 0 0); echo "$r" > "$OUT/pull.txt"
check "xcopy: pulling the other tenant's B into A1 is refused (ILLEGAL REQUEST, 0D/02)" refused "$r"
check "xcopy: A1 unchanged after the refused pull" test "$(sum_lun "$D1" 0 256)" = "$a1"
r=$(xcopy "$D1" "$(naa "$SA1")" "$(naa "$SB")" 256 2048 1024); echo "$r" > "$OUT/push.txt"
check "xcopy: pushing A1 onto the other tenant's B is refused (ILLEGAL REQUEST, 0D/02)" refused "$r"
check "xcopy: B unchanged after the refused push (its backing file)" test "$(sum_file /tmp/xc-b.img 1024 256)" = "$b"
check "xcopy: gotcmu logged the refusal" grep -q 'extended copy refused' "$OUT/gotcmu.log"

a1=$(sum_lun "$D1" 0 256)
r=$(xcopy "$D1" "$(naa "$SA1")" "$(naa "$SA1")" 256 0 4096) || fail "xcopy: inside A1: $r"
check "xcopy: a copy inside A1 moves the data" test "$(sum_lun "$D1" 4096 256)" = "$a1"
a2=$(sum_lun "$D2" 0 256)
r=$(xcopy "$D1" "$(naa "$SA2")" "$(naa "$SA1")" 256 0 8192) || fail "xcopy: A2 into A1: $r"
check "xcopy: a copy from A2 into A1 (one target, one ACL) moves the data" test "$(sum_lun "$D1" 8192 256)" = "$a2"
check "xcopy: gotcmu still running" kill -0 "$HANDLER_PID"
finish
