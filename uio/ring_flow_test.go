package uio_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// TestFullRing fills the command ring with no handler running, then
// checks that a waiting submitter gets in once completions free space.
func TestFullRing(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{RingSize: 1024})
	var ids []uint16
	for {
		id, err := k.Submit(uiotest.Request{CDB: testUnitReady})
		if errors.Is(err, uiotest.ErrRingFull) {
			break
		}
		if err != nil {
			t.Fatalf("Submit: %v", err)
		}
		ids = append(ids, id)
	}
	// 120-byte entries, one byte of the ring always kept free: 8 fit.
	if len(ids) != 8 {
		t.Fatalf("%d entries fit in a 1024-byte ring, want 8", len(ids))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	submitted := make(chan error, 1)
	go func() {
		_, err := k.SubmitWait(ctx, uiotest.Request{CDB: testUnitReady, Tag: "late"})
		submitted <- err
	}()
	select {
	case err := <-submitted:
		t.Fatalf("SubmitWait returned %v with the ring full", err)
	case <-time.After(20 * time.Millisecond):
	}

	cmds := fetch(t, k, len(ids))
	// Head is 64 bytes from the end: the next entry needs a PAD as well,
	// 184 bytes, and one completion frees only 120 (183 usable).
	complete(t, k.Ring(), cmds[0])
	select {
	case err := <-submitted:
		t.Fatalf("SubmitWait returned %v with 183 bytes free for 184", err)
	case <-time.After(20 * time.Millisecond):
	}
	complete(t, k.Ring(), cmds[1])
	if err := <-submitted; err != nil {
		t.Fatalf("SubmitWait after two completions: %v", err)
	}
	if st := k.Stats(); st.Pads != 1 {
		t.Errorf("%d PAD entries, want 1", st.Pads)
	}
	for _, c := range cmds[2:] {
		complete(t, k.Ring(), c)
	}
	late := fetch(t, k, 1)[0]
	complete(t, k.Ring(), late)
	got := 0
	for got < len(ids)+1 {
		c := nextCompletion(t, k)
		if c.Status != statusGood {
			t.Fatalf("completion %+v", c)
		}
		got++
	}
	if !k.Ring().Idle() {
		t.Error("ring not idle")
	}
}

func TestFullDataArea(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{DataSize: 8 * 4096})
	req := uiotest.Request{CDB: read10(0, 4), DataInLen: 4 * 4096}
	submit(t, k, req)
	submit(t, k, req)
	if _, err := k.Submit(req); !errors.Is(err, uiotest.ErrDataFull) {
		t.Fatalf("third 16 KiB read in a 32 KiB data area: %v, want ErrDataFull", err)
	}
	if _, err := k.Submit(uiotest.Request{CDB: read10(0, 9), DataInLen: 9 * 4096}); !errors.Is(err, uiotest.ErrTooBig) {
		t.Fatalf("read larger than the data area: %v, want ErrTooBig", err)
	}
	cmds := fetch(t, k, 2)
	complete(t, k.Ring(), cmds[1])
	submit(t, k, req)
	complete(t, k.Ring(), cmds[0])
	complete(t, k.Ring(), fetch(t, k, 1)[0])
	for range 3 {
		if c := nextCompletion(t, k); c.Status != statusGood || len(c.DataIn) != 4*4096 {
			t.Fatalf("completion %+v", c)
		}
	}
}

// TestResetWithCommandsInFlight resets the ring while the handler holds
// commands: the kernel completes them with BUSY, the handler's late
// completions are dropped, and the ring works again from offset 0.
func TestResetWithCommandsInFlight(t *testing.T) {
	for _, mode := range []uio.ResetMode{uio.ResetBusy, uio.ResetCheckCondition} {
		t.Run(map[uio.ResetMode]string{uio.ResetBusy: "busy", uio.ResetCheckCondition: "check condition"}[mode], func(t *testing.T) {
			k := uiotest.New(t, uiotest.Config{})
			r := k.Ring()
			for i := range 5 {
				submit(t, k, uiotest.Request{CDB: read10(uint32(i), 1), DataInLen: 4096, Tag: i})
			}
			cmds := fetch(t, k, 5)
			complete(t, r, cmds[2])
			if c := nextCompletion(t, k); c.Tag != 2 || c.Reset {
				t.Fatalf("completion before the reset: %+v", c)
			}

			// The device loop's order: Ring.Reset, then reset_ring.
			r.Reset()
			if err := k.ResetRing(mode); err != nil {
				t.Fatal(err)
			}
			want := map[uio.ResetMode]uint8{uio.ResetBusy: statusBusy, uio.ResetCheckCondition: statusCheckCondition}[mode]
			var tags []int
			for range 4 {
				c := nextCompletion(t, k)
				if !c.Reset || c.Status != want {
					t.Fatalf("completion by reset: %+v", c)
				}
				tags = append(tags, c.Tag.(int))
			}
			slices.Sort(tags)
			if !slices.Equal(tags, []int{0, 1, 3, 4}) {
				t.Fatalf("reset completed tags %v, want [0 1 3 4]", tags)
			}
			if r.Outstanding() != 0 || k.Outstanding() != 0 {
				t.Fatalf("outstanding after reset: ring %d, kernel %d", r.Outstanding(), k.Outstanding())
			}

			// Late completions of the old commands change nothing.
			for _, i := range []int{0, 1, 3, 4} {
				complete(t, r, cmds[i])
			}
			noCompletion(t, k)

			id := submit(t, k, uiotest.Request{CDB: read10(9, 1), DataInLen: 4096, Tag: 9})
			c := fetch(t, k, 1)[0]
			if c.ID != id || id != 1 {
				t.Fatalf("first command after reset: ring ID %d, kernel ID %d, want 1", c.ID, id)
			}
			fill(c.Iov, pattern(9, 4096))
			complete(t, r, c)
			if got := nextCompletion(t, k); got.Tag != 9 || got.Reset || got.Status != statusGood {
				t.Fatalf("completion after reset: %+v", got)
			}
			if k.Broken() {
				t.Error("kernel found the ring broken")
			}
		})
	}
}

func TestTMRIsPassedOnAndConsumed(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	r := k.Ring()
	type tmr struct {
		typ uint8
		ids []uint16
	}
	var got []tmr
	r.OnTMR = func(typ uint8, ids []uint16) { got = append(got, tmr{typ, slices.Clone(ids)}) }

	a := submit(t, k, uiotest.Request{CDB: testUnitReady})
	b := submit(t, k, uiotest.Request{CDB: testUnitReady})
	cmds := fetch(t, k, 2)
	if err := k.SubmitTMR(uio.TMRAbortTask, []uint16{b}); err != nil {
		t.Fatal(err)
	}
	if n := len(fetch(t, k, 0)); n != 0 {
		t.Fatalf("TMR entry fetched as %d commands", n)
	}
	if len(got) != 1 || got[0].typ != uio.TMRAbortTask || !slices.Equal(got[0].ids, []uint16{b}) {
		t.Fatalf("OnTMR calls %+v, want one ABORT TASK for [%d]", got, b)
	}
	// The aborted command is still answered; the TMR slot needs none.
	complete(t, r, cmds[1])
	complete(t, r, cmds[0])
	ids := []uint16{nextCompletion(t, k).ID, nextCompletion(t, k).ID}
	slices.Sort(ids)
	if !slices.Equal(ids, []uint16{a, b}) {
		t.Fatalf("completed %v, want %d and %d", ids, a, b)
	}
	if !r.Idle() {
		t.Error("ring not idle: tail stopped before the TMR entry")
	}

	// A TMR with nothing behind it is reclaimed by Release.
	if err := k.SubmitTMR(uio.TMRLUNReset, nil); err != nil {
		t.Fatal(err)
	}
	fetch(t, k, 0)
	r.Release()
	if err := r.Kick(); err != nil {
		t.Fatal(err)
	}
	if !r.Idle() || len(got) != 2 || got[1].typ != uio.TMRLUNReset || len(got[1].ids) != 0 {
		t.Fatalf("after a lone LUN RESET: idle %v, OnTMR calls %+v", r.Idle(), got)
	}
}

func TestUnknownOpcodeIsCompletedByTheRing(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	bad := submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: func(e []byte) { e[0] = e[0]&^uio.OpMask | 5 }})
	good := submit(t, k, uiotest.Request{CDB: testUnitReady})
	cmds := fetch(t, k, 1)
	if cmds[0].ID != good {
		t.Fatalf("fetched ID %d, want %d (the entry with opcode 5 is not a command)", cmds[0].ID, good)
	}
	complete(t, k.Ring(), cmds[0])
	first, second := nextCompletion(t, k), nextCompletion(t, k)
	if first.ID != bad || first.UFlags != uio.UFlagUnknownOp || first.Status != statusCheckCondition || first.Sense != nil {
		t.Errorf("unknown opcode completion %+v, want UNKNOWN_OP and CHECK CONDITION without sense", first)
	}
	if second.ID != good || second.Status != statusGood {
		t.Errorf("next completion %+v", second)
	}
}

func TestCompleteTwiceOrUnfetchedDoesNothing(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	r := k.Ring()
	submit(t, k, uiotest.Request{CDB: testUnitReady})
	submit(t, k, uiotest.Request{CDB: testUnitReady})
	cmds := fetch(t, k, 2)

	complete(t, r, uio.NewCommand())
	noCompletion(t, k)

	complete(t, r, cmds[0])
	complete(t, r, cmds[0])
	if c := nextCompletion(t, k); c.ID != cmds[0].ID {
		t.Fatalf("completion %+v", c)
	}
	noCompletion(t, k)
	if r.Outstanding() != 1 {
		t.Fatalf("Outstanding %d, want 1", r.Outstanding())
	}
	complete(t, r, cmds[1])
	if c := nextCompletion(t, k); c.ID != cmds[1].ID {
		t.Fatalf("completion %+v", c)
	}
}

func TestQueued(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	r := k.Ring()
	if r.Queued() {
		t.Fatal("Queued on an empty ring")
	}
	submit(t, k, uiotest.Request{CDB: testUnitReady})
	if !r.Queued() {
		t.Fatal("not Queued after the kernel queued a command")
	}
	c := fetch(t, k, 1)[0]
	if r.Queued() {
		t.Error("Queued after everything was fetched")
	}
	complete(t, r, c)
	nextCompletion(t, k)
	if r.Queued() {
		t.Error("Queued after the completion")
	}
}
