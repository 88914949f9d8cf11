#!/bin/bash
# Build, or reuse from the cache, a throwaway Linux guest with LIO + TCMU made from Debian's own
# kernel package: vmlinuz, a busybox initrd that loads the target modules, and the kernel's
# /lib/modules tree (bound into the guest so modprobe and libkmod work there).
#
# The guest boots this machine's root filesystem read-only over 9p (see run-guest.sh), so every
# tool installed here — targetcli, ceph, fio, libiscsi-bin, bin/gotcmu — is inside it too.
#
# Usage: build-guest.sh [CACHEDIR]      prints the guest directory on stdout, progress on stderr.
#   CACHEDIR defaults to <repo>/build/vm. A guest is kept in CACHEDIR/<kernel abi>-<recipe hash>/
#   and reused while Debian's current kernel ABI and this script stay the same; FORCE=1 rebuilds.
#   Without network or apt lists, the newest guest already in the cache is used.
# Needs: apt-get, dpkg, kmod (depmod), busybox-static, cpio, python3 (test/deps.sh installs them).
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
CACHE=$(realpath -m "${1:-$HERE/../../build/vm}")
mkdir -p "$CACHE"
for tool in depmod cpio python3 apt-get dpkg; do
	command -v "$tool" >/dev/null || { echo "build-guest: $tool missing (run test/deps.sh)" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "build-guest: /bin/busybox missing (busybox-static; run test/deps.sh)" >&2; exit 1; }

# The recipe hash makes a change to this script (init, module list) rebuild the cached guest.
RECIPE=$(sha256sum "$0" | cut -c1-12)

# Resolve the current distribution kernel from the meta package, so the recipe keeps working
# when Debian moves to a newer ABI (linux-image-amd64 -> linux-image-6.1.0-NN-amd64).
resolve_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
PKG=$(resolve_pkg)
if [ -z "$PKG" ]; then
	apt-get update -qq >/dev/null 2>&1 || true
	PKG=$(resolve_pkg)
fi
if [ -z "$PKG" ]; then
	newest=$(ls -dt "$CACHE"/*/ready 2>/dev/null | head -1 || true)
	[ -n "$newest" ] || { echo "build-guest: cannot resolve linux-image-amd64 and no cached guest in $CACHE" >&2; exit 1; }
	echo "build-guest: cannot resolve the kernel package; using cached $(dirname "$newest")" >&2
	dirname "$newest"
	exit 0
fi
ABI=${PKG#linux-image-}
OUT="$CACHE/$ABI-$RECIPE"
if [ -f "$OUT/ready" ] && [ "${FORCE:-0}" != 1 ]; then
	echo "build-guest: reusing $OUT" >&2
	touch "$OUT"
	echo "$OUT"
	exit 0
fi

# One builder at a time per cache; a second one waits and then finds the guest ready.
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$OUT/ready" ] && [ "${FORCE:-0}" != 1 ]; then
	echo "$OUT"
	exit 0
fi
echo "build-guest: building $OUT from $PKG" >&2
rm -rf "$OUT"; mkdir -p "$OUT"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && apt-get download -qq "$PKG" >/dev/null 2>&1) ||
	{ apt-get update -qq >/dev/null 2>&1; (cd "$WORK" && apt-get download -qq "$PKG"); }
dpkg -x "$WORK"/"$PKG"_*.deb "$WORK/k"
[ -d "$WORK/k/lib/modules/$ABI" ] || { echo "build-guest: $PKG has no lib/modules/$ABI" >&2; exit 1; }
cp "$WORK/k/boot/vmlinuz-$ABI" "$OUT/vmlinuz"
mkdir -p "$OUT/modules/lib"
mv "$WORK/k/lib/modules" "$OUT/modules/lib/"
depmod -b "$OUT/modules" "$ABI"

# Modules loaded at boot, with their dependencies in load order. Everything else (ext4, iscsi_tcp,
# dm_multipath, ...) a guest script loads itself with modprobe.
WANT="crc32c_generic virtio_pci virtio_net 9pnet_virtio 9p overlay configfs uio target_core_mod target_core_user
      tcm_loop target_core_file target_core_iblock target_core_pscsi iscsi_target_mod sd_mod sg rbd"
python3 - "$OUT/modules/lib/modules/$ABI/modules.dep" $WANT > "$WORK/order" <<'PY'
import sys
dep = {}
for line in open(sys.argv[1]):
    k, v = line.split(':', 1); dep[k] = v.split()
byname = {k.rsplit('/', 1)[1].split('.ko')[0]: k for k in dep}
order, seen = [], set()
def visit(m):
    if m in seen: return
    seen.add(m)
    for d in dep.get(m, []): visit(d)
    order.append(m)
for w in sys.argv[2:]:
    if w not in byname:
        sys.exit("module %s not in this kernel" % w)
    visit(byname[w])
print("\n".join(order))
PY

I="$WORK/initrd"; mkdir -p "$I"/{bin,mods,proc,sys,dev,newroot,lower,upper}
cp /bin/busybox "$I/bin/"
while read -r m; do cp "$OUT/modules/lib/modules/$ABI/$m" "$I/mods/"; basename "$m"; done < "$WORK/order" > "$I/mods/order"

# PID 1 in the initrd: load modules, mount the host root read-only (9p) under a tmpfs overlay,
# bind the kernel's modules, then switch to the overlay and run stage2 there.
cat > "$I/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m 2>/dev/null || echo "insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower || { echo "9p mount failed"; poweroff -f; }
mount -t tmpfs tmp /upper; mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot
mods=$(sed -n 's/.*guestmods=\([^ ]*\).*/\1/p' /proc/cmdline)
mkdir -p /newroot/lib/modules && mount --bind "/lower$mods" /newroot/lib/modules
cp /stage2 /newroot/.gotcmu-stage2
mount --move /proc /newroot/proc; mount --move /sys /newroot/sys; mount --move /dev /newroot/dev
exec switch_root /newroot /bin/sh /.gotcmu-stage2
INIT

# Stage 2 runs as PID 1 on the overlay root. run-guest.sh leaves the command to run in
# /out/.guest/run (a shell script carrying the environment, the script and its arguments); its
# exit status goes to /out/.guest/rc, which is how the host learns it. Then power off directly
# with reboot(2) (busybox poweroff -f), so PID 1 never exits and the kernel never panics.
cat > "$I/stage2" <<'STAGE2'
mount -t tmpfs t /tmp; mount -t tmpfs r /run
mount -t configfs none /sys/kernel/config
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs shm /dev/shm
mkdir -p /out; mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /out
ip link set lo up; hostname guest
# Kernel messages go to /out/dmesg.log as they come (so a hang still leaves them behind), not to
# the console, where target_core's per-command warnings would bury the script's output.
dmesg -n 1
dmesg -w > /out/dmesg.log 2>&1 &
# gotcmu.init=PATH on the kernel command line (run-guest.sh -s): PATH takes over as PID 1 from here
# (test/vm/systemd-init.sh prepares the overlay root and execs systemd).
init=$(sed -n 's/.*gotcmu\.init=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$init" ] && [ -x "$init" ]; then
	exec "$init"
fi
if [ -f /out/.guest/run ]; then
	/bin/sh /out/.guest/run
	rc=$?
else
	echo "guest: /out/.guest/run missing"; rc=125
fi
echo "$rc" > /out/.guest/rc
sync
echo "GUEST-EXIT rc=$rc" > /dev/console
/bin/busybox poweroff -f
echo o > /proc/sysrq-trigger
sleep 60
STAGE2

chmod +x "$I/init"
(cd "$I" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$OUT/initrd.gz"
echo "$ABI" > "$OUT/abi"
touch "$OUT/ready"
# Keep the cache small: drop guests for other kernels or recipes unused for a day.
find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -path "$OUT" -mtime +1 -exec rm -rf {} + 2>/dev/null || true
echo "build-guest: guest ready in $OUT (kernel $ABI)" >&2
echo "$OUT"
