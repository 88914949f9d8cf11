package handler

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// cAnswerBackend answers every read and write the handler marks (IO.Fast)
// from C, through uiotest.AnswerFromC on a goroutine of its own, as the rbd
// backend does on librbd's thread, and hands the IO back lazily: when the
// next command is submitted (the loop woke for it) or at once while
// WakeOnAnswer is on. The data lives in a byte slice.
type cAnswerBackend struct {
	t    *testing.T
	data []byte
	// failWrites fails every write with EIO through Done (the Go path).
	failWrites bool

	mu       sync.Mutex
	lazy     []*IO
	wake     int
	answered atomic.Int64 // answered from C
	done     atomic.Int64 // completed through Done
}

func (b *cAnswerBackend) Limits() Limits { return Limits{StableWrites: true} }
func (b *cAnswerBackend) Close() error   { return nil }

func (b *cAnswerBackend) WakeOnAnswer(on bool) {
	b.mu.Lock()
	if on {
		b.wake++
	} else {
		b.wake--
	}
	b.mu.Unlock()
	if on {
		b.settle()
	}
}

// settle hands over the IOs answered in C.
func (b *cAnswerBackend) settle() {
	b.mu.Lock()
	lazy := b.lazy
	b.lazy = nil
	b.mu.Unlock()
	for _, io := range lazy {
		io.Answered(time.Now())
	}
}

func (b *cAnswerBackend) Submit(io *IO) {
	b.settle()
	var err error
	switch {
	case io.Op == OpWrite && b.failWrites:
		err = fmt.Errorf("write: %w", syscall.EIO)
	case io.Op == OpRead:
		off := io.Off
		for _, v := range io.Iov {
			off += int64(copy(v, b.data[off:]))
		}
	case io.Op == OpWrite:
		off := io.Off
		for _, v := range io.Iov {
			off += int64(copy(b.data[off:], v))
		}
	}
	if io.Fast.Ring == nil || err != nil {
		b.done.Add(1)
		go io.Done(err)
		return
	}
	fa := io.Fast
	go func() {
		if rc := uiotest.AnswerFromC(fa); rc != 1 {
			b.t.Errorf("AnswerFromC(cmd_id %d) = %d, want 1 (written)", fa.ID, rc)
		}
		b.answered.Add(1)
		b.mu.Lock()
		b.lazy = append(b.lazy, io)
		now := b.wake > 0
		b.mu.Unlock()
		if now {
			b.settle()
		}
	}()
}

// serveAnswering runs a device over a fake kernel whose doorbell fd is a
// pipe, so that AnswerFromC's doorbell reaches it, and returns the kernel
// and the device.
func serveAnswering(t *testing.T, be Backend) (*uiotest.Kernel, *Device) {
	t.Helper()
	k := uiotest.New(t, uiotest.Config{DoorbellFD: true})
	info := DeviceInfo{Name: "answer", Size: 1 << 20, BlockSize: 512, MaxSectors: 128}
	d, err := newDevice(zerolog.New(zerolog.NewTestWriter(t)), info, k.Ring(), k, be, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return k, d
}

func rw16(op byte, lba uint64, blocks uint32) []byte {
	c := make([]byte, 16)
	c[0] = op
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], blocks)
	return c
}

// TestCommandsAnsweredFromC: reads and writes a backend answers from C
// (IO.Fast) reach the initiator GOOD with their data, each exactly once,
// through the C doorbell; the handler settles them lazily (their latency
// and count in the statistics, the in-flight count), and a device waiting
// for its IO to drain is not left waiting for the loop's next wake-up.
// A write the backend fails goes the Go way, CHECK CONDITION, and the
// reads beside it still come from C.
func TestCommandsAnsweredFromC(t *testing.T) {
	for _, failWrites := range []bool{false, true} {
		t.Run(fmt.Sprintf("failWrites=%v", failWrites), func(t *testing.T) {
			be := &cAnswerBackend{t: t, data: make([]byte, 1<<20), failWrites: failWrites}
			k, d := serveAnswering(t, be)
			const (
				n     = 400
				depth = 8
				bs    = 512
			)
			// depth workers, each with its own lane of the device, so that
			// the model is exact with commands in flight together.
			model := make([]byte, len(be.data))
			lane := len(model) / depth
			var wg sync.WaitGroup
			var reads, writes, goodWrites atomic.Int64
			go func() {
				for c := range k.Completions() {
					c.Tag.(chan uiotest.Completion) <- c
				}
			}()
			for w := range depth {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 2))
					for i := range n / depth {
						blocks := uint32(1 + rng.IntN(8))
						off := w*lane + rng.IntN(lane/bs-8)*bs
						lba := uint64(off / bs)
						write := rng.IntN(2) == 0
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						ch := make(chan uiotest.Completion, 1)
						req := uiotest.Request{Tag: ch}
						var data []byte
						if write {
							data = bytes.Repeat([]byte{byte(i), byte(w)}, int(blocks)*bs/2)
							req.CDB, req.DataOut = rw16(0x8a, lba, blocks), data
						} else {
							req.CDB, req.DataInLen = rw16(0x88, lba, blocks), int(blocks)*bs
						}
						if _, err := k.SubmitWait(ctx, req); err != nil {
							t.Error(err)
							cancel()
							return
						}
						var c uiotest.Completion
						select {
						case c = <-ch:
						case <-ctx.Done():
							t.Errorf("worker %d command %d (write %v): no completion", w, i, write)
							cancel()
							return
						}
						cancel()
						switch {
						case write && failWrites:
							writes.Add(1)
							if c.Status != 0x02 {
								t.Errorf("failed write: status %#x, want CHECK CONDITION", c.Status)
							}
						case write:
							writes.Add(1)
							goodWrites.Add(1)
							if c.Status != 0 {
								t.Errorf("write: status %#x, want GOOD", c.Status)
							}
							copy(model[off:], data)
						default:
							reads.Add(1)
							if c.Status != 0 || !bytes.Equal(c.DataIn, model[off:off+int(blocks)*bs]) {
								t.Errorf("read of %d blocks at %d: status %#x, data as written: %v", blocks, lba, c.Status,
									bytes.Equal(c.DataIn, model[off:off+int(blocks)*bs]))
							}
						}
					}
				}()
			}
			wg.Wait()
			// Everything is answered; the last answers may still wait to
			// be settled. WaitIdle must not wait for the loop's wake-up.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := d.WaitIdle(ctx); err != nil {
				t.Fatalf("WaitIdle with %d in flight: %v", d.InFlight(), err)
			}
			fromC := reads.Load() + goodWrites.Load()
			if got := be.answered.Load(); got != fromC {
				t.Errorf("%d commands answered from C, want %d (every read and good write)", got, fromC)
			}
			if failWrites && be.done.Load() < writes.Load() {
				t.Errorf("%d IOs through Done, want at least the %d failed writes", be.done.Load(), writes.Load())
			}
			s := d.snapshot()
			if got, want := s.Classes[ClassRead].Ops, uint64(reads.Load()); got != want {
				t.Errorf("read ops %d, want %d", got, want)
			}
			if got, want := s.Classes[ClassWrite].Ops, uint64(writes.Load()); got != want {
				t.Errorf("write ops %d, want %d", got, want)
			}
			if s.RingOutstanding != 0 {
				t.Errorf("%d commands outstanding in the ring", s.RingOutstanding)
			}
			if st := k.Stats(); st.Doorbells == 0 {
				t.Error("the fake kernel heard no doorbell")
			}
		})
	}
}

// A command whose FastAnswer comes from before a ring reset is dropped:
// nothing is written, the ring is not broken.
func TestAnswerFromCAfterResetIsDropped(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{DoorbellFD: true})
	if _, err := k.Submit(uiotest.Request{CDB: turCDB}); err != nil {
		t.Fatal(err)
	}
	r := k.Ring()
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	c := uio.NewCommand()
	if ok, err := r.Next(c); !ok || err != nil {
		t.Fatalf("Next: %v %v", ok, err)
	}
	fa := r.FastAnswer(c)
	r.Reset()
	if rc := uiotest.AnswerFromC(fa); rc != 0 {
		t.Fatalf("AnswerFromC after Reset = %d, want 0 (dropped)", rc)
	}
	if r.Outstanding() != 0 {
		t.Fatalf("outstanding %d after Reset", r.Outstanding())
	}
	// Answered twice: the second is dropped too.
	fa2 := fa
	fa2.Gen++
	if rc := uiotest.AnswerFromC(fa2); rc != 0 {
		t.Fatalf("AnswerFromC of a cmd_id not taken = %d, want 0", rc)
	}
}
