package uio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	testRingSize = 4096
	testDataSize = 8192
	testMapSize  = MailboxSize + testRingSize + testDataSize
)

// putMailbox writes a mailbox as tcmu_configure_device does.
func putMailbox(mem []byte, ringSize uint32) {
	le := binary.LittleEndian
	le.PutUint16(mem[mbVersionOff:], MailboxVersion)
	le.PutUint16(mem[mbFlagsOff:], CapOOOC|CapReadLen|CapTMR|CapKeepBuf)
	le.PutUint32(mem[mbCmdrOffOff:], MailboxSize)
	le.PutUint32(mem[mbCmdrSizeOff:], ringSize)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeUIO lays out /sys/class/uio/uio<minor> and /dev/uio<minor> under a
// temporary root. The device node is a regular file holding the map:
// mmap of a regular file is MAP_SHARED too, so everything but the uio fd's
// poll and read semantics is the real code path.
func fakeUIO(t *testing.T, minor int, name, size string, content []byte) Roots {
	t.Helper()
	root := t.TempDir()
	r := Roots{SysDir: filepath.Join(root, "sys"), DevDir: filepath.Join(root, "dev"), ConfigDir: filepath.Join(root, "config")}
	dir := r.uioDir(minor)
	if name != "" {
		writeFile(t, filepath.Join(dir, "name"), []byte(name+"\n"))
	}
	if size != "" {
		writeFile(t, filepath.Join(dir, "maps", "map0", "size"), []byte(size+"\n"))
	}
	if content != nil {
		writeFile(t, filepath.Join(r.DevDir, "uio"+strconv.Itoa(minor)), content)
	}
	return r
}

func mapImage() []byte {
	img := make([]byte, testMapSize)
	putMailbox(img, testRingSize)
	return img
}

func TestOpen(t *testing.T) {
	const name = "tcm-user/3/disk0/file//tmp/disk0.img"
	r := fakeUIO(t, 3, name, fmt.Sprintf("0x%016x", testMapSize), mapImage())
	d, err := r.Open(3)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if d.Name() != name || d.Minor() != 3 {
		t.Errorf("Name %q Minor %d", d.Name(), d.Minor())
	}
	if off, n := d.Ring().DataArea(); d.Ring().Size() != testRingSize || off != MailboxSize+testRingSize || n != testDataSize {
		t.Errorf("ring size %d, data area %d+%d", d.Ring().Size(), off, n)
	}
	// The mapping is shared with the file: what the ring side writes is
	// what the kernel side sees.
	d.mem[MailboxSize+testRingSize] = 0xaa
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	img, err := os.ReadFile(filepath.Join(r.DevDir, "uio3"))
	if err != nil {
		t.Fatal(err)
	}
	if img[MailboxSize+testRingSize] != 0xaa {
		t.Error("a write to the map did not reach the device")
	}
	if err := d.Wait(context.Background()); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Wait after Close: %v, want os.ErrClosed", err)
	}
}

func TestOpenFails(t *testing.T) {
	size := fmt.Sprintf("0x%016x", testMapSize)
	oldMailbox := mapImage()
	binary.LittleEndian.PutUint16(oldMailbox, 1)
	tests := []struct {
		name    string
		uioName string
		size    string
		content []byte
		minor   int
		want    error
	}{
		{"negative minor", "tcm-user/1/d", size, mapImage(), -1, nil},
		{"no such device", "", "", nil, 0, os.ErrNotExist},
		{"no map size", "tcm-user/1/d", "", mapImage(), 0, os.ErrNotExist},
		{"map size not a number", "tcm-user/1/d", "lots", mapImage(), 0, strconv.ErrSyntax},
		{"map size smaller than the mailbox", "tcm-user/1/d", "0x40", mapImage(), 0, nil},
		{"map size beyond a terabyte", "tcm-user/1/d", "0x100000000000000", mapImage(), 0, nil},
		{"no device node", "tcm-user/1/d", size, nil, 0, syscall.ENOENT},
		{"mailbox version 1", "tcm-user/1/d", size, oldMailbox, 0, nil},
		{"map size attribute too long", "tcm-user/1/d", size + string(bytes.Repeat([]byte(" "), 100)), mapImage(), 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fakeUIO(t, max(tt.minor, 0), tt.uioName, tt.size, tt.content)
			d, err := r.Open(tt.minor)
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Open: %v, want %v", err, tt.want)
			}
			t.Log(err)
		})
	}
}

// socketDevice makes a Device whose fd is one end of a SOCK_SEQPACKET
// pair: pollable like a uio fd, with 4-byte messages standing for event
// counts and doorbell writes. The test holds the other end.
func socketDevice(t *testing.T) (*Device, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	mem, err := unix.Mmap(-1, 0, testMapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	putMailbox(mem, testRingSize)
	d, err := newDevice(Roots{}, 7, "tcm-user/1/sock", fds[0], mem, unix.Munmap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, fds[1]
}

func signal(t *testing.T, peer int, n int) {
	t.Helper()
	if _, err := unix.Write(peer, make([]byte, n)); err != nil {
		t.Fatalf("signal: %v", err)
	}
}

// waitAsync starts Wait and returns where its result arrives.
func waitAsync(d *Device, ctx context.Context) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- d.Wait(ctx) }()
	return ch
}

func mustBlock(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("Wait returned %v, want it blocked", err)
	case <-time.After(20 * time.Millisecond):
	}
}

func mustReturn(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return within 5s")
		return nil
	}
}

func TestWait(t *testing.T) {
	d, peer := socketDevice(t)
	ctx := context.Background()
	if err := d.Wait(ctx); err != nil {
		t.Fatalf("first Wait: %v", err)
	}

	ch := waitAsync(d, ctx)
	mustBlock(t, ch)
	signal(t, peer, 4)
	if err := mustReturn(t, ch); err != nil {
		t.Fatalf("Wait after an event: %v", err)
	}

	// Cancelling the context interrupts a blocked Wait ...
	cctx, cancel := context.WithCancel(ctx)
	ch = waitAsync(d, cctx)
	mustBlock(t, ch)
	cancel()
	if err := mustReturn(t, ch); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait across cancel: %v, want context.Canceled", err)
	}
	if err := d.Wait(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v", err)
	}
	// ... and leaves nothing behind for the next context.
	ch = waitAsync(d, ctx)
	mustBlock(t, ch)
	signal(t, peer, 4)
	if err := mustReturn(t, ch); err != nil {
		t.Fatalf("Wait after a cancelled one: %v", err)
	}

	// The doorbell is one 4-byte write.
	if err := d.doorbell(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Read(peer, buf); err != nil || n != 4 {
		t.Fatalf("doorbell wrote %d bytes (%v), want 4", n, err)
	}

	// A read of the wrong size is an error, not an event.
	signal(t, peer, 2)
	if err := d.Wait(ctx); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Wait after a 2-byte read: %v, want ErrUnexpectedEOF", err)
	}

	// Close wakes a blocked Wait.
	ch = waitAsync(d, ctx)
	mustBlock(t, ch)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mustReturn(t, ch); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Wait across Close: %v, want os.ErrClosed", err)
	}
	if err := d.doorbell(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("doorbell after Close: %v, want os.ErrClosed", err)
	}
}

func TestWaitAndDoorbellDoNotAllocate(t *testing.T) {
	d, peer := socketDevice(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.Wait(ctx)
	buf := make([]byte, 4)
	ev := make([]byte, 4)
	roundTrip := func() {
		unix.Write(peer, ev)
		if err := d.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.doorbell(); err != nil {
			t.Fatal(err)
		}
		unix.Read(peer, buf)
	}
	// The count is process-wide: take the best of three runs so that a
	// goroutine left over from another test cannot fail this one.
	allocs := min(testing.AllocsPerRun(100, roundTrip), testing.AllocsPerRun(100, roundTrip), testing.AllocsPerRun(100, roundTrip))
	if allocs != 0 {
		t.Errorf("Wait + doorbell: %v allocations, want 0", allocs)
	}
}

// TestWaitDeviceGone uses a pty master, whose reads fail with EIO once the
// slave side is closed, as a removed uio device's do.
func TestWaitDeviceGone(t *testing.T) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pty to stand in for a removed device: %v", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		t.Fatalf("pty number: %v", err)
	}
	slave, err := unix.Open("/dev/pts/"+strconv.Itoa(n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		t.Skipf("open pty slave: %v", err)
	}
	unix.Close(slave)

	mem := make([]byte, testMapSize) // Go allocations this size are 8-byte aligned
	putMailbox(mem, testRingSize)
	d, err := newDevice(Roots{}, 9, "tcm-user/1/gone", fd, mem, func([]byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Wait(context.Background())
	err = d.Wait(context.Background())
	if !errors.Is(err, ErrDeviceGone) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Wait on a removed device: %v, want ErrDeviceGone and EIO", err)
	}
}

func TestScan(t *testing.T) {
	root := t.TempDir()
	r := Roots{SysDir: root}
	class := filepath.Join(root, "class", "uio")
	for dir, name := range map[string]string{
		"uio0":   "tcm-user/0/a/file//a.img",
		"uio1":   "some other uio driver",
		"uio10":  "tcm-user/2/b",
		"uio2":   "tcm-user/1/c/rbd/pool/img",
		"uio07":  "tcm-user/9/leading zero is not a uio node",
		"uioX":   "tcm-user/9/not a uio node",
		"uio3":   "", // removed while scanning: no name file
		"other4": "tcm-user/9/not a uio node",
	} {
		if name == "" {
			if err := os.MkdirAll(filepath.Join(class, dir), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		writeFile(t, filepath.Join(class, dir, "name"), []byte(name+"\n"))
	}
	got, err := r.Scan()
	if err != nil {
		t.Fatal(err)
	}
	want := []Found{{0, "tcm-user/0/a/file//a.img"}, {2, "tcm-user/1/c/rbd/pool/img"}, {10, "tcm-user/2/b"}}
	if !slices.Equal(got, want) {
		t.Errorf("Scan = %v, want %v", got, want)
	}

	got, err = Roots{SysDir: filepath.Join(root, "nothing")}.Scan()
	if err != nil || got != nil {
		t.Errorf("Scan without /sys/class/uio = %v, %v; want nothing", got, err)
	}
}

// WaitEvents sleeps in one place for the ring and a watched fd (a
// backend's completion eventfd), and wakes on a timeout.
func TestWaitEvents(t *testing.T) {
	d, peer := socketDevice(t)
	ctx := context.Background()
	if ev, err := d.WaitEvents(ctx, -1, time.Time{}); err != nil || ev != EventRing {
		t.Fatalf("first WaitEvents = %v, %v; want EventRing", ev, err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := d.Watch(efd); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if ev, err := d.WaitEvents(ctx, 30*time.Millisecond, time.Time{}); err != nil || ev != 0 {
		t.Fatalf("WaitEvents with nothing to see = %v, %v; want 0", ev, err)
	}
	if el := time.Since(start); el < 30*time.Millisecond || el > 2*time.Second {
		t.Errorf("a 30ms timeout took %v", el)
	}
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	unix.Write(efd, one)
	if ev, err := d.WaitEvents(ctx, -1, time.Time{}); err != nil || ev != EventWatched {
		t.Fatalf("WaitEvents after a completion = %v, %v; want EventWatched", ev, err)
	}
	// Level-triggered: the caller reads the fd; until then it is seen.
	if ev, _ := d.WaitEvents(ctx, 0, time.Time{}); ev != EventWatched {
		t.Fatalf("watched fd not read: %v, want EventWatched again", ev)
	}
	var b [8]byte
	unix.Read(efd, b[:])
	signal(t, peer, 4)
	unix.Write(efd, one)
	if ev, err := d.WaitEvents(ctx, -1, time.Time{}); err != nil || ev != EventRing|EventWatched {
		t.Fatalf("WaitEvents with both = %v, %v; want both", ev, err)
	}
	unix.Read(efd, b[:])
	// The ring's event count was read: nothing is left to see.
	if ev, _ := d.WaitEvents(ctx, 0, time.Time{}); ev != 0 {
		t.Fatalf("after both were consumed: %v, want 0", ev)
	}
	if err := d.Watch(-1); err != nil {
		t.Fatal(err)
	}
	unix.Write(efd, one)
	if ev, _ := d.WaitEvents(ctx, 0, time.Time{}); ev != 0 {
		t.Fatalf("an unwatched fd woke WaitEvents: %v", ev)
	}
	ev4 := make([]byte, 4)
	allocs := testing.AllocsPerRun(100, func() {
		unix.Write(peer, ev4)
		d.WaitEvents(ctx, -1, time.Time{})
	})
	if allocs != 0 {
		t.Errorf("WaitEvents: %v allocations per call, want 0", allocs)
	}
}

// A positive timeout bounds a quiet spell, not each wait: a loop woken
// more often than timeout/2 is never woken by the timer (each of a
// gateway's busy LUNs would otherwise wake once a period for nothing), and
// once the calls stop coming, a wait returns 0 events between timeout/2
// and timeout after the last call that armed it. A negative timeout drops
// an expiry the timer had pending.
func TestWaitEventsTimeoutIsAQuietSpell(t *testing.T) {
	const timeout = 200 * time.Millisecond
	d, peer := socketDevice(t)
	ctx := context.Background()
	if ev, err := d.WaitEvents(ctx, -1, time.Time{}); err != nil || ev != EventRing {
		t.Fatalf("first WaitEvents = %v, %v; want EventRing", ev, err)
	}
	// Busy: a command every timeout/4 for 5 timeouts.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(timeout / 4)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				unix.Write(peer, []byte{0, 0, 0, 0})
			}
		}
	}()
	deadline := time.Now().Add(5 * timeout)
	rings := 0
	for time.Now().Before(deadline) {
		ev, err := d.WaitEvents(ctx, timeout, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if ev == 0 {
			t.Fatalf("the timer woke a wait that was called every %v (after %d commands)", timeout/4, rings)
		}
		rings++
	}
	close(stop)
	<-done
	for ev, _ := d.WaitEvents(ctx, 0, time.Time{}); ev != 0; ev, _ = d.WaitEvents(ctx, 0, time.Time{}) {
	}
	// Quiet: the wait returns once the timer fires, no sooner than
	// timeout/2 after this call, no later than timeout (with slack for a
	// loaded machine).
	start := time.Now()
	if ev, err := d.WaitEvents(ctx, timeout, time.Time{}); err != nil || ev != 0 {
		t.Fatalf("WaitEvents with nothing coming = %v, %v; want 0", ev, err)
	}
	if el := time.Since(start); el < timeout/2 || el > timeout+2*time.Second {
		t.Errorf("a quiet wait with a timeout of %v returned after %v", timeout, el)
	}
	// One-shot: the next call arms it again.
	start = time.Now()
	if ev, err := d.WaitEvents(ctx, timeout, time.Time{}); err != nil || ev != 0 {
		t.Fatalf("second quiet WaitEvents = %v, %v; want 0", ev, err)
	}
	if el := time.Since(start); el < timeout-10*time.Millisecond {
		t.Errorf("the re-armed timer fired after %v, want %v", el, timeout)
	}
	// Armed, then left to expire unread: a negative timeout drops it.
	signal(t, peer, 4)
	if ev, err := d.WaitEvents(ctx, timeout, time.Time{}); err != nil || ev != EventRing {
		t.Fatalf("WaitEvents with a command = %v, %v; want EventRing", ev, err)
	}
	time.Sleep(timeout + 50*time.Millisecond)
	got := make(chan Events, 1)
	go func() {
		ev, _ := d.WaitEvents(ctx, -1, time.Time{})
		got <- ev
	}()
	select {
	case ev := <-got:
		t.Fatalf("an untimed wait returned %v: the expired timer woke it", ev)
	case <-time.After(timeout):
	}
	signal(t, peer, 4)
	if ev := <-got; ev != EventRing {
		t.Fatalf("untimed wait = %v, want EventRing", ev)
	}
}
