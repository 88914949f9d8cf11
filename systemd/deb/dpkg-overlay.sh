#!/bin/bash
# Run by test-deb.sh as `unshare --mount --propagation private dpkg-overlay.sh DEB MODE`: install and
# purge the package with dpkg in a chroot over an overlay of this machine's root, whose writes go
# to a tmpfs that goes away with the mount namespace (this machine's root is never written).
# /run is empty in the chroot, so the maintainer scripts find no running systemd and start
# nothing, as in a chroot or an image build.
#
# MODE fresh: tcmu-runner, if installed, is purged first with ceph-iscsi (a gateway without it);
# dpkg -i installs gotcmu and enables gotcmu.service with its alias tcmu-runner.service
# (deb-systemd-helper's symlinks); dpkg --purge leaves nothing of it in /etc, /lib/systemd, /usr,
# /var/lib/systemd or /var/log.
# MODE switch (tcmu-runner installed here): dpkg -i replaces tcmu-runner without a question, takes
# over /etc/tcmu/tcmu.conf, enables the alias; purging tcmu-runner afterwards (what an operator
# does next) keeps the alias and tcmu.conf.
set -euo pipefail
deb=$1 mode=$2
t=$(mktemp -d)
mount -t tmpfs -o size=2g,mode=0700 gotcmu-deb-test "$t"
mkdir "$t/lower" "$t/upper" "$t/work" "$t/root"
mount --bind -o ro / "$t/lower"
mount -t overlay overlay -o "lowerdir=$t/lower,upperdir=$t/upper,workdir=$t/work" "$t/root"
r=$t/root
mount --bind /dev "$r/dev"
mount -t proc proc "$r/proc"
mount -t tmpfs tmpfs "$r/run"
mount -t tmpfs tmpfs "$r/tmp"
cp "$deb" "$r/tmp/gotcmu.deb"
inroot() { chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@" </dev/null; }
failed=0
fail() { echo "dpkg-overlay: FAIL: $*"; failed=1; }

enabled() {
	for l in etc/systemd/system/multi-user.target.wants/gotcmu.service etc/systemd/system/tcmu-runner.service; do
		[ "$(readlink "$r/$l")" = /lib/systemd/system/gotcmu.service ] || fail "$1: /$l is not a link to /lib/systemd/system/gotcmu.service"
	done
}

if [ "$mode" = switch ]; then
	inroot dpkg-query -W -f='${db:Status-Abbrev}' tcmu-runner | grep -q '^ii' || { echo "dpkg-overlay: tcmu-runner is not installed here" >&2; exit 1; }
	inroot dpkg -i /tmp/gotcmu.deb 2>&1 | sed 's/^/    /'
	[ "$(inroot dpkg-query -W -f='${db:Status-Abbrev}' gotcmu)" = "ii " ] || fail "gotcmu is not installed"
	inroot dpkg-query -W -f='${db:Status-Abbrev}' tcmu-runner | grep -q '^.c' || fail "tcmu-runner was not removed"
	inroot dpkg-query -W -f='${Conffiles}\n' gotcmu | grep -q '^ /etc/tcmu/tcmu.conf [0-9a-f]*$' || fail "gotcmu does not own /etc/tcmu/tcmu.conf"
	enabled "after dpkg -i"
	inroot dpkg --purge tcmu-runner 2>&1 | sed 's/^/    /'
	enabled "after dpkg --purge tcmu-runner"
	[ -f "$r/etc/tcmu/tcmu.conf" ] || fail "dpkg --purge tcmu-runner removed /etc/tcmu/tcmu.conf"
	[ "$failed" = 0 ] && echo "dpkg-overlay: tcmu-runner replaced, tcmu.conf taken over, alias kept after tcmu-runner's purge"
	exit "$failed"
fi

if inroot dpkg-query -W -f='${db:Status-Abbrev}' tcmu-runner 2>/dev/null | grep -q '^ii'; then
	# ceph-iscsi depends on tcmu-runner: a gateway without tcmu-runner has neither.
	if ! out=$(inroot dpkg --purge ceph-iscsi tcmu-runner 2>&1); then
		sed 's/^/    /' <<<"$out"
		echo "dpkg-overlay: FAIL: could not purge tcmu-runner first (above)"
		exit 1
	fi
	echo "dpkg-overlay: tcmu-runner (and ceph-iscsi, which depends on it) purged first"
fi
# What gotcmu may touch; after the purge it must be as before.
snapshot() {
	(cd "$r" && find etc lib/systemd usr/bin usr/share/dbus-1 usr/share/doc usr/share/gotcmu usr/share/man/man8 \
		var/lib/systemd var/log -path var/log/journal -prune -o -print 2>/dev/null || true) |
		grep -v '^var/log/\(dpkg\|apt\|alternatives\)' | sort
}
snapshot >"$t/before"

inroot dpkg -i /tmp/gotcmu.deb 2>&1 | sed 's/^/    /'
[ "$(inroot dpkg-query -W -f='${db:Status-Abbrev}' gotcmu)" = "ii " ] || fail "gotcmu is not installed"
enabled "after dpkg -i"
# deb-systemd-helper's record of what it enabled, which purge uses to remove the links.
[ -e "$r/var/lib/systemd/deb-systemd-helper-enabled/gotcmu.service.dsh-also" ] || fail "deb-systemd-helper has no record of enabling gotcmu.service"
inroot gotcmu --version | sed 's/^/    /'
# What the daemon writes when it runs (its log); purge removes it.
touch "$r/var/log/gotcmu.log"

inroot dpkg --purge gotcmu 2>&1 | sed 's/^/    /'
[ -z "$(inroot dpkg-query -W -f='${db:Status-Abbrev}' gotcmu 2>/dev/null)" ] || fail "dpkg still knows gotcmu after purge"
if ! diff -u "$t/before" <(snapshot) >"$t/diff"; then
	cat "$t/diff"
	fail "dpkg --purge left files behind (+ lines above)"
fi
for p in etc/tcmu lib/systemd/system/gotcmu.service usr/share/dbus-1/system.d/org.kernel.TCMUService1.conf \
	usr/share/dbus-1/system-services/org.kernel.TCMUService1.service; do
	[ ! -e "$r/$p" ] || fail "/$p left after purge"
done
[ "$failed" = 0 ] && echo "dpkg-overlay: installed, enabled, purged; nothing left"
exit "$failed"
