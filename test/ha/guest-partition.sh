#!/bin/bash
# Runs INSIDE one of the two guests test-partition.sh boots: issue 15 point 1, gateway A cut off
# from the cluster while the initiator's dm-multipath moves to gateway B, then reconnected. The
# guests are joined by a qemu socket network (10.99.0.1 and 10.99.0.2).
#   a  runs gateway A only: gotcmu serving rbd/part as a user:rbd backstore through TPG 1 on
#      10.99.0.1:3260. The cut is made here: `ip rule` blackholes every packet to and from Ceph's
#      address 10.99.0.3 (the local table's rule moved behind them, so that arriving packets are
#      dropped too), while the iSCSI traffic between 10.99.0.1 and 10.99.0.2 flows on.
#   b  runs Ceph (micro-ceph on 10.99.0.3, a second address of b's card that only Ceph uses),
#      gateway B (TPG 2 on 10.99.0.2:3260) and the initiator: open-iscsi to both portals and
#      dm-multipath with Ceph's LIO-ORG stanza (lib-pair.sh); then test/cmd/partition runs the
#      scenario and decides PASS/FAIL: an ackwriter load, the cut, the failover to B, the
#      restore, A's hold-down, ackwriter verify.
# Both gateways: osd_op_timeout=10 in the backstore's config, busy_bound_connection = 20 in
# tcmu.conf (default 120 s: the cut is shorter than that), cmd_time_out 20 s as in test-ha.
# The guests coordinate over HTTP (each serves its /tmp/ha-share on port 8080): b says "cut" and
# "restore", a answers "a-cut" and "a-restored" with the time it acted (its own clock); a's
# gotcmu log and a sample of its TPG's enable attribute every second are in a's share.
# Usage: guest-partition.sh a|b      Env: GOTCMU, ACKWRITER, PARTITION
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
# shellcheck source=test/vm/lib.sh
. "$REPO/test/vm/lib.sh"
# shellcheck source=test/vm/lib-pair.sh
. "$REPO/test/vm/lib-pair.sh"
ROLE=${1:?usage: guest-partition.sh a|b}
GOTCMU=${GOTCMU:-$REPO/bin/gotcmu}
ACKWRITER=${ACKWRITER:-$REPO/build/bin/ackwriter}
PARTITION=${PARTITION:-$REPO/build/bin/partition}
IP_A=10.99.0.1
IP_B=10.99.0.2
IP_CEPH=10.99.0.3
IQN=iqn.2003-01.org.gotcmu:part
IMG=part
SIZE=$((256 << 20))
# osd_op_timeout=10 (above the test cluster's heartbeat grace + interval, 4 + 2 s) on both gateways.
IMG_OPTS=";osd_op_timeout=10"
SERIAL=gotcmu-part-0001
CMD_TIME_OUT=20
BUSY_BOUND_CONNECTION=20
SHARE=/tmp/ha-share
CEPH_DIR=/tmp/ha-ceph
GLOG=$SHARE/gotcmu.log
case $ROLE in a) ME=$IP_A PEER=$IP_B ;; b) ME=$IP_B PEER=$IP_A ;; *) echo "role must be a or b" >&2; exit 2 ;; esac
: > "$SUMMARY"
mkdir -p "$SHARE"

finish() {
	[ -n "${HANDLER_PID:-}" ] && kill -TERM "$HANDLER_PID" 2>/dev/null
	[ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null
	cp "$SHARE"/* /out/ 2>/dev/null
	# b serves its share until a has heard b-done (a would wait for it until its own timeout).
	[ "$ROLE" = b ] && say b-done && await a-done 120
	[ "$ROLE" = a ] && say a-done && sleep 3
	dmesg > /out/dmesg.txt 2>&1
	log "partition ($ROLE): $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}

# gotcmu_start: the daemon with the test's tcmu.conf, logging to $GLOG; metrics on $ME:9560 for
# the scenario on b to read.
gotcmu_start() {
	mkdir -p /etc/tcmu
	printf 'busy_bound_connection = %s\nmetrics_addr = "%s:9560"\n' "$BUSY_BOUND_CONNECTION" "$ME" > /etc/tcmu/tcmu.conf
	"$GOTCMU" --no-dbus -l "" -config /etc/tcmu/tcmu.conf -lock-file /run/gotcmu.lock >> "$GLOG" 2>&1 &
	HANDLER_PID=$!
	sleep 2
	kill -0 "$HANDLER_PID"
}

# The cut, on a: packets to Ceph's address are blackholed on the way out; the local table's rule
# (preference 0) is moved behind the rule for packets from it, which would otherwise never be
# consulted for packets to this guest's own address.
cut() {
	ip rule add pref 100 to "$IP_CEPH" blackhole && ip rule add pref 101 from "$IP_CEPH" blackhole &&
		ip rule add pref 200 lookup local && ip rule del pref 0
}
restore() {
	ip rule add pref 0 lookup local && ip rule del pref 200 && ip rule del pref 100 && ip rule del pref 101
}

if [ "$ROLE" = a ]; then
	check "A: network up" net_up || finish
	await ceph-ready 900 || { fail "A: Ceph ready on b"; finish; }
	mkdir -p "$CEPH_DIR" /etc/ceph
	# ceph.conf names $CEPH_DIR/keyring.
	heard ceph.conf > "$CEPH_DIR/ceph.conf" && heard keyring > "$CEPH_DIR/keyring" ||
		{ fail "A: Ceph config from b"; finish; }
	ln -sf "$CEPH_DIR/ceph.conf" /etc/ceph/ceph.conf
	cp "$CEPH_DIR/keyring" /etc/ceph/ceph.client.admin.keyring
	check "A: Ceph on $IP_CEPH reachable" timeout 60 ceph health || finish
	check "A: gotcmu starts" gotcmu_start || finish
	check "A: gateway configured" pair_gateway || finish
	# "unix-seconds enable" of A's TPG once a second: gotcmu takes it offline (0) while it has no
	# connection to the cluster.
	( while :; do echo "$(date +%s.%N) $(cat "$CFG/iscsi/$IQN/tpgt_1/enable")"; sleep 1; done ) >> "$SHARE/tpg.txt" &
	SAMPLER=$!
	say a-ready
	await cut 1800 || { fail "A: b never asked for the cut"; finish; }
	check "A: cut from the cluster" cut || finish
	say a-cut "$(date +%s.%N)"
	ip rule > /out/rules-cut.txt
	await restore 1800 || { fail "A: b never asked to restore the network"; restore; finish; }
	check "A: network to the cluster restored" restore
	say a-restored "$(date +%s.%N)"
	await b-done 1800
	finish
fi

# Role b: Ceph, gateway B and the initiator.
check "B: network up" net_up || finish
ip addr add "$IP_CEPH/32" dev "$(ip -o -4 addr show | awk -v a="$ME/" 'index($4, a) == 1 {print $2; exit}')" ||
	{ fail "B: Ceph's address $IP_CEPH"; finish; }
mkdir -p /out/ceph /etc/ceph
if ! MON_IP=$IP_CEPH "$REPO/test/micro-ceph.sh" start "$CEPH_DIR" $((1 << 30)) > /out/ceph/start.log 2>&1; then
	fail "B: micro Ceph on $IP_CEPH"; tail -20 /out/ceph/start.log; finish
fi
pass "B: micro Ceph on $IP_CEPH"
ln -sf "$CEPH_DIR/ceph.conf" /etc/ceph/ceph.conf
cp "$CEPH_DIR/keyring" /etc/ceph/ceph.client.admin.keyring
cp "$CEPH_DIR/ceph.conf" "$SHARE/ceph.conf"; cp "$CEPH_DIR/keyring" "$SHARE/keyring"
check "B: image rbd/$IMG" rbd create "rbd/$IMG" --size "$((SIZE >> 20))M" || finish
say ceph-ready
check "B: gotcmu starts" gotcmu_start || finish
check "B: gateway configured" pair_gateway || finish
await a-ready 900 || { fail "B: gateway A ready"; finish; }
initiator_up
check "B: logged in to both gateways, one multipath device" pair_login || finish
log "multipath device $MP ($DM), path A $PATH_A"
"$PARTITION" -map "$MP" -dm "$DM" -path-a "$PATH_A" -ackwriter "$ACKWRITER" -peer "http://$IP_A:8080" -share "$SHARE" \
	-log "$GLOG" -metrics-a "http://$IP_A:9560/metrics" -metrics-b "http://$IP_B:9560/metrics" \
	-addr-a "$IP_A" -addr-b "$IP_CEPH" -image "rbd/$IMG" -out /out -summary "$SUMMARY" -figures /out/figures.txt ||
	FAILED=$((FAILED + 1))
finish
