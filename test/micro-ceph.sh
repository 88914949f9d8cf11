#!/bin/bash
# A real single-node Ceph cluster on loopback, for tests: 1 monitor, 1 manager
# (so the service map works: `ceph service dump`), $OSDS OSDs (default 1; memstore, in RAM),
# pool "rbd" of size $OSDS and min_size size - size/2 (Ceph's own default: 1 for 1 OSD, 2 for 3).
#
# Usage:
#   micro-ceph.sh start DIR [MEMSTORE_BYTES]  -> DIR/ceph.conf, DIR/keyring; prints "ready"
#                                                (MEMSTORE_BYTES is each OSD's)
#   micro-ceph.sh stop-osd DIR [N]            -> stops osd.N (default 0; SIGTERM: memstore saves
#                                                its data) and waits until the map has it down
#   micro-ceph.sh start-osd DIR [N]           -> starts osd.N again and waits until it is up
#   micro-ceph.sh start-mon DIR               -> starts the monitor again (after a kill) and waits
#                                                until it answers
#   micro-ceph.sh stop DIR                    -> stops every daemon of DIR
# Daemons write their pids to DIR/run/<name>.pid (osd.N, mon.a, mgr.x): a test may signal them.
# A memstore OSD keeps its objects only in memory and saves them when it stops cleanly: one
# SIGKILLed comes back with what it had at its last clean stop (an empty store if none) and is
# backfilled by its peers.
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

# osd_up N / osd_down N: the OSD map has osd.N up / down.
osd_up() { ceph osd dump 2>/dev/null | grep -q "^osd\.$1 up"; }
osd_down() { ceph osd dump 2>/dev/null | grep -q "^osd\.$1 down"; }
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

# start_osd N: start osd.N and wait until the map has it up.
start_osd() {
	ceph-osd -i "$1" --osd-data "$D/osd.$1" --keyring "$D/osd.$1/keyring" 2>>"$D/osd.$1.stderr"
	wait_for 120 "osd.$1" osd_up "$1"
}

N=${3:-0}
case $CMD in
stop-osd)
	stop_pid "$D/run/osd.$N.pid"
	# The OSD reports itself down as it stops; wait until the map says so.
	wait_for 60 "osd.$N down" osd_down "$N"
	exit 0 ;;
start-osd)
	start_osd "$N"
	exit 0 ;;
start-mon)
	ceph-mon -i a
	wait_for 60 "monitor" ceph mon stat
	exit 0 ;;
stop)
	for f in "$D"/run/osd.*.pid "$D"/run/mgr.*.pid "$D"/run/mon.*.pid; do stop_pid "$f"; done
	exit 0 ;;
start) ;;
*) usage ;;
esac

BYTES=${3:-3221225472}
OSDS=${OSDS:-1}
case $OSDS in [1-9]) ;; *) echo "micro-ceph: OSDS must be 1 to 9, not $OSDS" >&2; exit 2 ;; esac
V2=${MON_PORT_V2:-3300}; V1=${MON_PORT_V1:-6789}; IP=${MON_IP:-127.0.0.1}
if ! command -v ceph-mon >/dev/null || ! command -v ceph-mgr >/dev/null || ! command -v ceph-osd >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ceph-mon ceph-osd ceph-mgr ceph-common >/dev/null
fi
rm -rf "$D"; mkdir -p "$D/mon" "$D/run" "$D/mgr.x"
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
osd pool default size = $OSDS
osd pool default min size = $((OSDS - OSDS / 2))
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

ceph osd crush add-bucket localhost host >/dev/null 2>&1
ceph osd crush move localhost root=default >/dev/null 2>&1
for i in $(seq 0 $((OSDS - 1))); do
	OSD=$(ceph osd create)
	[ "$OSD" = "$i" ] || { echo "micro-ceph: expected osd.$i, got osd.$OSD" >&2; exit 1; }
	mkdir -p "$D/osd.$i"
	ceph-osd -i "$i" --no-mon-config --mkfs --mkkey --osd-data "$D/osd.$i" --keyring "$D/osd.$i/keyring" >/dev/null 2>&1
	ceph auth add "osd.$i" osd 'allow *' mon 'allow profile osd' -i "$D/osd.$i/keyring" >/dev/null 2>&1
	ceph osd crush add "osd.$i" 1.0 host=localhost >/dev/null 2>&1
	start_osd "$i"
done
ceph osd pool create rbd 8 8 >/dev/null 2>&1
ceph osd pool application enable rbd rbd >/dev/null 2>&1
wait_for 120 "manager" mgr_up
echo ready
