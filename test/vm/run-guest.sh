#!/bin/bash
# Boot the guest made by build-guest.sh and run one script inside it as root; exit with the
# script's own exit status.
#
# Usage: run-guest.sh [-s] [-e NAME=VALUE]... GUESTDIR OUTDIR SCRIPT [ARG...]
#   GUESTDIR  what build-guest.sh printed.
#   OUTDIR    a writable directory on this machine, /out in the guest (results come back here).
#   SCRIPT    an absolute path on this machine outside /tmp and /run (those are the guest's own
#             tmpfs); the guest sees this machine's root read-only, so e.g. /work/main/test/...
#   -e        exports NAME=VALUE into the script's environment (repeatable).
#   -s        systemd as PID 1 (test/vm/systemd-init.sh): SCRIPT runs twice, with GUEST_PHASE=boot
#             before systemd starts (to prepare the overlay root) and with GUEST_PHASE=run as a
#             service after multi-user.target.
# Env: MEM (MiB, default 4096), CPUS (default 2), T (seconds before qemu is killed, default 1800),
#      QUIET=1 (console only to OUTDIR/console.log, not also to stdout), KVM=1 (see below),
#      NIC (qemu network arguments instead of "-nic none", split on spaces: test/ha joins two
#      guests with a socket netdev on this machine's loopback).
# Exit status: the script's; 124 if the guest ran out of time; 125 if it died without reporting.
# The console (and so the script's output) is copied to OUTDIR/console.log.
#
# qemu runs under TCG, several times slower than the host: compare figures only between runs
# inside one boot. KVM=1 uses KVM instead where it really works (the development machine has a
# /dev/kvm whose nested KVM aborts qemu, so it is never chosen on its own). Unless NIC says
# otherwise, the guest has no network card, only its own loopback.
# Serialise guests on a shared machine: flock /tmp/gotcmu-vm.lock run-guest.sh ...
set -euo pipefail
usage() { sed -n '5,15p' "$0" >&2; exit 2; }
HERE=$(dirname "$(readlink -f "$0")")
ENVS=()
INIT=""
while [ $# -gt 0 ]; do
	case $1 in
	-e) [ $# -ge 2 ] || usage
		case $2 in [A-Za-z_]*=*) ;; *) echo "run-guest: bad -e '$2' (want NAME=VALUE)" >&2; exit 2 ;; esac
		ENVS+=("$2"); shift 2 ;;
	-s) INIT=" gotcmu.init=$HERE/systemd-init.sh systemd.unit=multi-user.target"; shift ;;
	-h|--help) usage ;;
	--) shift; break ;;
	-*) echo "run-guest: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 3 ] || usage
G=$(realpath "$1"); O=$(realpath -m "$2"); SCRIPT=$3; shift 3
[ -f "$G/ready" ] || { echo "run-guest: $G is not a guest made by build-guest.sh" >&2; exit 2; }
case $SCRIPT in
/tmp/*|/run/*|/proc/*|/sys/*|/dev/*) echo "run-guest: $SCRIPT is not visible in the guest (its /tmp and /run are its own)" >&2; exit 2 ;;
/*) ;;
*) echo "run-guest: SCRIPT must be an absolute path: $SCRIPT" >&2; exit 2 ;;
esac
[ -x "$SCRIPT" ] || { echo "run-guest: $SCRIPT is not executable" >&2; exit 2; }

# sq quotes a string for sh: 'it'\''s'.
sq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
mkdir -p "$O/.guest"
rm -f "$O/.guest/rc"
{
	echo "# written by run-guest.sh; run by the guest's stage2 as PID 1's child"
	for e in "${ENVS[@]+"${ENVS[@]}"}"; do echo "export ${e%%=*}=$(sq "${e#*=}")"; done
	printf 'cd /out || exit 125\nexec'
	for a in "$SCRIPT" "$@"; do printf ' %s' "$(sq "$a")"; done
	echo
} > "$O/.guest/run"

read -ra NICARGS <<< "${NIC:--nic none}"
ACCEL=(-accel "tcg,thread=multi")
if [ "${KVM:-0}" = 1 ]; then
	ACCEL=(-accel kvm)
fi
# The console goes through sed to drop SeaBIOS's terminal escapes; stdin is closed so qemu
# never puts an interactive terminal into raw mode.
set +e
timeout --kill-after=10 "${T:-1800}" qemu-system-x86_64 -machine q35 "${ACCEL[@]}" -cpu max \
	-smp "${CPUS:-2}" -m "${MEM:-4096}" -nographic -no-reboot \
	-kernel "$G/vmlinuz" -initrd "$G/initrd.gz" \
	-append "console=ttyS0 quiet panic=-1 guestmods=$G/modules/lib/modules$INIT" \
	-fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
	-device virtio-9p-pci,fsdev=root,mount_tag=hostroot \
	-fsdev local,id=out,path="$O",security_model=none \
	-device virtio-9p-pci,fsdev=out,mount_tag=out \
	"${NICARGS[@]}" </dev/null 2>&1 |
	sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' |
	if [ "${QUIET:-0}" = 1 ]; then cat > "$O/console.log"; else tee "$O/console.log"; fi
qemu_rc=${PIPESTATUS[0]}
set -e
if [ -s "$O/.guest/rc" ]; then
	rc=$(cat "$O/.guest/rc")
	exit "$rc"
fi
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
	echo "run-guest: guest still running after ${T:-1800} s; killed" >&2
	exit 124
fi
echo "run-guest: guest ended without reporting an exit status (qemu rc=$qemu_rc); see $O/console.log" >&2
exit 125
