package netlink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// Tests against the real target_core_user (in the VM: test/). They create
// their own user backstore in configfs and play the daemon for it, so no
// other TCMU daemon may run at the same time.

const (
	configfsCore = "/sys/kernel/config/target/core"
	moduleDir    = "/sys/module/target_core_user"
)

// TestKernelDial checks Dial against whatever kernel runs the test: without
// target_core_user the family is absent and Dial must say so; with it,
// Dial must resolve the family and join "config".
func TestKernelDial(t *testing.T) {
	_, modErr := os.Stat(moduleDir)
	c, err := Dial(testLogger(t))
	if modErr != nil {
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Dial without target_core_user = %v, want an ENOENT error", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Dial with target_core_user loaded: %v", err)
	}
	defer c.Close()
	if c.family.Version != 2 {
		t.Errorf("TCM-USER family version %d, want 2", c.family.Version)
	}
}

// requireLIO skips unless the test can create TCMU devices.
func requireLIO(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating TCMU devices in configfs needs root")
	}
	if _, err := os.Stat(moduleDir); err != nil {
		t.Skipf("target_core_user not loaded: %v", err)
	}
	if _, err := os.Stat(configfsCore); err != nil {
		t.Skipf("LIO configfs not mounted: %v", err)
	}
}

// async runs a configfs operation that may block until the daemon replies.
func async(op func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- op() }()
	return ch
}

// writeFile returns a single write(2) of value to path. It bypasses os.File
// on purpose: os.File.Write retries EINTR, so the EINTR that reset_netlink
// gives a waiting writer would be turned into a second write (answered
// EAGAIN while netlink is blocked, or a fresh event once it is not).
func writeFile(path, value string) func() error {
	return func() error {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		defer unix.Close(fd)
		if _, err := unix.Write(fd, []byte(value)); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
}

// stillBlocked checks that a configfs operation waits for the reply.
func stillBlocked(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s returned %v before the reply", what, err)
	case <-time.After(500 * time.Millisecond):
	}
}

// finished returns the result of a configfs operation after the reply.
func finished(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still blocked 30s after the reply", what)
	}
	return nil
}

// nextFor returns the next event for a device whose uio name starts with
// prefix, skipping events of other devices.
func nextFor(t *testing.T, r *receiver, prefix string) Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-r.events:
			if strings.HasPrefix(ev.Device, prefix) {
				return ev
			}
			t.Logf("skipping event of another device: %+v", ev)
		case err := <-r.done:
			t.Fatalf("Receive returned %v while an event was expected", err)
		case <-deadline:
			t.Fatalf("no event for %s within 30s", prefix)
		}
	}
}

// backstorePaths names a user backstore for one test: its HBA and device
// directories in configfs and the prefix of its uio name.
func backstorePaths(base int) (hba, dev, prefix string) {
	id := base + os.Getpid()%10000
	hba = filepath.Join(configfsCore, fmt.Sprintf("user_%d", id))
	return hba, filepath.Join(hba, "nltest"), fmt.Sprintf("tcm-user/%d/nltest", id)
}

// removeBackstore registers the removal of the backstore at the end of the
// test. Whatever happened, it leaves no device and no waiting writer
// behind: while netlink is blocked the REMOVED event fails at once instead
// of waiting for a reply.
func removeBackstore(t *testing.T, hba, dev string) {
	params := ModuleParams{}
	t.Cleanup(func() {
		for _, step := range []struct {
			name string
			op   func() error
		}{
			{"block netlink", params.BlockNetlink},
			{"reset netlink", params.ResetNetlink},
			{"remove device", func() error { return os.Remove(dev) }},
			{"remove hba", func() error { return os.Remove(hba) }},
			{"unblock netlink", params.UnblockNetlink},
		} {
			if err := step.op(); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Logf("cleanup: %s: %v", step.name, err)
			}
		}
	})
}

// TestKernelEventsAndReplies plays the daemon for one user backstore: it
// receives the kernel's ADDED, RECONFIG (all three kinds) and REMOVED
// events, checks every attribute, and checks that the configfs writer
// waits for the reply and gets its status. It also releases a writer left
// waiting with block_netlink/reset_netlink, as a restarted daemon does.
func TestKernelEventsAndReplies(t *testing.T) {
	requireLIO(t)
	ctx := context.Background()
	params := ModuleParams{}

	c, err := Dial(testLogger(t))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.SetFeatures(ctx); err != nil {
		t.Fatalf("SetFeatures: %v", err)
	}
	r := startReceive(t, c)

	hba, dev, prefix := backstorePaths(40000)
	removeBackstore(t, hba, dev)
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatalf("create backstore: %v", err)
	}
	if err := writeFile(filepath.Join(dev, "control"), "dev_config=nltest/a,dev_size=1048576")(); err != nil {
		t.Fatalf("write control: %v", err)
	}

	// ADDED: enable waits for the reply.
	enable := async(writeFile(filepath.Join(dev, "enable"), "1"))
	ev := nextFor(t, r, prefix)
	want := Event{Cmd: CmdAddedDevice, Version: 2, Device: prefix + "/nltest/a", Minor: ev.Minor,
		DeviceID: ev.DeviceID, HasDeviceID: true}
	if diff := cmp.Diff(want, ev, cmpopts.EquateErrors()); diff != "" {
		t.Fatalf("ADDED event mismatch (-want +got):\n%s", diff)
	}
	uioName, err := os.ReadFile(fmt.Sprintf("/sys/class/uio/uio%d/name", ev.Minor))
	if err != nil || strings.TrimSpace(string(uioName)) != ev.Device {
		t.Errorf("uio%d name = %q (%v), want %q", ev.Minor, uioName, err, ev.Device)
	}
	stillBlocked(t, enable, "enable")
	if err := c.Reply(ctx, ev, 0); err != nil {
		t.Fatalf("Reply to ADDED: %v", err)
	}
	if err := finished(t, enable, "enable"); err != nil {
		t.Fatalf("enable after reply 0: %v", err)
	}
	added := ev

	// RECONFIG of each kind; the reply's status is the write's result.
	reconfigs := []struct {
		name   string
		file   string
		value  string
		want   func(*Event)
		status int32
	}{
		{name: "dev_size", file: "attrib/dev_size", value: "2097152",
			want: func(ev *Event) { ev.Size = ptr(uint64(2097152)) }},
		{name: "emulate_write_cache refused", file: "attrib/emulate_write_cache", value: "1",
			want: func(ev *Event) { ev.WriteCache = ptr(true) }, status: -int32(unix.EINVAL)},
		{name: "dev_config", file: "attrib/dev_config", value: "nltest/b",
			want: func(ev *Event) { ev.Config = ptr("nltest/b") }},
	}
	for _, rc := range reconfigs {
		write := async(writeFile(filepath.Join(dev, rc.file), rc.value))
		ev := nextFor(t, r, prefix)
		want := added
		want.Cmd = CmdReconfigDevice
		rc.want(&want)
		if diff := cmp.Diff(want, ev, cmpopts.EquateErrors()); diff != "" {
			t.Fatalf("%s: RECONFIG event mismatch (-want +got):\n%s", rc.name, diff)
		}
		stillBlocked(t, write, rc.file)
		if err := c.Reply(ctx, ev, rc.status); err != nil {
			t.Fatalf("%s: Reply: %v", rc.name, err)
		}
		err := finished(t, write, rc.file)
		if rc.status == 0 && err != nil {
			t.Errorf("%s: write after reply 0: %v", rc.name, err)
		}
		if rc.status != 0 && !errors.Is(err, unix.Errno(-rc.status)) {
			t.Errorf("%s: write after reply %d = %v, want %v", rc.name, rc.status, err, unix.Errno(-rc.status))
		}
	}
	// The kernel renames the uio device after a dev_config change.
	added.Device = prefix + "/nltest/b"

	// A writer whose event is never answered, as after a daemon crash:
	// block_netlink + reset_netlink release it with EINTR.
	orphan := async(writeFile(filepath.Join(dev, "attrib/dev_size"), "4194304"))
	lost := nextFor(t, r, prefix)
	stillBlocked(t, orphan, "dev_size write without reply")
	if err := params.BlockNetlink(); err != nil {
		t.Fatalf("BlockNetlink: %v", err)
	}
	if err := params.ResetNetlink(); err != nil {
		t.Fatalf("ResetNetlink: %v", err)
	}
	if err := finished(t, orphan, "dev_size write after reset_netlink"); !errors.Is(err, unix.EINTR) {
		t.Errorf("dev_size write after reset_netlink = %v, want EINTR", err)
	}
	if err := params.UnblockNetlink(); err != nil {
		t.Fatalf("UnblockNetlink: %v", err)
	}
	if err := c.Reply(ctx, lost, 0); !errors.Is(err, unix.ENODEV) {
		t.Errorf("late Reply after reset_netlink = %v, want ENODEV", err)
	}

	// REMOVED: rmdir waits for the reply.
	rmdir := async(func() error { return os.Remove(dev) })
	ev = nextFor(t, r, prefix)
	want = added
	want.Cmd = CmdRemovedDevice
	if diff := cmp.Diff(want, ev, cmpopts.EquateErrors()); diff != "" {
		t.Fatalf("REMOVED event mismatch (-want +got):\n%s", diff)
	}
	stillBlocked(t, rmdir, "rmdir")
	if err := c.Reply(ctx, ev, 0); err != nil {
		t.Fatalf("Reply to REMOVED: %v", err)
	}
	if err := finished(t, rmdir, "rmdir"); err != nil {
		t.Fatalf("rmdir after reply: %v", err)
	}
}

// TestKernelOverrunIsReported overflows the events socket with real
// RECONFIG events and checks that Receive reports the loss as
// ErrEventsLost and keeps delivering afterwards. The device opts out of
// replies (nl_reply_supported=-1), so the kernel sends events without
// waiting for anyone.
func TestKernelOverrunIsReported(t *testing.T) {
	requireLIO(t)
	c, err := Dial(testLogger(t))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// The kernel raises this to its minimum, a few KiB: two or three
	// events' skbs.
	if err := c.events.SetReadBuffer(1); err != nil {
		t.Fatalf("shrink receive buffer: %v", err)
	}

	hba, dev, prefix := backstorePaths(50000)
	removeBackstore(t, hba, dev)
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatalf("create backstore: %v", err)
	}
	for _, w := range []struct{ file, value string }{
		{"control", "dev_size=1048576,nl_reply_supported=-1"},
		{"enable", "1"},
	} {
		if err := writeFile(filepath.Join(dev, w.file), w.value)(); err != nil {
			t.Fatalf("write %s: %v", w.file, err)
		}
	}
	// Nobody reads the socket while 50 more events are sent. Once it is
	// full, netlink_broadcast delivers to no one and the kernel treats that
	// as no listener: the write fails with ESRCH.
	const writes = 50
	refused := 0
	for i := range writes {
		err := writeFile(filepath.Join(dev, "attrib/dev_size"), fmt.Sprint(1<<20+i*4096))()
		switch {
		case errors.Is(err, unix.ESRCH):
			refused++
		case err != nil:
			t.Fatalf("write dev_size: %v", err)
		}
	}
	if refused == 0 {
		t.Fatalf("all %d writes delivered to a minimal socket buffer, want ESRCH once it overflows", writes)
	}
	t.Logf("%d of %d dev_size writes failed with ESRCH while the socket was full", refused, writes)

	r := startReceive(t, c)
	first := r.next(t)
	if !errors.Is(first.Err, ErrEventsLost) || !errors.Is(first.Err, unix.ENOBUFS) {
		t.Fatalf("first event after the flood = %+v, want ErrEventsLost wrapping ENOBUFS", first)
	}
	// What was queued before the overrun is still delivered; drain it.
	delivered := 0
drain:
	for {
		select {
		case ev := <-r.events:
			if ev.Err != nil {
				t.Errorf("event after the overrun notice: %v", ev.Err)
			}
			delivered++
		case <-time.After(2 * time.Second):
			break drain
		}
	}
	if delivered >= writes+1 {
		t.Errorf("%d events delivered after the overrun, want fewer than the %d sent", delivered, writes+1)
	}
	t.Logf("%d of %d events queued before the overrun were delivered", delivered, writes+1)

	// The socket still works.
	if err := writeFile(filepath.Join(dev, "attrib/dev_size"), "8388608")(); err != nil {
		t.Fatalf("write dev_size: %v", err)
	}
	ev := nextFor(t, r, prefix)
	if ev.Err != nil || ev.Cmd != CmdReconfigDevice || ev.Size == nil || *ev.Size != 8388608 {
		t.Errorf("event after recovery = %+v, want RECONFIG dev_size 8388608", ev)
	}
}
