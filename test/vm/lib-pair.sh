# shellcheck shell=bash
# Guest helper (source it after lib.sh) for the two-guest suites (test/ha, test/gateway): the pair's
# network and how the guests tell each other what happened. Needs ROLE (a or b), ME and PEER (the
# two addresses on the qemu socket network) and SHARE (a directory this guest publishes over HTTP).

# say NAME [CONTENT]: publish a flag file for the peer.
say() { printf '%s\n' "${2:-}" > "$SHARE/$1.tmp" && mv "$SHARE/$1.tmp" "$SHARE/$1"; }
# heard NAME: the peer has published NAME (its content on stdout).
heard() {
	python3 -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=5).read())' \
		"http://$PEER:8080/$1" 2>/dev/null
}
# await NAME SECONDS: wait for the peer's NAME; fails early when b has finished (given up).
await() {
	local deadline=$(($(date +%s) + $2))
	until heard "$1" > /dev/null; do
		[ "$(date +%s)" -lt "$deadline" ] || { log "no '$1' from $PEER after $2 s"; return 1; }
		[ "$ROLE" = a ] && heard b-done > /dev/null && { log "b finished while a waited for '$1'"; return 1; }
		sleep 1
	done
}

# net_up: this guest's address on the first network card, host name gw-ROLE, the share served on
# port 8080, and the peer answering pings.
net_up() {
	local dev="" d
	mkdir -p "$SHARE"
	for d in /sys/class/net/*; do
		[ "${d##*/}" = lo ] || { dev=${d##*/}; break; }
	done
	[ -n "$dev" ] || { log "no network card"; return 1; }
	ip addr add "$ME/24" dev "$dev" && ip link set "$dev" up || return 1
	hostname "gw-$ROLE"
	python3 -m http.server 8080 --bind "$ME" --directory "$SHARE" > /out/http.log 2>&1 &
	wait_until 60 busybox ping -c 1 -W 1 "$PEER" >/dev/null
}

# initiator_up [INITIATOR_NAME]: the initiator's side on this guest: the ALUA and multipath
# modules, udev (multipath finds paths through it), dm-multipath with Ceph's recommended device
# stanza (doc/rbd/iscsi-initiator-linux.rst) and iscsid, with INITIATOR_NAME if given.
initiator_up() {
	local m
	for m in scsi_dh_alua dm_multipath dm_queue_length iscsi_tcp; do modprobe "$m" || log "modprobe $m failed"; done
	/lib/systemd/systemd-udevd --daemon || log "udevd did not start"
	cat > /etc/multipath.conf <<'CONF'
defaults {
	user_friendly_names yes
	find_multipaths no
	polling_interval 5
}
devices {
	device {
		vendor "LIO-ORG"
		product ".*"
		hardware_handler "1 alua"
		path_grouping_policy "failover"
		path_selector "queue-length 0"
		failback 60
		path_checker tur
		prio alua
		prio_args exclusive_pref_bit
		fast_io_fail_tmo 25
		no_path_retry queue
	}
}
CONF
	mkdir -p /etc/multipath /etc/iscsi /run/lock/iscsi
	multipathd || log "multipathd did not start"
	[ -n "${1:-}" ] && echo "InitiatorName=$1" > /etc/iscsi/initiatorname.iscsi
	iscsid || log "iscsid did not start"
	sleep 1
}
