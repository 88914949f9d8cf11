//go:build guest

package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The guest's LIO, through configfs directly (as rtslib does), and the
// kernel side of TCM-USER.
const (
	configfs   = "/sys/kernel/config/target"
	tcmuParams = "/sys/module/target_core_user/parameters"
)

// errBlocked: a configfs operation still waited for the handler's netlink
// reply when its time ran out, and was ended by unblockNetlink.
var errBlocked = errors.New("still blocked waiting for the handler's netlink reply: netlink reset")

// put writes value to a configfs file in one write(2), without a newline
// (configfs parses the buffer as written). The raw system call, not
// os.File's: that retries EINTR, which is how the kernel ends a write
// whose netlink wait was reset, and the retry would wait again.
func put(path, value string) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_TRUNC|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	if _, err := syscall.Write(fd, []byte(value)); err != nil {
		return &os.PathError{Op: "write " + value, Path: path, Err: err}
	}
	return nil
}

// rmdir removes a configfs directory (for a user backstore the kernel
// waits for the handler's REMOVED_DEVICE_DONE), EINTR not retried.
func rmdir(path string) error {
	if err := syscall.Rmdir(path); err != nil {
		return &os.PathError{Op: "rmdir", Path: path, Err: err}
	}
	return nil
}

// unblockNetlink completes every configfs write waiting for a handler's
// netlink reply with -EINTR, as tcmu-runner does at start-up
// (target_core_user.c, tcmu_wait_genl_cmd_reply: the wait has no timeout).
func unblockNetlink() {
	put(filepath.Join(tcmuParams, "block_netlink"), "1")
	put(filepath.Join(tcmuParams, "reset_netlink"), "1")
	put(filepath.Join(tcmuParams, "block_netlink"), "0")
}

// bounded runs op, which may wait in the kernel for the handler's netlink
// reply (an enable write, the rmdir of a user backstore). That wait is
// uninterruptible, so after d it is ended through unblockNetlink, and
// bounded returns errBlocked.
func bounded(d time.Duration, op func() error) error {
	done := make(chan error, 1)
	go func() { done <- op() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		logf("still blocked after %v: resetting netlink", d)
		unblockNetlink()
		<-done
		return errBlocked
	}
}

// waitUntil polls cond every 200 ms until it holds (true) or d has passed
// (false).
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return true
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// newUUID is a random UUID from the kernel.
func newUUID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/uuid")
	return strings.TrimSpace(string(b))
}

// makeLUN creates and enables a user backstore user_HBA/NAME (config is
// its dev_config, e.g. file//tmp/x.img), each control token written
// before the enable, which may wait enableWait for the handler's answer;
// it returns the backstore's configfs directory.
func makeLUN(hba int, name, config string, size int64, enableWait time.Duration, controls ...string) (string, error) {
	dir := filepath.Join(configfs, "core", fmt.Sprintf("user_%d", hba), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	control := filepath.Join(dir, "control")
	for _, tok := range append([]string{"dev_config=" + config, fmt.Sprintf("dev_size=%d", size)}, controls...) {
		if err := put(control, tok); err != nil {
			return "", err
		}
	}
	if err := bounded(enableWait, func() error { return put(filepath.Join(dir, "enable"), "1") }); err != nil {
		return "", fmt.Errorf("enable %s: %w", dir, err)
	}
	if err := put(filepath.Join(dir, "wwn/vpd_unit_serial"), newUUID()); err != nil {
		return "", err
	}
	return dir, nil
}

// removeBackstore removes a backstore, waiting up to 30 s for the handler.
func removeBackstore(dir string) error {
	return bounded(30*time.Second, func() error { return rmdir(dir) })
}

// loopWWN is a tcm_loop WWN of its own for LUN number n.
func loopWWN(n int) string { return fmt.Sprintf("naa.50014050000fa%03x", n) }

// loopExport exports backstore as LUN 0 of a tcm_loop target and returns
// its /dev/sdX once the kernel has scanned it. The nexus comes before the
// LUN: a LUN added without one is scanned and lost.
func loopExport(wwn, backstore string) (string, error) {
	tpg := filepath.Join(configfs, "loopback", wwn, "tpgt_1")
	lun := filepath.Join(tpg, "lun/lun_0")
	if err := os.MkdirAll(lun, 0o755); err != nil {
		return "", err
	}
	if err := put(filepath.Join(tpg, "nexus"), fmt.Sprintf("naa.5001405%09x", time.Now().UnixNano()&0xfffffffff)); err != nil {
		return "", err
	}
	if err := os.Symlink(backstore, filepath.Join(lun, filepath.Base(backstore))); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(tpg, "address"))
	if err != nil {
		return "", err
	}
	blockDir := fmt.Sprintf("/sys/class/scsi_disk/%s:0/device/block", strings.TrimSpace(string(b)))
	if !waitUntil(20*time.Second, func() bool { return exists(blockDir) }) {
		return "", fmt.Errorf("no %s 20 s after the export", blockDir)
	}
	ents, err := os.ReadDir(blockDir)
	if err != nil || len(ents) == 0 {
		return "", fmt.Errorf("no block device in %s: %v", blockDir, err)
	}
	dev := "/dev/" + ents[0].Name()
	if !waitUntil(10*time.Second, func() bool { return exists(dev) }) {
		return "", fmt.Errorf("no %s 10 s after the scan", dev)
	}
	return dev, nil
}

// loopUnexport removes what loopExport made: the LUN, the nexus, the
// target.
func loopUnexport(wwn string) error {
	tpg := filepath.Join(configfs, "loopback", wwn, "tpgt_1")
	lun := filepath.Join(tpg, "lun/lun_0")
	links, _ := filepath.Glob(filepath.Join(lun, "*"))
	for _, l := range links {
		if fi, err := os.Lstat(l); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			if err := os.Remove(l); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{lun, tpg, filepath.Dir(tpg)} {
		if err := rmdir(d); err != nil {
			return err
		}
	}
	return nil
}

// createFile makes path a sparse file of size bytes, as truncate -s does.
func createFile(path string, size int64, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, mode)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dState lists the processes in uninterruptible sleep, "pid comm" each,
// Ceph's daemons and tools left out (see CephTool).
func dState() []string {
	var out []string
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		st, err := ParseProcStat(string(b))
		if err == nil && st.State == 'D' && !CephTool(st.Comm) {
			out = append(out, fmt.Sprintf("%d %s", st.PID, st.Comm))
		}
	}
	return out
}

// logf prints a line to the console as the guest scripts do.
func logf(format string, a ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}
