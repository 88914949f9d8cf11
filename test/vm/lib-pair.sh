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
