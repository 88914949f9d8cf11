#!/bin/bash
# Build the .deb from a staged `make install DESTDIR=STAGE PREFIX=/usr` (systemd/deb.mk runs the
# install first): add what debhelper would (DEBIAN/control with Depends from dpkg-shlibdeps and
# Installed-Size, md5sums, conffiles, the maintainer scripts dh_installsystemd writes, the
# copyright and changelog in /usr/share/doc/gotcmu), then dpkg-deb --build.
#
# Why not dpkg-buildpackage with a debian/ directory: the repository's top level stays the Go
# module (no debian/), the file layout has one source of truth (`make install` and its
# systemd/*.mk fragments, which `make check` already verifies), and a CI machine needs dpkg-dev
# only, not debhelper.
#
# Usage: systemd/deb/build-deb.sh STAGE VERSION OUTDIR        (prints the path of the .deb)
# Environment: DEB_MAINTAINER (default: the author of the last commit).
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
stage=$(readlink -f "$1") version=$2 outdir=$3
[ -x "$stage/usr/bin/gotcmu" ] || { echo "build-deb.sh: no $stage/usr/bin/gotcmu (make install DESTDIR=$stage PREFIX=/usr first)" >&2; exit 1; }
arch=$(dpkg --print-architecture)
maint=${DEB_MAINTAINER:-$(git -C "$REPO" log -1 --format='%an <%ae>' 2>/dev/null || echo "gotcmu maintainers <root@localhost>")}
# Timestamps in the changelog and the archive: the commit's, so a clean tree builds the same bytes.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}
doc=$stage/usr/share/doc/gotcmu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The binary: stripped as dh_strip strips (Go keeps its own symbol table for stack traces).
strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/gotcmu"

# /usr/share/doc/gotcmu: copyright (machine-readable; gotcmu's Apache-2.0 and the licence of
# every Go module linked into the binary, with its text) and a changelog (a native package's
# changelog.gz, as lintian expects when the version has no Debian revision).
mkdir -p "$doc"
"$HERE/copyright.sh" "$REPO/bin/gotcmu" >"$doc/copyright"
{
	echo "gotcmu ($version) unstable; urgency=medium"
	echo
	echo "  * Built from the gotcmu tree at $(git -C "$REPO" describe --tags --always --dirty 2>/dev/null || echo "an unknown commit")."
	echo "    Upstream history: https://github.com/gotcmu/gotcmu/commits"
	echo
	echo " -- $maint  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.gz"

# Modes as dh_fixperms leaves them (install -D made the directories with this umask).
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -exec chmod 0644 {} +
chmod 0755 "$stage/usr/bin/gotcmu"

# Depends from the shared libraries, as dh_shlibdeps: dpkg-shlibdeps wants a debian/control.
mkdir -p "$tmp/debian"
printf 'Source: gotcmu\n\nPackage: gotcmu\nArchitecture: any\n' >"$tmp/debian/control"
depends=$(cd "$tmp" && dpkg-shlibdeps -O -e"$stage/usr/bin/gotcmu" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$stage/DEBIAN"
installed_size=$(du -s -k --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
# Provides: tcmu-runner (= 1.5.4): the version Debian bookworm ships and the one every harness
# of the project compares gotcmu with; gotcmu implements that version's interfaces that other
# packages use: the D-Bus service org.kernel.TCMUService1 (targetcli, ceph-iscsi), /etc/tcmu/
# tcmu.conf (log_level, log_dir) and Ceph's service-map "tcmu-runner" daemons with their status
# (lock_owner, lock_lost_cnt, conn_lost_cnt, cmd_timed_out_cnt; ceph-iscsi, the dashboard). It
# satisfies ceph-iscsi's "tcmu-runner (>= 1.4.0)". Not implemented: libtcmu and handler plugins.
cat >"$stage/DEBIAN/control" <<CONTROL
Package: gotcmu
Version: $version
Architecture: $arch
Maintainer: $maint
Installed-Size: $installed_size
Pre-Depends: init-system-helpers (>= 1.54~)
Depends: $depends
Recommends: targetcli-fb
Suggests: ceph-iscsi
Conflicts: tcmu-runner
Replaces: tcmu-runner
Provides: tcmu-runner (= 1.5.4)
Section: admin
Priority: optional
Homepage: https://github.com/gotcmu/gotcmu
Description: LIO userspace handler (TCMU) for Ceph RBD images, replacing tcmu-runner
 gotcmu serves the Linux SCSI target's (LIO) user:rbd and user:file backstores
 from userspace, as tcmu-runner does, and stands in for it: the same D-Bus
 service (org.kernel.TCMUService1) for targetcli and ceph-iscsi, the same
 /etc/tcmu/tcmu.conf, the same "tcmu-runner" entries in Ceph's service map, and
 a systemd unit also known as tcmu-runner.service.
 .
 One LUN never holds up another, a restart re-adopts the devices the kernel
 keeps, and Prometheus metrics (with a Grafana dashboard) show every LUN.
CONTROL

# Every file under /etc is a conffile: today /etc/tcmu/tcmu.conf.
(cd "$stage" && find etc -type f | sort | sed 's#^#/#') >"$stage/DEBIAN/conffiles"

# The maintainer scripts debhelper 13 (dh_installsystemd, bookworm) writes for gotcmu.service:
# enable on first install (the unit's Alias= makes tcmu-runner.service), restart on upgrade,
# stop on remove, forget the enablement on purge. Plus, on purge, the log and /etc/tcmu.
unit=gotcmu.service
cat >"$stage/DEBIAN/postinst" <<SCRIPT
#!/bin/sh
set -e
if [ "\$1" = "configure" ] || [ "\$1" = "abort-upgrade" ] || [ "\$1" = "abort-deconfigure" ] || [ "\$1" = "abort-remove" ] ; then
	# This will only remove masks created by d-s-h on package removal.
	deb-systemd-helper unmask '$unit' >/dev/null || true

	# was-enabled defaults to true, so new installations run enable.
	if deb-systemd-helper --quiet was-enabled '$unit'; then
		# Enables the unit on first installation, creates new
		# symlinks on upgrades if the unit file has changed.
		deb-systemd-helper enable '$unit' >/dev/null || true
	else
		# Update the statefile to add new symlinks (if any), which need to be
		# cleaned up on purge. Also remove old symlinks.
		deb-systemd-helper update-state '$unit' >/dev/null || true
	fi
fi
if [ "\$1" = "configure" ] || [ "\$1" = "abort-upgrade" ] || [ "\$1" = "abort-deconfigure" ] || [ "\$1" = "abort-remove" ] ; then
	if [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "\$2" ]; then
			_dh_action=restart
		else
			_dh_action=start
		fi
		deb-systemd-invoke \$_dh_action '$unit' >/dev/null || true
	fi
fi
SCRIPT
cat >"$stage/DEBIAN/prerm" <<SCRIPT
#!/bin/sh
set -e
if [ -z "\${DPKG_ROOT:-}" ] && [ "\$1" = remove ] && [ -d /run/systemd/system ] ; then
	deb-systemd-invoke stop '$unit' >/dev/null || true
fi
SCRIPT
cat >"$stage/DEBIAN/postrm" <<SCRIPT
#!/bin/sh
set -e
if [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ] ; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "\$1" = "remove" ]; then
	if [ -x "/usr/bin/deb-systemd-helper" ]; then
		deb-systemd-helper mask '$unit' >/dev/null || true
	fi
fi
if [ "\$1" = "purge" ]; then
	if [ -x "/usr/bin/deb-systemd-helper" ]; then
		deb-systemd-helper purge '$unit' >/dev/null || true
		deb-systemd-helper unmask '$unit' >/dev/null || true
	fi
	# What gotcmu wrote (the default log_dir) and the configuration directory once dpkg has
	# removed tcmu.conf (an operator's other files there stay).
	rm -f /var/log/gotcmu.log /var/log/gotcmu.log.*
	rmdir --ignore-fail-on-non-empty /etc/tcmu 2>/dev/null || true
fi
SCRIPT
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

(cd "$stage" && find . -type f -not -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

mkdir -p "$outdir"
rm -f "$outdir"/gotcmu_*.deb
deb=$outdir/gotcmu_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
