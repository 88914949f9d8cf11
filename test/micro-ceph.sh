#!/bin/bash
# A real single-node Ceph cluster on loopback, for tests: 1 monitor, 1 manager
# (so the service map works: `ceph service dump`), 1 OSD (memstore, in RAM), pool "rbd".
#
# Usage:
#   micro-ceph.sh start DIR [MEMSTORE_BYTES]  -> DIR/ceph.conf, DIR/keyring; prints "ready"
#   micro-ceph.sh stop-osd DIR                -> stops the OSD (SIGTERM: memstore saves its data)
#   micro-ceph.sh start-osd DIR               -> starts it again and waits until it is up
#   micro-ceph.sh stop DIR                    -> stops every daemon of DIR
# Use it with: CEPH_CONF=DIR/ceph.conf rbd create rbd/img --size 1G
# The monitor listens on $MON_IP (default 127.0.0.1; another address for clients on other machines,
# as test/ha does) port $MON_PORT_V2 (msgr2, default 3300) and $MON_PORT_V1 (default
# 6789); pick other ports to run several clusters at once.
# Needs Debian's ceph-mon, ceph-osd, ceph-mgr, ceph-common; installs them if missing.
# Adapted from the project's shared vm-recipe micro-ceph.sh, plus the manager and OSD restart.
set -euo pipefail

usage() { echo "usage: $0 start|stop-osd|start-osd|stop DIR [MEMSTORE_BYTES]" >&2; exit 2; }
CMD=${1:-}; [ $# -ge 2 ] || usage
D=$(realpath -m "$2")
export CEPH_CONF="$D/ceph.conf"

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND once a second.
wait_for() {
	local n=$1 what=$2; shift 2
	for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
	echo "micro-ceph: $what not ready after ${n}s" >&2; return 1
}

osd_up() { ceph osd stat -f json 2>/dev/null | grep -q '"num_up_osds":1'; }
osd_down() { ceph osd stat -f json 2>/dev/null | grep -q '"num_up_osds":0'; }
mgr_up() { ceph mgr stat -f json 2>/dev/null | grep -q '"available": *true'; }

stop_pid() { # stop_pid FILE: SIGTERM the daemon, wait for it to exit
	local f=$1 pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	kill "$pid" 2>/dev/null || { rm -f "$f"; return 0; }
	for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$f"
}

start_osd() {
	ceph-osd -i 0 --osd-data "$D/osd.0" --keyring "$D/osd.0/keyring" 2>>"$D/osd.0.stderr"
	wait_for 120 "osd.0" osd_up
}

case $CMD in
stop-osd)
	stop_pid "$D/run/osd.0.pid"
	# The OSD reports itself down as it stops; wait until the map says so.
	wait_for 60 "osd.0 down" osd_down
	exit 0 ;;
start-osd)
	start_osd
	exit 0 ;;
stop)
	for f in "$D"/run/osd.*.pid "$D"/run/mgr.*.pid "$D"/run/mon.*.pid; do stop_pid "$f"; done
	exit 0 ;;
start) ;;
*) usage ;;
esac

BYTES=${3:-3221225472}
V2=${MON_PORT_V2:-3300}; V1=${MON_PORT_V1:-6789}; IP=${MON_IP:-127.0.0.1}
if ! command -v ceph-mon >/dev/null || ! command -v ceph-mgr >/dev/null || ! command -v ceph-osd >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ceph-mon ceph-osd ceph-mgr ceph-common >/dev/null
fi
rm -rf "$D"; mkdir -p "$D/mon" "$D/run" "$D/mgr.x" "$D/osd.0"
FSID=$(cat /proc/sys/kernel/random/uuid)
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = [v2:$IP:$V2,v1:$IP:$V1]
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $D/keyring
run dir = $D/run
pid file = $D/run/\$name.pid
log file = $D/\$name.log
admin socket = $D/run/\$name.\$pid.asok
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd crush update on start = false
osd objectstore = memstore
memstore device bytes = $BYTES
osd data = $D/\$name
mon data = $D/mon
mgr data = $D/\$name
ms bind ipv4 = true
${MON_IP:+public addr = $MON_IP}
ms bind ipv6 = false
rados osd op timeout = 30
client mount timeout = 30
# Short heartbeats, so that tests may use a short osd_op_timeout: a client's op
# timeout must exceed grace + interval (tcmu-runner's rule).
osd heartbeat grace = 4
osd heartbeat interval = 2
mgr initial modules = status
# memstore keeps its data across an OSD restart only if the OSD unmounts it:
# pacific's fast shutdown skips that.
osd fast shutdown = false
# No PG splits while tests run: a split stalls I/O for a while on one OSD.
osd pool default pg autoscale mode = off
CONF
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$D/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v2:$IP:$V2,v1:$IP:$V1]" "$D/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" 2>/dev/null
ceph-mon -i a
wait_for 60 "monitor" ceph mon stat

ceph auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$D/mgr.x/keyring" >/dev/null
ceph-mgr -i x --keyring "$D/mgr.x/keyring" 2>>"$D/mgr.x.stderr"

OSD=$(ceph osd create)
[ "$OSD" = 0 ] || { echo "micro-ceph: expected osd.0, got osd.$OSD" >&2; exit 1; }
ceph-osd -i 0 --no-mon-config --mkfs --mkkey --osd-data "$D/osd.0" --keyring "$D/osd.0/keyring" >/dev/null 2>&1
ceph auth add osd.0 osd 'allow *' mon 'allow profile osd' -i "$D/osd.0/keyring" >/dev/null 2>&1
ceph osd crush add-bucket localhost host >/dev/null 2>&1
ceph osd crush move localhost root=default >/dev/null 2>&1
ceph osd crush add osd.0 1.0 host=localhost >/dev/null 2>&1
start_osd
ceph osd pool create rbd 8 8 >/dev/null 2>&1
ceph osd pool application enable rbd rbd >/dev/null 2>&1
wait_for 120 "manager" mgr_up
echo ready
