# Sourced by guest-gateway.sh when SCALE_DISKS is set (`make scale-gateway`, issue 16 point 1 and
# 3): SCALE_DISKS disks of 4 MiB through ceph-iscsi on the two gateways, instead of guest-gateway.sh's
# own scenario. Guest a (Ceph, gw-a): gwcli makes the target and both gateways and turns the
# target's host ACLs off; then each disk is made and exported through the rbd-target-api calls
# gwcli makes for `/disks create` (PUT /api/disk: the image and its entry in the gateway
# configuration; gwcli's count= makes at most 10) and `disks add` (PUT /api/targetlun: the
# backstore, enabled, and the LUN, on both gateways): gwcli itself starts a Python process of
# some 15 s in the emulated guest for each command. Guest b (gw-b, the initiator): logs in to both portals, waits for N multipath
# devices, reads 4 KiB from each (test/cmd/lunready). Then on a: `gwcli ls` (timed, every disk
# Online), the service map (ceph service status: an entry for every disk on both gateways, and
# what one `ceph service dump` costs), and on each gateway its handler's OS threads, fds and
# anonymous memory (smaps_rollup), and for gotcmu one `gotcmu status` (timed). Figures in
# /out/scale.txt ("key value" lines), checks in the summary.
# shellcheck shell=bash

N=$SCALE_DISKS
LUNREADY=$REPO/build/bin/lunready

ms_since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.0f", (b - a) / 1e6 }'; }
figure() { echo "$1 $2" >> /out/scale.txt; log "scale: $1 $2"; }

# handler_figures GW: this gateway's handler, idle with N LUNs.
handler_figures() {
	local pid t0
	pid=$(mainpid)
	figure "$1_threads" "$(ls /proc/"$pid"/task | wc -l)"
	figure "$1_fds" "$(ls /proc/"$pid"/fd | wc -l)"
	figure "$1_anon_kib" "$(awk '$1 == "Anonymous:" { print $2 }' /proc/"$pid"/smaps_rollup)"
	if [ "$HANDLER" = gotcmu ]; then
		t0=$(date +%s%N)
		gotcmu status > /out/gotcmu-status.txt 2>&1
		figure "$1_gotcmu_status_ms" "$(ms_since "$t0")"
		figure "$1_gotcmu_status_running" "$(grep -c running /out/gotcmu-status.txt)"
	fi
}

: > /out/scale.txt
if [ "$ROLE" = a ]; then
	a_gateway
	check "gwcli: the target's host ACLs off (any initiator sees its LUNs)" gw "/iscsi-targets/$IQN/hosts" auth disable_acl || finish
	t0=$(date +%s%N)
	made=0
	for ((i = 1; i <= N; i++)); do
		curl -s --fail-with-body -u admin:admin -X PUT -d mode=create -d size=4M -d pool=rbd -d count=1 \
			"http://127.0.0.1:5000/api/disk/rbd/s$i" >> /out/disk-create.txt 2>&1 && made=$((made + 1))
	done
	figure disks_create_ms "$(ms_since "$t0")"
	check "rbd-target-api: $made of $N disks rbd/s1..s$N created" [ "$made" -eq "$N" ] || finish
	t0=$(date +%s%N)
	added=0
	for ((i = 1; i <= N; i++)); do
		curl -s --fail-with-body -u admin:admin -X PUT -d "disk=rbd/s$i" "http://127.0.0.1:5000/api/targetlun/$IQN" >> /out/targetlun.txt 2>&1 &&
			added=$((added + 1))
	done
	figure luns_add_ms "$(ms_since "$t0")"
	check "rbd-target-api: $added of $N disks exported as LUNs of $IQN on both gateways" [ "$added" -eq "$N" ]
	say configured
	await read-all 3600 || fail "gw-a: the initiator's read of every LUN"
	t0=$(date +%s%N)
	gwcli ls > /out/gwcli-ls.txt 2>&1
	figure gwcli_ls_ms "$(ms_since "$t0")"
	figure gwcli_ls_lines "$(wc -l < /out/gwcli-ls.txt)"
	online() {
		gwcli ls /disks > /out/gwcli-ls-disks.txt 2>&1
		[ "$(grep -cE 'rbd/s[0-9]+ \(Online' /out/gwcli-ls-disks.txt)" -eq "$N" ]
	}
	check "gwcli ls: all $N disks Online" wait_until 300 online
	t0=$(date +%s%N)
	timeout 120 ceph service dump -f json > /out/service-dump.json 2> /out/service-dump.err
	figure service_dump_ms "$(ms_since "$t0")"
	entries=$(jq '[.services["tcmu-runner"].daemons // {} | keys[] | select(test("^gw-[ab]:rbd/s[0-9]+$"))] | length' /out/service-dump.json)
	figure service_map_entries "$entries"
	check "ceph service dump: an entry for each of the $N disks on both gateways ($entries)" [ "${entries:-0}" -eq $((2 * N)) ]
	handler_figures gw_a
	say a-measured
	a_end 900
fi

b_gateway
await configured 3600 || { fail "gw-b: gw-a's $N disks"; finish; }
initiator_up "$CLIENT"
check "initiator: discovery at $IP_A" sh -c "iscsiadm -m discovery -t st -p $IP_A:3260 > /out/discovery.txt 2>&1"
t0=$(date +%s%N)
for p in $IP_A $IP_B; do
	check "initiator: login to $p" sh -c "iscsiadm -m node -T $IQN -p $p:3260 --login > /out/login-$p.txt 2>&1"
done
maps() { [ "$(dmsetup ls --target multipath 2>/dev/null | grep -c mpath)" -eq "$N" ]; }
check "initiator: $N multipath devices" wait_until 900 maps
figure initiator_maps_ms "$(ms_since "$t0")"
paths=$(ls -d /sys/class/scsi_disk/* 2>/dev/null | wc -l)
check "initiator: two paths to each disk ($paths)" [ "$paths" -eq $((2 * N)) ]
mapfile -t devs < <(dmsetup ls --target multipath | awk '{ print "/dev/mapper/" $1 }')
read -r secs answered _ < <("$LUNREADY" -timeout 600s "${devs[@]}" 2> /out/lunready.err)
figure initiator_read_all_s "$secs"
check "initiator: 4 KiB read from each of the $N disks (${answered:-0} answered in ${secs:-?} s)" [ "${answered:-0}" -eq "$N" ]
say read-all
await a-measured 1800 || fail "gw-b: gw-a's measurements"
handler_figures gw_b
finish
