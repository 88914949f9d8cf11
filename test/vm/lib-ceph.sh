# shellcheck shell=bash
# Guest helper (source it after lib.sh): one micro Ceph cluster per boot, shared by every suite
# that needs one (guest-rbd.sh, guest-targetcli.sh). Starting it takes ~30 s under TCG, so the
# first suite starts it and the later ones find it running: test/micro-ceph.sh's daemons fork
# away from the suite that started them and live until the guest powers off.
#
# The cluster is made reachable the way it is on a gateway: /etc/ceph/ceph.conf and
# /etc/ceph/ceph.client.admin.keyring (the guest's /etc is a writable overlay), so a config string
# without conf= (what `targetcli ... cfgstring=rbd/img` writes) and the ceph/rbd commands find it
# with no CEPH_CONF in anyone's environment.

CEPH_DIR=/tmp/vm-ceph
# The memstore OSD keeps every object in RAM: room for the suites' images (a few hundred MiB
# written at most) inside the guest's 4 GiB.
CEPH_BYTES=$((1 << 30))

# ceph_up: the shared cluster is running (started now if no earlier suite did); returns 1 with
# the start log's tail printed when it cannot be started.
ceph_up() {
	if [ -f "$CEPH_DIR/up" ] && timeout 30 ceph health >/dev/null 2>&1; then
		log "micro Ceph: already running ($CEPH_DIR)"
		return 0
	fi
	local start
	start=$(date +%s)
	# Leftovers of a cluster that stopped answering would hold the monitor's ports.
	[ -d "$CEPH_DIR" ] && "$REPO/test/micro-ceph.sh" stop "$CEPH_DIR" >/dev/null 2>&1
	mkdir -p /out/ceph
	if ! "$REPO/test/micro-ceph.sh" start "$CEPH_DIR" "$CEPH_BYTES" > /out/ceph/start.log 2>&1; then
		log "micro Ceph did not start:"
		tail -20 /out/ceph/start.log
		return 1
	fi
	mkdir -p /etc/ceph
	ln -sf "$CEPH_DIR/ceph.conf" /etc/ceph/ceph.conf
	cp "$CEPH_DIR/keyring" /etc/ceph/ceph.client.admin.keyring
	touch "$CEPH_DIR/up"
	log "micro Ceph up in $(($(date +%s) - start)) s ($CEPH_DIR)"
}

# rbd_image NAME SIZE: a fresh image rbd/NAME of SIZE bytes (an old one of that name removed).
rbd_image() {
	rbd rm "rbd/$1" >/dev/null 2>&1
	rbd create "rbd/$1" --size "$(($2 >> 20))M"
}

# ceph_logs: copy the cluster's logs into /out/ceph (for a suite's finish).
ceph_logs() {
	mkdir -p /out/ceph
	cp "$CEPH_DIR"/*.log /out/ceph/ 2>/dev/null
	true
}
