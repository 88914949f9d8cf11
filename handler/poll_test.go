package handler_test

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/mem"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// pollBackend is a handler.Poller over memory, shaped like the rbd
// backend: Submit hands the IO to "librbd", which finishes it on a thread
// of its own and signals an eventfd; while polled the IO is delivered by
// Poll on the device's loop, otherwise by the backend itself. hold keeps
// finished IOs from being signalled, so that a test can make one batch.
type pollBackend struct {
	m   *mem.Backend
	efd int

	mu       sync.Mutex
	finished []*handler.IO
	held     bool
	polled   bool

	polls, selfDone, pollDone atomic.Int64
}

func newPollBackend(t *testing.T, size int64) *pollBackend {
	m, err := mem.New(size)
	if err != nil {
		t.Fatal(err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(efd) })
	return &pollBackend{m: m, efd: efd}
}

func (b *pollBackend) Limits() handler.Limits { return b.m.Limits() }
func (b *pollBackend) Close() error           { return nil }
func (b *pollBackend) PollFD() int            { return b.efd }

func (b *pollBackend) Submit(io *handler.IO) {
	go func() { // librbd's thread
		b.mu.Lock()
		b.finished = append(b.finished, io)
		signal := !b.held
		b.mu.Unlock()
		if signal {
			b.signal()
		}
	}()
}

func (b *pollBackend) signal() {
	b.mu.Lock()
	polled := b.polled
	var mine []*handler.IO
	if !polled {
		mine, b.finished = b.finished, nil
	}
	b.mu.Unlock()
	if polled {
		unix.Write(b.efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		return
	}
	for _, io := range mine {
		b.selfDone.Add(1)
		b.m.Submit(io)
	}
}

func (b *pollBackend) hold(on bool) {
	b.mu.Lock()
	b.held = on
	b.mu.Unlock()
	if !on {
		b.signal()
	}
}

func (b *pollBackend) SetPolled(on bool) {
	b.mu.Lock()
	b.polled = on
	b.mu.Unlock()
	if !on {
		b.signal()
	}
}

func (b *pollBackend) Poll() {
	b.polls.Add(1)
	var buf [8]byte
	unix.Read(b.efd, buf[:])
	b.mu.Lock()
	ios := b.finished
	b.finished = nil
	b.mu.Unlock()
	for _, io := range ios {
		b.pollDone.Add(1)
		b.m.Submit(io) // completes inline: Done on this goroutine
	}
}

// pollDevice runs a device over a pollBackend on the fake kernel, which
// implements handler.EventWaiter.
func pollDevice(t *testing.T, loop bool) (*uiotest.Kernel, *pollBackend) {
	const size = 8 << 20
	k := uiotest.New(t, uiotest.Config{})
	be := newPollBackend(t, size)
	info := handler.DeviceInfo{Name: t.Name(), Config: "poll/test", Size: size, BlockSize: 512, MaxSectors: 1024}
	dev, err := handler.NewDevice(zerolog.Nop(), info, k.Ring(), k, be, &staticConfig{serial: serialA})
	if err != nil {
		t.Fatal(err)
	}
	dev.SetPollLoop(loop)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- dev.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		dev.Close()
	})
	return k, be
}

// TestPolledLoop serves commands through the polled loop: every
// completion is delivered by Poll on the device's loop, none by the
// backend's own thread, and the data round-trips.
func TestPolledLoop(t *testing.T) {
	k, be := pollDevice(t, true)
	l := lun{t, k}
	for blk := range uint32(16) {
		l.write(blk, blockData(blk, 1))
	}
	for blk := range uint32(16) {
		if !bytes.Equal(l.read(blk), blockData(blk, 1)) {
			t.Fatalf("block %d: wrong data", blk)
		}
	}
	if be.selfDone.Load() != 0 || be.pollDone.Load() != 32 {
		t.Errorf("completions: %d by Poll, %d by the backend itself; want 32 and 0", be.pollDone.Load(), be.selfDone.Load())
	}
}

// TestPollLoopOff keeps the netpoller loop: the backend delivers its own
// completions and Poll is never called.
func TestPollLoopOff(t *testing.T) {
	k, be := pollDevice(t, false)
	l := lun{t, k}
	l.write(3, blockData(3, 2))
	if !bytes.Equal(l.read(3), blockData(3, 2)) {
		t.Fatal("wrong data")
	}
	if be.polls.Load() != 0 || be.selfDone.Load() != 2 {
		t.Errorf("Poll called %d times, %d completions by the backend; want 0 and 2", be.polls.Load(), be.selfDone.Load())
	}
}

// TestIdlePolledLoopSleeps: with nothing in flight the polled loop has no
// tick (hundreds of idle LUNs would each wake once a PollInterval), and an
// IO whose completion is never signalled is still delivered by the tick
// that runs while it is in flight.
func TestIdlePolledLoopSleeps(t *testing.T) {
	k, be := pollDevice(t, true)
	l := lun{t, k}
	l.write(0, blockData(0, 0)) // the loop is up, the IO settled
	waits, polls := k.Waits(), be.polls.Load()
	time.Sleep(2*handler.PollInterval + handler.PollInterval/2)
	if dw, dp := k.Waits()-waits, be.polls.Load()-polls; dw > 1 || dp > 1 {
		t.Errorf("idle for 2.5 poll intervals: %d wake-ups, %d polls; want at most 1 each (no tick)", dw, dp)
	}
	// An IO the backend finishes without signalling: only the tick, armed
	// while the IO is in flight, delivers it.
	be.hold(true)
	start := time.Now()
	l.submit(uiotest.Request{CDB: rw10(0x2a, 1), DataOut: blockData(1, 1)})
	if c := l.next(); c.Status != 0 {
		t.Fatalf("status %#x", c.Status)
	}
	if took := time.Since(start); took > 3*handler.PollInterval {
		t.Errorf("an unsignalled completion was delivered after %v; want within a poll interval or two", took)
	}
	be.mu.Lock()
	be.held = false
	be.mu.Unlock()
}

// TestBusyPolledLoopStillPolls: a device kept busy by commands (one every
// PollInterval/4, never a quiet spell) is not woken by its timer, yet it
// still polls at least every PollInterval while an IO is in flight: an
// IO whose completion is never signalled (as one answered in C, or a
// stuck one for the sweep) is delivered by the wake-up of a later command.
func TestBusyPolledLoopStillPolls(t *testing.T) {
	k, be := pollDevice(t, true)
	l := lun{t, k}
	l.write(0, blockData(0, 0)) // the loop is up, the IO settled
	be.hold(true)
	wid := l.submit(uiotest.Request{CDB: rw10(0x2a, 1), DataOut: blockData(1, 1)})
	start := time.Now()
	for time.Since(start) < 3*handler.PollInterval {
		time.Sleep(handler.PollInterval / 4)
		id := l.submit(uiotest.Request{CDB: make([]byte, 6)}) // TEST UNIT READY
		for {
			c := l.next()
			if c.Status != 0 {
				t.Fatalf("status %#x", c.Status)
			}
			if c.ID == wid {
				t.Logf("the unsignalled write was delivered after %v", time.Since(start).Round(time.Millisecond))
				be.hold(false)
				return
			}
			if c.ID == id {
				break
			}
		}
	}
	t.Fatalf("an unsignalled IO was not delivered in %v of commands every %v", 3*handler.PollInterval, handler.PollInterval/4)
}

// TestPolledLoopCostPerBatch holds what the polled design relies on: a
// batch of 32 commands queued with one notification, whose IOs finish
// together, costs the loop at most three wake-ups (the ring, the
// completions, one spare for a race between them), one Poll and one
// doorbell — not one per IO. A regression to a wake-up, a Poll or a
// doorbell per command fails it.
func TestPolledLoopCostPerBatch(t *testing.T) {
	k, be := pollDevice(t, true)
	l := lun{t, k}
	l.write(0, blockData(0, 0)) // the loop is up and primed
	const n = 32
	for round := range 3 {
		waits, polls, bells := k.Waits(), be.polls.Load(), k.Stats().Doorbells
		be.hold(true)
		k.Plug()
		for i := range uint32(n) {
			l.submit(uiotest.Request{CDB: rw10(0x2a, i), DataOut: blockData(i, round)})
		}
		k.Unplug()
		deadline := time.Now().Add(10 * time.Second)
		for {
			be.mu.Lock()
			got := len(be.finished)
			be.mu.Unlock()
			if got == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d IOs reached the backend", got, n)
			}
			time.Sleep(time.Millisecond)
		}
		be.hold(false)
		for range n {
			if c := l.next(); c.Status != 0 {
				t.Fatalf("status %#x", c.Status)
			}
		}
		dw, dp, db := k.Waits()-waits, be.polls.Load()-polls, k.Stats().Doorbells-bells
		t.Logf("round %d: %d commands: %d wake-ups, %d polls, %d doorbells", round, n, dw, dp, db)
		if dw > 3 || dp > 2 || db > 2 {
			t.Errorf("round %d: %d commands cost %d wake-ups, %d polls and %d doorbells; want at most 3, 2 and 2", round, n, dw, dp, db)
		}
	}
}

// TestInlineCompletionsAnsweredWithTheBatch: IOs a backend finishes inside
// Submit (the mem backend) are answered with the rest of their batch: 32
// writes and reads queued with one notification cost one doorbell, and
// each still gets its own answer and data.
func TestInlineCompletionsAnsweredWithTheBatch(t *testing.T) {
	d := newDevice(t, devConfig{})
	d.write(t, 0, pattern(1, 512)) // the loop is up
	const n = 32
	for round := range 3 {
		bells := d.k.Stats().Doorbells
		d.k.Plug()
		waits := make([]func() reply, 0, n)
		for i := range uint32(n) {
			if i%2 == 0 {
				waits = append(waits, d.start(t, cdb10(0x2a, 0, i, 1), pattern(byte(i+uint32(round)), 512), 0))
			} else {
				waits = append(waits, d.start(t, cdb10(0x28, 0, i-1, 1), nil, 512))
			}
		}
		d.k.Unplug()
		for i, w := range waits {
			r := w()
			if r.Status != 0 {
				t.Fatalf("round %d, command %d: status %#x", round, i, r.Status)
			}
			if i%2 == 1 && !bytes.Equal(r.DataIn, pattern(byte(uint32(i-1)+uint32(round)), 512)) {
				t.Fatalf("round %d: read %d returned other data", round, i)
			}
		}
		if db := d.k.Stats().Doorbells - bells; db != 1 {
			t.Errorf("round %d: %d commands answered inside Submit cost %d doorbells, want 1", round, n, db)
		}
	}
}
