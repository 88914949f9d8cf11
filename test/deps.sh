#!/bin/bash
# Make sure this machine has what `make test` needs; install missing Debian packages with apt-get.
# Idempotent, and fast when everything is present (one dpkg-query, no apt-get at all).
#
# Usage: test/deps.sh [--check]     --check: only report what is missing (exit 1 if anything is).
# Go is not installed here: it must be on PATH (or in /usr/local/go/bin) and at least as new as
# the "go" line of go.mod; otherwise this fails and says what it found.
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/..")
CHECK_ONLY=0
[ "${1:-}" = --check ] && CHECK_ONLY=1

PKGS=(
	# the guest: qemu, the initrd builder, kernel download and module handling
	qemu-system-x86 busybox-static kmod cpio python3 ca-certificates
	# tools the guest scripts run (the guest sees this machine's root)
	fio sg3-utils targetcli-fb tcmu-runner libiscsi-bin open-iscsi dbus python3-dbus
	multipath-tools e2fsprogs xfsprogs iproute2 util-linux procps psmisc
	# Ceph: the micro cluster for test-ceph and the rbd guests, and the rbd build
	ceph-mon ceph-osd ceph-mgr ceph-common librbd-dev librados-dev
	# the cgo build, the bench charts, systemd-analyze verify, make check
	gcc libc6-dev pkg-config make gnuplot-nox systemd shellcheck
	# make scale: perf samples both daemons' threads, C and Go alike
	linux-perf
	# make deb and test-deb: dpkg-shlibdeps, strip, lintian (apt-get, unshare and chroot are always here)
	dpkg-dev binutils lintian
	# test-systemd: ceph-iscsi's rbd-target-api.service, ordered After=tcmu-runner.service (the
	# unit's alias); the guest boots this machine's root, so it must be installed here
	ceph-iscsi
)

# Installed = dpkg knows it as "install ok installed"; unknown packages are simply missing.
mapfile -t INSTALLED < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${PKGS[@]}" 2>/dev/null |
	awk '$1 == "ii" {print $2}')
MISSING=()
for p in "${PKGS[@]}"; do
	[[ " ${INSTALLED[*]} " == *" $p "* ]] || MISSING+=("$p")
done

if [ ${#MISSING[@]} -gt 0 ]; then
	if [ "$CHECK_ONLY" = 1 ]; then
		echo "deps: missing: ${MISSING[*]}"
	else
		echo "deps: installing ${MISSING[*]}"
		SUDO=()
		if [ "$(id -u)" != 0 ]; then
			command -v sudo >/dev/null || { echo "deps: not root and no sudo; install as root: ${MISSING[*]}" >&2; exit 1; }
			SUDO=(sudo)
		fi
		export DEBIAN_FRONTEND=noninteractive
		"${SUDO[@]}" apt-get update -qq >/dev/null
		"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >/dev/null
		MISSING=()
	fi
else
	echo "deps: all ${#PKGS[@]} packages present"
fi

# Go: check, never install.
PATH=$PATH:/usr/local/go/bin
WANT=$(awk '$1 == "go" {print $2; exit}' "$REPO/go.mod")
if ! command -v go >/dev/null; then
	echo "deps: go not found on PATH or in /usr/local/go/bin; go.mod needs go $WANT (https://go.dev/dl/)" >&2
	exit 1
fi
HAVE=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$WANT" "$HAVE" | sort -V | head -1)" != "$WANT" ]; then
	echo "deps: $(command -v go) is go $HAVE; go.mod needs go $WANT or newer" >&2
	exit 1
fi
echo "deps: go $HAVE ($(command -v go)) satisfies go.mod's $WANT"
[ ${#MISSING[@]} -eq 0 ]
