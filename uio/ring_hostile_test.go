package uio_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// Offsets into a CMD entry, from the uapi header (checked in layout_test.go).
const (
	entryIovCnt     = 8
	entryIovBidiCnt = 12
	entryCdbOff     = 24
	entryIov0Base   = 48
	entryIov0Len    = 56
)

// slotStart returns the absolute offset of an entry within the map: its
// cdb_off minus where the kernel put the CDB (after 112 bytes here).
func slotStart(e []byte) uint64 { return binary.LittleEndian.Uint64(e[entryCdbOff:]) - 112 }

// TestHostileEntry corrupts one command entry at a time. The ring must
// hand the command out with Err set and untouched buffers, the handler
// answers it, and the command behind it is served normally.
func TestHostileEntry(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name    string
		corrupt func(k *uiotest.Kernel) func(e []byte)
		want    error
	}{
		{"cdb_off before the entry", func(*uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint64(e[entryCdbOff:], 0) }
		}, uio.ErrBadCDB},
		{"cdb_off in the entry header", func(*uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint64(e[entryCdbOff:], slotStart(e)+8) }
		}, uio.ErrBadCDB},
		{"cdb_off past the entry", func(*uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint64(e[entryCdbOff:], slotStart(e)+uint64(len(e))) }
		}, uio.ErrBadCDB},
		{"cdb running past the entry", func(*uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint64(e[entryCdbOff:], slotStart(e)+uint64(len(e))-4) }
		}, uio.ErrBadCDB},
		{"cdb_off in the data area", func(k *uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint64(e[entryCdbOff:], uint64(k.DataOff())) }
		}, uio.ErrBadCDB},
		{"cdb_off near 2^64", func(*uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint64(e[entryCdbOff:], math.MaxUint64-2) }
		}, uio.ErrBadCDB},
		{"iovec outside the map", func(k *uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint64(e[entryIov0Base:], uint64(len(k.Mem()))) }
		}, uio.ErrBadIovec},
		{"iovec in the command ring", func(*uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint64(e[entryIov0Base:], 128) }
		}, uio.ErrBadIovec},
		{"iovec running past the map", func(k *uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint64(e[entryIov0Len:], uint64(len(k.Mem()))) }
		}, uio.ErrBadIovec},
		{"iovec length wrapping around", func(k *uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint64(e[entryIov0Len:], math.MaxUint64) }
		}, uio.ErrBadIovec},
		{"huge iov_cnt", func(*uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint32(e[entryIovCnt:], math.MaxUint32) }
		}, uio.ErrBadIovCnt},
		{"huge iov_bidi_cnt", func(*uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint32(e[entryIovBidiCnt:], math.MaxUint32) }
		}, uio.ErrBadIovCnt},
		{"iov_cnt one past the entry", func(*uiotest.Kernel) func([]byte) {
			return func(e []byte) { le.PutUint32(e[entryIovCnt:], uint32(len(e)-48)/16+1) }
		}, uio.ErrBadIovCnt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := uiotest.New(t, uiotest.Config{})
			r := k.Ring()
			bad := submit(t, k, uiotest.Request{CDB: read10(0, 1), DataInLen: 4096, Corrupt: tt.corrupt(k)})
			good := submit(t, k, uiotest.Request{CDB: read10(1, 1), DataInLen: 4096})
			cmds := fetch(t, k, 2)
			if cmds[0].ID != bad || !errors.Is(cmds[0].Err, tt.want) {
				t.Fatalf("hostile entry: ID %d Err %v, want ID %d Err %v", cmds[0].ID, cmds[0].Err, bad, tt.want)
			}
			if len(cmds[0].Iov) != 0 || len(cmds[0].BidiIov) != 0 {
				t.Errorf("hostile entry handed out buffers: %d + %d", len(cmds[0].Iov), len(cmds[0].BidiIov))
			}
			if cmds[1].ID != good || cmds[1].Err != nil {
				t.Fatalf("command behind it: ID %d Err %v", cmds[1].ID, cmds[1].Err)
			}
			cmds[0].Status = statusCheckCondition
			fill(cmds[1].Iov, pattern(1, 4096))
			complete(t, r, cmds[1])
			complete(t, r, cmds[0])
			for range 2 {
				c := nextCompletion(t, k)
				switch c.ID {
				case bad:
					if c.Status != statusCheckCondition {
						t.Errorf("hostile command answered with %#x", c.Status)
					}
				case good:
					if c.Status != statusGood || string(c.DataIn) != string(pattern(1, 4096)) {
						t.Errorf("good command: %+v", c)
					}
				}
			}
			if !r.Idle() {
				t.Error("ring not idle")
			}
		})
	}
}

// TestBrokenRing breaks the ring's structure. Refresh or Next must say
// ErrBrokenRing without panicking, and after Ring.Reset and reset_ring the
// next command works.
func TestBrokenRing(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name      string
		breakRing func(t *testing.T, k *uiotest.Kernel)
	}{
		{"zero length in len_op", func(t *testing.T, k *uiotest.Kernel) {
			submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: func(e []byte) { le.PutUint32(e, uio.OpCmd) }})
		}},
		{"zero length PAD", func(t *testing.T, k *uiotest.Kernel) {
			submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: func(e []byte) { le.PutUint32(e, uio.OpPad) }})
		}},
		{"entry longer than what is queued", func(t *testing.T, k *uiotest.Kernel) {
			submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: func(e []byte) { le.PutUint32(e, uint32(len(e)+8)|uio.OpCmd) }})
		}},
		{"entry longer than the ring", func(t *testing.T, k *uiotest.Kernel) {
			submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: func(e []byte) { le.PutUint32(e, 0xfffffff8|uio.OpCmd) }})
		}},
		{"cmd_head past the ring", func(t *testing.T, k *uiotest.Kernel) {
			k.SetHead(k.RingSize())
		}},
		{"cmd_head far past the ring", func(t *testing.T, k *uiotest.Kernel) {
			k.SetHead(math.MaxUint32 &^ 7)
		}},
		{"cmd_head not 8-byte aligned", func(t *testing.T, k *uiotest.Kernel) {
			k.SetHead(4)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := uiotest.New(t, uiotest.Config{})
			r := k.Ring()
			tt.breakRing(t, k)
			k.Notify()
			if err := drainErr(t, k); !errors.Is(err, uio.ErrBrokenRing) {
				t.Fatalf("draining a broken ring: %v, want ErrBrokenRing", err)
			}
			repairAndCheck(t, k)
			if r.Outstanding() != 0 {
				t.Errorf("Outstanding %d after reset", r.Outstanding())
			}
		})
	}
}

// TestHeadMovedBack is a reset_ring issued behind the ring's back: the
// kernel's head is now behind commands already fetched.
func TestHeadMovedBack(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	submit(t, k, uiotest.Request{CDB: testUnitReady})
	submit(t, k, uiotest.Request{CDB: testUnitReady})
	fetch(t, k, 2)
	k.SetHead(0)
	k.Notify()
	if err := drainErr(t, k); !errors.Is(err, uio.ErrBrokenRing) {
		t.Fatalf("head moved behind fetched commands: %v, want ErrBrokenRing", err)
	}
	repairAndCheck(t, k)
}

// TestHeaderRewrittenAfterFetch changes a fetched entry's len_op before
// its command completes: Complete must not follow it, and the ring
// reports itself broken.
func TestHeaderRewrittenAfterFetch(t *testing.T) {
	for _, lenOp := range []uint32{uio.OpCmd, uio.OpPad, 0xfffffff8 | uio.OpCmd, 8 | uio.OpTMR} {
		k := uiotest.New(t, uiotest.Config{})
		r := k.Ring()
		var slot []byte
		submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: func(e []byte) { slot = e }})
		c := fetch(t, k, 1)[0]
		binary.LittleEndian.PutUint32(slot, lenOp)
		r.Complete(c)
		if err := r.Kick(); err != nil {
			t.Fatal(err)
		}
		noCompletion(t, k)
		k.Notify()
		if err := drainErr(t, k); !errors.Is(err, uio.ErrBrokenRing) {
			t.Fatalf("len_op %#x: drain after a rewritten header: %v, want ErrBrokenRing", lenOp, err)
		}
		r.Reset()
		if err := k.ResetRing(uio.ResetBusy); err != nil {
			t.Fatal(err)
		}
		nextCompletion(t, k) // the command, failed by the reset
		repairAndCheck(t, k)
	}
}

// drainErr runs one device-loop pass and returns its error.
func drainErr(t *testing.T, k *uiotest.Kernel) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if err := k.Ring().Refresh(); err != nil {
		return err
	}
	for {
		ok, err := k.Ring().Next(uio.NewCommand())
		if err != nil || !ok {
			return err
		}
	}
}

// repairAndCheck resets the ring the device loop's way and checks that
// a command then goes through.
func repairAndCheck(t *testing.T, k *uiotest.Kernel) {
	t.Helper()
	r := k.Ring()
	queued := k.Outstanding()
	r.Reset()
	if err := k.ResetRing(uio.ResetBusy); err != nil {
		t.Fatal(err)
	}
	for range queued {
		if c := nextCompletion(t, k); !c.Reset {
			t.Fatalf("completion not from the reset: %+v", c)
		}
	}
	id := submit(t, k, uiotest.Request{CDB: read10(7, 1), DataInLen: 4096})
	c := fetch(t, k, 1)[0]
	if c.ID != id || c.Err != nil {
		t.Fatalf("after reset: ID %d Err %v, want ID %d", c.ID, c.Err, id)
	}
	fill(c.Iov, pattern(7, 4096))
	complete(t, r, c)
	if got := nextCompletion(t, k); got.ID != id || got.Status != statusGood || got.Reset {
		t.Fatalf("after reset: completion %+v", got)
	}
}

// TestCmdIDChangedAfterTakeAhead: Next takes the cmd_ids of every queued
// command in one call; a slot whose cmd_id changes before Next hands its
// command out is corrupt, and so is a batch that names one id twice.
func TestCmdIDChangedAfterTakeAhead(t *testing.T) {
	t.Run("changed before it was handed out", func(t *testing.T) {
		k := uiotest.New(t, uiotest.Config{})
		var second []byte
		submit(t, k, uiotest.Request{CDB: testUnitReady})
		submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: func(e []byte) { second = e }})
		k.Notify()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := k.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		r := k.Ring()
		if err := r.Refresh(); err != nil {
			t.Fatal(err)
		}
		if ok, err := r.Next(uio.NewCommand()); !ok || err != nil {
			t.Fatalf("first command: %v %v", ok, err)
		}
		if got := r.Outstanding(); got != 2 {
			t.Errorf("Outstanding %d after the first Next, want 2 (both taken at once)", got)
		}
		binary.LittleEndian.PutUint16(second[4:], 999)
		if _, err := r.Next(uio.NewCommand()); !errors.Is(err, uio.ErrBrokenRing) {
			t.Fatalf("second command after its cmd_id changed: %v, want ErrBrokenRing", err)
		}
		repairAndCheck(t, k)
	})
	t.Run("one id twice in a batch", func(t *testing.T) {
		k := uiotest.New(t, uiotest.Config{})
		var first []byte
		submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: func(e []byte) { first = e }})
		submit(t, k, uiotest.Request{CDB: testUnitReady, Corrupt: func(e []byte) {
			copy(e[4:6], first[4:6])
		}})
		k.Notify()
		if err := drainErr(t, k); !errors.Is(err, uio.ErrBrokenRing) {
			t.Fatalf("two entries with one cmd_id: %v, want ErrBrokenRing", err)
		}
		if got := k.Ring().Outstanding(); got != 0 {
			t.Errorf("Outstanding %d after a refused batch, want 0 (none of it taken)", got)
		}
		repairAndCheck(t, k)
	})
}
