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

# pair_gateway: this gateway's half of the pair's iSCSI export, in ceph-iscsi's layout: the user:rbd
# backstore rbd/$IMG (options $IMG_OPTS if set, e.g. ";osd_op_timeout=10"; $SIZE bytes, serial
# $SERIAL, cmd_time_out $CMD_TIME_OUT), ALUA groups "ao"
# (TPG 1, gateway a's port: active/optimized) and "ano2" (TPG 2, b's: active/non-optimized), both
# implicit, and target $IQN with both TPGs, only this guest's own enabled with its portal $ME:3260.
# The LUN's relative port ids (1 for TPG 1, 2 for TPG 2) come out the same on both gateways because
# the TPGs are made in the same order.
pair_gateway() {
	local bs=$CFG/core/user_1/$IMG tpg g lun_gp name id state t
	mkdir -p "$bs" || return 1
	put "dev_config=rbd/rbd/$IMG${IMG_OPTS:-}" "$bs/control" && put "dev_size=$SIZE" "$bs/control" || return 1
	put "$CMD_TIME_OUT" "$bs/attrib/cmd_time_out" || log "cmd_time_out before enable refused"
	bounded 60 put 1 "$bs/enable" || { log "enable of $bs failed"; return 1; }
	put "$CMD_TIME_OUT" "$bs/attrib/cmd_time_out" 2>/dev/null
	put 5 "$bs/attrib/qfull_time_out" || return 1
	put "$SERIAL" "$bs/wwn/vpd_unit_serial" || return 1
	for g in ao:1:0 ano2:2:1; do
		IFS=: read -r name id state <<< "$g"
		mkdir -p "$bs/alua/$name" && put "$id" "$bs/alua/$name/tg_pt_gp_id" &&
			put 1 "$bs/alua/$name/alua_access_type" && put "$state" "$bs/alua/$name/alua_access_state" &&
			put 1 "$bs/alua/$name/alua_support_transitioning" && put 0 "$bs/alua/$name/alua_support_offline" &&
			put 0 "$bs/alua/$name/alua_support_unavailable" && put 0 "$bs/alua/$name/nonop_delay_msecs" &&
			put 45 "$bs/alua/$name/implicit_trans_secs" || { log "ALUA group $name"; return 1; }
	done
	for t in 1 2; do
		tpg=$CFG/iscsi/$IQN/tpgt_$t
		mkdir -p "$tpg/lun/lun_0" && ln -s "$bs" "$tpg/lun/lun_0/$IMG" || return 1
		lun_gp=ao; [ "$t" = 2 ] && lun_gp=ano2
		put "$lun_gp" "$tpg/lun/lun_0/alua_tg_pt_gp" || { log "LUN of TPG $t into $lun_gp"; return 1; }
		put 0 "$tpg/attrib/authentication" && put 1 "$tpg/attrib/generate_node_acls" &&
			put 1 "$tpg/attrib/cache_dynamic_acls" && put 0 "$tpg/attrib/demo_mode_write_protect" || return 1
		log "TPG $t: relative port $(cat "$tpg/lun/lun_0/statistics/scsi_port/indx")"
	done
	tpg=$CFG/iscsi/$IQN/tpgt_1
	[ "$ROLE" = b ] && tpg=$CFG/iscsi/$IQN/tpgt_2
	mkdir "$tpg/np/$ME:3260" && put 1 "$tpg/enable"
}

# dm_of MAP: the map's block device name (dm-N), from device-mapper itself: /dev/mapper/MAP is a
# symlink to /dev/dm-N only once udev has processed the map, and a node of its own before (make
# test-ha of 15:05 on 2026-12-05 met that: readlink gave the map's name, not dm-N).
dm_of() { dmsetup info -c --noheadings -o blkdevname "$1" 2>/dev/null | tr -d ' '; }

# pair_login: after initiator_up, log in to $IQN at both gateways' portals ($IP_A, $IP_B; the
# session's replacement_timeout 15 s) and wait for the multipath device over both paths. Sets MP
# (its map name), DM (dm-N) and PATH_A (sdX, the path through gateway a); returns 1 if any is
# missing, with what was seen in /out.
pair_login() {
	local p
	for p in $IP_A $IP_B; do
		iscsiadm -m discovery -t st -p "$p:3260" > "/out/discovery-$p.txt" 2>&1 || log "discovery at $p failed"
	done
	for p in $IP_A $IP_B; do
		iscsiadm -m node -T "$IQN" -p "$p:3260" -o update -n node.session.timeo.replacement_timeout -v 15
		iscsiadm -m node -T "$IQN" -p "$p:3260" --login > "/out/login-$p.txt" 2>&1 || { log "login to $p failed"; return 1; }
	done
	udevadm settle -t 60
	wait_until 120 sh -c 'dmsetup ls --target multipath 2>/dev/null | grep -q mpath' ||
		{ log "no multipath device"; multipath -ll > /out/multipath.txt 2>&1; return 1; }
	MP=$(dmsetup ls --target multipath | awk 'NR == 1 {print $1}')
	DM=$(dm_of "$MP")
	[ -n "$DM" ] || { log "no block device of $MP"; return 1; }
	wait_until 60 sh -c "[ \$(ls /sys/block/$DM/slaves | wc -l) -eq 2 ]" || { log "not two paths under $MP"; return 1; }
	PATH_A=$(iscsiadm -m session -P 3 2>/dev/null | awk -v p="$IP_A:3260" '
		/Current Portal:/ { cur = index($0, p) > 0 } cur && /Attached scsi disk/ { print $4; exit }')
	[ -n "$PATH_A" ] || { iscsiadm -m session -P 3 > /out/sessions.txt 2>&1; log "no disk of the session to $IP_A"; return 1; }
}
