#!/bin/sh
# Print the go-ceph build tag for the installed librbd (the Makefile's CEPH_TAG): go-ceph needs the
# tag of the Ceph release it is built against. 16.x pacific, 17 quincy, 18 reef, 19 squid; a newer
# release needs no tag (prints nothing). The version comes from dpkg, else `rbd --version`, else
# pkg-config. Usage: ceph-tag.sh [VERSION]   (VERSION instead of the installed one, for testing)
v=${1:-}
[ -n "$v" ] || v=$(dpkg-query -W -f='${Version}' librbd-dev 2>/dev/null) || true
[ -n "$v" ] || v=$(rbd --version 2>/dev/null | awk '{print $3}') || true
[ -n "$v" ] || v=$(pkg-config --modversion librbd 2>/dev/null) || true
[ -n "$v" ] || { echo "ceph-tag: cannot find librbd's version (is librbd-dev installed?)" >&2; exit 1; }
major=$(echo "$v" | sed 's/^[0-9]*://; s/[^0-9].*//')
[ -n "$major" ] || { echo "ceph-tag: cannot tell the Ceph release from librbd version '$v'" >&2; exit 1; }
case $major in
16) echo pacific ;;
17) echo quincy ;;
18) echo reef ;;
19) echo squid ;;
*)
	if [ "$major" -gt 19 ] 2>/dev/null; then
		echo ""
	else
		echo "ceph-tag: librbd $v is older than pacific; go-ceph v0.40 does not support it" >&2
		exit 1
	fi ;;
esac
