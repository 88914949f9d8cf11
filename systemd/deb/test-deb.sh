#!/bin/bash
# `make test-deb` (after `make deb`): the checks of issue 14 point 1 on the package built.
#   1. lintian: no errors (warnings and infos are printed).
#   2. The control data: Provides/Conflicts/Replaces tcmu-runner, Depends from the shared
#      libraries (libc6, librados2, librbd1), the conffile, md5sums that match, and the packaged
#      binary's --version equal to the package's version; its man page lists every flag.
#   3. apt: `apt-get install --simulate ceph-iscsi ./gotcmu_*.deb` resolves without installing
#      tcmu-runner, on a machine without it (a copy of dpkg's status with tcmu-runner and
#      ceph-iscsi dropped) and, if tcmu-runner is installed here, on this machine without
#      ceph-iscsi (tcmu-runner is then removed).
#   4. The package's file list is `make install PREFIX=/usr`'s plus /usr/share/doc/gotcmu.
#   5. As root: dpkg -i and dpkg --purge in a throwaway overlay of this machine's root (a mount
#      namespace; nothing here changes): the unit and its tcmu-runner.service alias enabled the
#      way deb-systemd-helper does, and after purge nothing of gotcmu left; and, if tcmu-runner
#      is installed here, dpkg -i over it (systemd/deb/dpkg-overlay.sh).
# Usage: systemd/deb/test-deb.sh bin/gotcmu_VERSION_ARCH.deb
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
[ $# = 1 ] && [ -f "$1" ] || { echo "usage: $0 gotcmu_VERSION_ARCH.deb (one; make deb builds it)" >&2; exit 2; }
deb=$(readlink -f "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() { echo "test-deb: FAIL: $*"; failed=1; }
ok() { echo "test-deb: ok: $*"; }
field() { dpkg-deb -f "$deb" "$1"; }
version=$(field Version)

# 1. lintian.
echo "==== lintian $(lintian --version | awk '{print $2}') on $(basename "$deb")"
rc=0
out=$(lintian --fail-on error --display-info "$deb" 2>&1) || rc=$?
grep -v 'running with root privileges' <<<"$out" | sed 's/^/    /' || true
if [ "$rc" = 0 ]; then ok "lintian: no errors"; else fail "lintian reports errors (above)"; fi

# 2. Control data.
echo "==== control data"
[ "$(field Provides)" = "tcmu-runner (= 1.5.4)" ] || fail "Provides is '$(field Provides)'"
[ "$(field Conflicts)" = tcmu-runner ] || fail "Conflicts is '$(field Conflicts)'"
[ "$(field Replaces)" = tcmu-runner ] || fail "Replaces is '$(field Replaces)'"
for lib in libc6 librados2 librbd1; do
	field Depends | tr ',' '\n' | grep -q "^ *$lib (>= " || fail "Depends '$(field Depends)' lacks $lib"
done
[ -n "$(field Installed-Size)" ] || fail "no Installed-Size"
dpkg-deb -e "$deb" "$tmp/DEBIAN"
dpkg-deb -x "$deb" "$tmp/root"
grep -qx /etc/tcmu/tcmu.conf "$tmp/DEBIAN/conffiles" || fail "/etc/tcmu/tcmu.conf is not a conffile"
(cd "$tmp/root" && md5sum --quiet -c "$tmp/DEBIAN/md5sums") || fail "md5sums do not match the files"
[ "$(cd "$tmp/root" && find . -type f | wc -l)" = "$(wc -l <"$tmp/DEBIAN/md5sums")" ] || fail "md5sums does not list every file"
got=$("$tmp/root/usr/bin/gotcmu" --version)
[ "$got" = "gotcmu $version" ] || fail "the packaged gotcmu --version prints '$got', the package is $version"
man=$(zcat "$tmp/root/usr/share/man/man8/gotcmu.8.gz")
for flag in $("$tmp/root/usr/bin/gotcmu" --help 2>&1 | sed -n 's/^  -\([a-z-]*\).*/\1/p'); do
	grep -qF ".B \\-${flag//-/\\-}" <<<"$man" || fail "gotcmu(8) does not list -$flag"
done
[ "$failed" = 0 ] && ok "Provides: $(field Provides); Depends: $(field Depends); conffiles, md5sums, --version ($got), gotcmu(8) flags"

# 3. apt's resolution of ceph-iscsi with the package.
echo "==== apt-get install --simulate ceph-iscsi $(basename "$deb")"
if ! apt-cache show ceph-iscsi >/dev/null 2>&1; then
	fail "apt knows no ceph-iscsi (apt-get update?)"
else
	# simulate NAME STATUSFILE: apt-get's plan; checks gotcmu and ceph-iscsi install, tcmu-runner does not.
	simulate() {
		local out
		out=$(cd "$tmp" && cp "$deb" ./ && apt-get install --simulate -o Debug::NoLocking=1 \
			-o Dir::State::status="$2" ceph-iscsi "./$(basename "$deb")" 2>&1) || { echo "$out"; fail "$1: apt-get could not resolve"; return; }
		grep -E '^(Inst|Remv) (gotcmu|ceph-iscsi|tcmu-runner|libtcmu)' <<<"$out" | sed 's/^/    /'
		grep -q '^Inst gotcmu ' <<<"$out" || fail "$1: apt does not install gotcmu"
		grep -q '^Inst ceph-iscsi ' <<<"$out" || fail "$1: apt does not install ceph-iscsi"
		if grep -q '^Inst tcmu-runner ' <<<"$out"; then fail "$1: apt installs tcmu-runner"; else ok "$1: ceph-iscsi resolves with gotcmu, without tcmu-runner"; fi
	}
	# dpkg's status without the named packages: ceph-iscsi always goes (make test's set-up may
	# have installed it, and apt must plan it here), tcmu-runner for a machine without it.
	status_without() { awk -v RS= -v ORS='\n\n' -v drop="$*" 'BEGIN { n = split(drop, d, " ") }
		{ for (i = 1; i <= n; i++) if (index($0, "Package: " d[i] "\n") == 1) next; print }' /var/lib/dpkg/status; }
	status_without ceph-iscsi tcmu-runner >"$tmp/status"
	simulate "a machine without tcmu-runner" "$tmp/status"
	if dpkg-query -W -f='${db:Status-Abbrev}' tcmu-runner 2>/dev/null | grep -q '^ii'; then
		status_without ceph-iscsi >"$tmp/status-here"
		simulate "this machine (tcmu-runner installed)" "$tmp/status-here"
	fi
fi

# 4. The file list against `make install`'s.
echo "==== file list against make install PREFIX=/usr"
make -C "$REPO" --no-print-directory -s install DESTDIR="$tmp/install" PREFIX=/usr >/dev/null
(cd "$tmp/install" && find . \( -type f -o -type l \) | sed 's#^\./#/#' | sort) >"$tmp/install.list"
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sed 's#^\./#/#' | sort >"$tmp/deb.list"
printf '%s\n' /usr/share/doc/gotcmu/changelog.gz /usr/share/doc/gotcmu/copyright >"$tmp/doc.list"
if diff -u <(sort "$tmp/install.list" "$tmp/doc.list") "$tmp/deb.list"; then
	ok "the package holds make install's $(wc -l <"$tmp/install.list") files and /usr/share/doc/gotcmu/{copyright,changelog.gz}"
else
	fail "the package's files differ from make install's (+ the doc files; diff above: - make install, + package)"
fi

# 5. dpkg -i and --purge in an overlay of this machine's root.
echo "==== dpkg -i, dpkg --purge in an overlay of /"
if [ "$(id -u)" != 0 ]; then
	echo "test-deb: skipped: not root"
elif ! grep -qw overlay /proc/filesystems && ! modprobe -q overlay; then
	echo "test-deb: skipped: no overlayfs"
else
	if unshare --mount --propagation private "$HERE/dpkg-overlay.sh" "$deb" fresh; then
		ok "dpkg -i enables gotcmu.service and its alias tcmu-runner.service; dpkg --purge leaves nothing"
	else
		fail "dpkg -i / dpkg --purge in the overlay (above)"
	fi
	if dpkg-query -W -f='${db:Status-Abbrev}' tcmu-runner 2>/dev/null | grep -q '^ii'; then
		if unshare --mount --propagation private "$HERE/dpkg-overlay.sh" "$deb" switch; then
			ok "dpkg -i over tcmu-runner replaces it and takes tcmu.conf; its purge keeps the alias"
		else
			fail "dpkg -i over tcmu-runner in the overlay (above)"
		fi
	fi
fi

if [ "$failed" = 0 ]; then echo "test-deb: all passed"; else echo "test-deb: FAILED"; exit 1; fi
