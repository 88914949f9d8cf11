//go:build !nautilus

package rbd

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"

	"github.com/gotcmu/gotcmu/handler"
)

// onBlocklist reports whether addr (a client address as rados_getaddrs
// gives it) is on the OSD blocklist.
func onBlocklist(t *testing.T, admin *rados.Conn, addr string) bool {
	t.Helper()
	var entries []struct {
		Addr string `json:"addr"`
	}
	if err := monCommand(admin, map[string]any{"prefix": "osd blocklist ls"}, &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Addr != "" && strings.Contains(addr, e.Addr) {
			return true
		}
	}
	return false
}

// Two gateways on one image, through the Locker interface the lock gate
// uses: taking the lock fences the owner, whose Reopen gives it a fresh
// client that can read but can write only by taking the lock back.
func TestLockerReopenAfterFencing(t *testing.T) {
	admin := needCeph(t)
	const size = 8 << 20
	name := newImage(t, "rbd", size, 22)
	a := openDevice(t, Handler(Options{Host: "gwa"}), "rbd/"+name, size)
	b := openDevice(t, Handler(Options{Host: "gwb"}), "rbd/"+name, size)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if err := a.AcquireLock(ctx); err != nil {
		t.Fatalf("A AcquireLock: %v", err)
	}
	addrA, err := a.ClientAddress()
	if err != nil {
		t.Fatal(err)
	}
	if owner, err := a.LockOwner(); err != nil || owner == "" || !strings.Contains(addrA, owner) {
		t.Fatalf("LockOwner = %q, %v; want A's address %s", owner, err, addrA)
	}
	if _, err := do(a, handler.OpWrite, 0, 4096, false, fill(mmapBuf(t, 4096), 'A')); err != nil {
		t.Fatalf("write through A: %v", err)
	}

	if err := b.AcquireLock(ctx); err != nil {
		t.Fatalf("B AcquireLock: %v", err)
	}
	if own, err := b.IsLockOwner(); err != nil || !own {
		t.Fatalf("B IsLockOwner = %v, %v", own, err)
	}
	if _, err := do(b, handler.OpWrite, 0, 4096, false, fill(mmapBuf(t, 4096), 'B')); err != nil {
		t.Fatalf("write through B: %v", err)
	}
	if _, err := do(a, handler.OpWrite, 0, 4096, false, fill(mmapBuf(t, 4096), 'X')); !errors.Is(err, syscall.ESHUTDOWN) {
		t.Fatalf("write through fenced A: %v, want ESHUTDOWN", err)
	}
	if !onBlocklist(t, admin, addrA) {
		t.Fatalf("A's address %s is not on the blocklist after B took the lock", addrA)
	}
	if own, err := a.IsLockOwner(); err == nil && own {
		t.Fatal("fenced A still owns the lock")
	}

	if err := a.Reopen(ctx); err != nil {
		t.Fatalf("A Reopen: %v", err)
	}
	newA, err := a.ClientAddress()
	if err != nil || newA == addrA {
		t.Fatalf("address after Reopen %q, %v; want a new one (was %s)", newA, err, addrA)
	}
	waitFor(t, 30*time.Second, "A's old address off the blocklist once its client was shut down",
		func() bool { return !onBlocklist(t, admin, addrA) })
	if st := a.ServiceStatus(); st.LockLostCnt != 1 || st.LockOwner {
		t.Errorf("A's service status after Reopen = %+v, want the lost lock still counted", st)
	}
	// Reads need no lock.
	if got := readBack(t, a, 0, 4096); got[0] != 'B' || got[4095] != 'B' {
		t.Fatalf("A reads %q after Reopen, want B's data", got[0])
	}
	// A write without the lock is refused by librbd itself: B took the
	// lock with rbd_lock_acquire and does not give it up on request.
	if _, err := do(a, handler.OpWrite, 0, 4096, false, fill(mmapBuf(t, 4096), 'Y')); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write through A without the lock after Reopen: %v, want EROFS", err)
	}
	if got := readBack(t, b, 0, 4096); got[0] != 'B' {
		t.Fatalf("image holds %q, want B's data", got[0])
	}

	// The same protocol gives the lock back to A and fences B.
	addrB, _ := b.ClientAddress()
	if err := a.AcquireLock(ctx); err != nil {
		t.Fatalf("A AcquireLock again: %v", err)
	}
	if _, err := do(a, handler.OpWrite, 0, 4096, false, fill(mmapBuf(t, 4096), 'C')); err != nil {
		t.Fatalf("write through A after taking the lock back: %v", err)
	}
	if _, err := do(b, handler.OpWrite, 0, 4096, false, fill(mmapBuf(t, 4096), 'Z')); !errors.Is(err, syscall.ESHUTDOWN) {
		t.Fatalf("write through fenced B: %v, want ESHUTDOWN", err)
	}
	if !onBlocklist(t, admin, addrB) {
		t.Errorf("B's address %s is not on the blocklist", addrB)
	}
	if got := readBack(t, a, 0, 4096); got[0] != 'C' {
		t.Fatalf("image holds %q, want A's last data", got[0])
	}
}

// Reopen while IO is submitted: it waits for what is in flight and fails
// what arrives meanwhile with ESHUTDOWN; the image serves IO afterwards.
func TestLockerReopenUnderIO(t *testing.T) {
	needCeph(t)
	const size = 8 << 20
	name := newImage(t, "rbd", size, 22)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := im.AcquireLock(ctx); err != nil {
		t.Fatal(err)
	}
	const workers = 8
	stop := make(chan struct{})
	errs := make(chan error, workers)
	for w := range workers {
		buf := fill(mmapBuf(t, 4096), byte('a'+w))
		go func() {
			var bad error
			for {
				select {
				case <-stop:
					errs <- bad
					return
				default:
				}
				_, err := do(im, handler.OpWrite, int64(w)*4096, 4096, false, buf)
				// A write may need the lock the reopen gave up.
				if err != nil && !errors.Is(err, syscall.ESHUTDOWN) && !errors.Is(err, syscall.EROFS) && bad == nil {
					bad = err
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if err := im.Reopen(ctx); err != nil {
		t.Fatalf("Reopen under IO: %v", err)
	}
	close(stop)
	for range workers {
		if err := <-errs; err != nil {
			t.Errorf("write during Reopen: %v, want success, ESHUTDOWN or EROFS", err)
		}
	}
	if err := im.AcquireLock(ctx); err != nil {
		t.Fatalf("AcquireLock after Reopen: %v", err)
	}
	if _, err := do(im, handler.OpWrite, 0, 4096, false, fill(mmapBuf(t, 4096), 'z')); err != nil {
		t.Fatalf("write after Reopen: %v", err)
	}
	if got := readBack(t, im, 0, 4096); got[0] != 'z' {
		t.Fatalf("read %q after Reopen, want z", got[0])
	}
	if err := im.Close(); err != nil {
		t.Errorf("Close after Reopen: %v", err)
	}
}
