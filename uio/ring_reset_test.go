package uio_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// setID rewrites the cmd_id of a laid-out entry, as a corrupted ring would.
func setID(id uint16) func(e []byte) {
	return func(e []byte) { binary.LittleEndian.PutUint16(e[4:], id) }
}

// TestCmdIDTheKernelHolds feeds entries whose cmd_id the kernel cannot
// have issued at that moment. Serving one would make the kernel look its
// id up twice (or never), find it gone and mark its ring broken, so the
// ring must refuse it as broken instead; reset_ring then fails the real
// commands with BUSY and the next command is served.
func TestCmdIDTheKernelHolds(t *testing.T) {
	tests := []struct {
		name string
		// run queues the hostile entry and whatever precedes it, and
		// returns how many commands the handler answered before it.
		run func(t *testing.T, k *uiotest.Kernel) int
	}{
		{"id of a command still outstanding", func(t *testing.T, k *uiotest.Kernel) int {
			first := submit(t, k, uiotest.Request{CDB: testUnitReady})
			fetch(t, k, 1)
			submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: setID(first)})
			return 0
		}},
		{"cmd_id 0", func(t *testing.T, k *uiotest.Kernel) int {
			submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: setID(0)})
			return 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := uiotest.New(t, uiotest.Config{})
			r := k.Ring()
			answered := tt.run(t, k)
			if err := drainErr(t, k); !errors.Is(err, uio.ErrBrokenRing) {
				t.Fatalf("hostile cmd_id: %v, want ErrBrokenRing", err)
			}
			if err := r.Kick(); err != nil {
				t.Fatal(err)
			}
			for range answered {
				if c := nextCompletion(t, k); c.Reset || c.Status != statusGood {
					t.Fatalf("answered command: %+v", c)
				}
			}
			repairAndCheck(t, k)
			if k.Broken() {
				t.Error("the fake kernel found its ring broken")
			}
		})
	}
}

// TestCmdIDReusedBeforeDoorbell: the kernel reads completions without our
// doorbell too (block_dev, the unmap worker and command timeouts run
// tcmu_handle_completions), so a cmd_id is free as soon as its completion
// is in the ring, and the kernel may give it to the next command before we
// ring. Refusing it broke the ring in the VM under iscsi-test-cu.
func TestCmdIDReusedBeforeDoorbell(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	r := k.Ring()
	first := submit(t, k, uiotest.Request{CDB: testUnitReady})
	r.Complete(fetch(t, k, 1)[0]) // no Kick
	submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: setID(first)})
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	c := uio.NewCommand()
	ok, err := r.Next(c)
	if err != nil || !ok || c.ID != first {
		t.Fatalf("Next = %v, %v, id %d; want the reused id %d served", ok, err, c.ID, first)
	}
}

// TestCmdIDReusedAfterDoorbell: once the doorbell has handed a completion
// to the kernel, its cmd_id is free and the kernel gives it to the next
// command (the fake, like the kernel's xa_alloc, takes the lowest free
// id). That is no corruption.
func TestCmdIDReusedAfterDoorbell(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	r := k.Ring()
	var ids []uint16
	for i := range 3 {
		id := submit(t, k, uiotest.Request{CDB: read10(uint32(i), 1), DataInLen: 4096})
		c := fetch(t, k, 1)[0]
		if c.ID != id || c.Err != nil {
			t.Fatalf("command %d: ID %d Err %v, want ID %d", i, c.ID, c.Err, id)
		}
		complete(t, r, c)
		nextCompletion(t, k)
		ids = append(ids, id)
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("the fake issued ids %v; this test needs it to reuse one", ids)
	}
}

// TestResetBehindTheHandlersBack is action/reset_ring written by someone
// else while commands are fetched and unanswered, and new commands queued
// after it reach further into the ring than the handler had fetched. The
// ring must notice (cmd_tail is no longer what it stored), write nothing
// into slots that now belong to new commands, and work again after its own
// reset.
func TestResetBehindTheHandlersBack(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	r := k.Ring()
	// Move the tail away from 0, so a reset is visible in it.
	for i := range 3 {
		submit(t, k, uiotest.Request{CDB: read10(uint32(i), 1), DataInLen: 4096})
		complete(t, r, fetch(t, k, 1)[0])
		nextCompletion(t, k)
	}
	submit(t, k, uiotest.Request{CDB: testUnitReady})
	stale := fetch(t, k, 1)[0]

	if err := k.ResetRing(uio.ResetBusy); err != nil {
		t.Fatal(err)
	}
	if c := nextCompletion(t, k); !c.Reset || c.ID != stale.ID {
		t.Fatalf("reset completion %+v, want cmd %d failed BUSY by the reset", c, stale.ID)
	}
	for i := range 8 {
		submit(t, k, uiotest.Request{CDB: read10(uint32(10+i), 1), DataInLen: 4096})
	}
	// The answer to the command from before the reset must not land in
	// the slot now holding a new command.
	complete(t, r, stale)
	noCompletion(t, k)
	if err := drainErr(t, k); !errors.Is(err, uio.ErrBrokenRing) {
		t.Fatalf("after a reset behind the handler's back: %v, want ErrBrokenRing", err)
	}
	if k.Broken() {
		t.Fatal("the fake kernel found its ring broken")
	}
	repairAndCheck(t, k)
}
