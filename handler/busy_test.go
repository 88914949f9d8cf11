package handler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// The bounds of BUSY (busy.go), held through the ring with a clock the
// test moves: BUSY until the bound of the error's class, counted from the
// run's first BUSY, then NOT READY / 04/0C, and for a device with a lock
// gate its recovery (TPGs offline, a fresh client).

// busyClock is a clock the test moves.
type busyClock struct{ ns atomic.Int64 }

func newBusyClock() *busyClock {
	c := &busyClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *busyClock) now() time.Time                       { return time.Unix(0, c.ns.Load()) }
func (c *busyClock) advance(d time.Duration)              { c.ns.Add(int64(d)) }
func (c *busyClock) set(start time.Time, d time.Duration) { c.ns.Store(start.Add(d).UnixNano()) }

// failingBackend fails every IO (with writesOnly, every write) with err
// while it is set, and completes the others at once; it has no lock
// (user:file, user:mem).
type failingBackend struct {
	writesOnly bool
	mu         sync.Mutex
	err        error
}

func (b *failingBackend) Submit(io *IO) {
	b.mu.Lock()
	err := b.err
	b.mu.Unlock()
	if b.writesOnly && io.Op != OpWrite {
		err = nil
	}
	io.Done(err)
}

func (b *failingBackend) Limits() Limits { return Limits{} }
func (b *failingBackend) Close() error   { return nil }

func (b *failingBackend) failWith(err error) {
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
}

// bounds the tests set: each class its own, so that a wrong class shows.
var testBounds = BusyBounds{Lock: 10 * time.Second, Conn: 20 * time.Second, Transient: 5 * time.Second}

// runWithClock serves a device over a fake kernel with the busy clock
// set before its loop starts.
func runWithClock(t *testing.T, be Backend, cfg DeviceConfig, clock *busyClock) *gateDevice {
	t.Helper()
	k := uiotest.New(t, uiotest.Config{})
	info := DeviceInfo{Name: "busy", Size: 1 << 20, BlockSize: 512, MaxSectors: 128}
	d, err := newDevice(zerolog.New(zerolog.NewTestWriter(t)), info, k.Ring(), k, be, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.busy.now = clock.now
	d.SetBusyBounds(testBounds)
	lb, _ := be.(*lockBackend)
	if lb != nil {
		lb.inflight = d.InFlight
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := d.WaitIdle(context.Background()); err != nil {
			t.Errorf("WaitIdle: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &gateDevice{d: d, be: lb, k: k}
}

var turCDB = []byte{0, 0, 0, 0, 0, 0}

// A device without a lock (user:file, user:mem) answers each error
// mapped to BUSY with BUSY until its class's bound has passed since the
// first BUSY of the run, whatever commands came between; then NOT READY
// / 04/0C until a medium access of the same kind (reads, writes) is
// answered otherwise, after which the next error starts a new run.
func TestBusyBoundWithoutGate(t *testing.T) {
	for _, tc := range []struct {
		errno syscall.Errno
		bound time.Duration
		class string
	}{
		{syscall.ESHUTDOWN, testBounds.Lock, "lock"},
		{syscall.EROFS, testBounds.Lock, "lock"},
		{syscall.ETIMEDOUT, testBounds.Conn, "connection"},
		{syscall.EAGAIN, testBounds.Transient, "transient"},
		{syscall.EBUSY, testBounds.Transient, "transient"},
		{syscall.ENOTCONN, testBounds.Transient, "transient"},
		{syscall.ECONNRESET, testBounds.Transient, "transient"},
	} {
		t.Run(tc.errno.Error(), func(t *testing.T) {
			clock := newBusyClock()
			be := &failingBackend{}
			gd := runWithClock(t, be, nil, clock)
			if gd.d.gate != nil {
				t.Fatal("a gate for a backend without a lock")
			}
			be.failWith(fmt.Errorf("io: %w", tc.errno))
			start := clock.now()
			gd.expect(t, write10, busy)
			// Other commands in between neither end the run nor restart
			// its clock: neither one that does not touch the medium...
			clock.set(start, tc.bound/2)
			if c := gd.run(t, turCDB); c.Status != statusGood {
				t.Fatalf("TEST UNIT READY: status %#x", c.Status)
			}
			// ... nor further BUSY answers; a read starts the reads' run.
			gd.expect(t, read10, busy)
			clock.set(start, tc.bound-time.Nanosecond)
			gd.expect(t, write10, busy)
			st := gd.d.BusyState()
			if st.Class != tc.class || st.Errno == "" || st.Escalated || st.Bound != tc.bound || st.For != tc.bound-time.Nanosecond {
				t.Fatalf("before the bound: %+v", st)
			}
			if s := st.String(); !strings.Contains(s, "answering BUSY") || !strings.Contains(s, "escalates after "+tc.bound.String()) {
				t.Errorf("status line %q", s)
			}
			clock.set(start, tc.bound)
			gd.expect(t, write10, unavail)
			gd.expect(t, write10, unavail)
			// The reads' run is younger.
			gd.expect(t, read10, busy)
			st = gd.d.BusyState()
			if !st.Escalated || st.Escalations != 1 || st.For != tc.bound {
				t.Fatalf("at the bound: %+v", st)
			}
			if s := st.String(); !strings.Contains(s, "answering NOT READY") {
				t.Errorf("status line %q", s)
			}
			clock.set(start, tc.bound/2+tc.bound)
			gd.expect(t, read10, unavail)
			if s := gd.d.snapshot(); s.BusyEscalations != 2 || s.BusyFor != tc.bound+tc.bound/2 {
				t.Errorf("snapshot: escalations %d, busy for %v", s.BusyEscalations, s.BusyFor)
			}

			// The backend serves again: the first medium access of each
			// kind ends its run, and the next error is BUSY again.
			be.failWith(nil)
			gd.expect(t, write10, admitted)
			if st := gd.d.BusyState(); st.For != tc.bound || !st.Escalated {
				t.Fatalf("after a GOOD write, the reads' run: %+v", st)
			}
			gd.expect(t, read10, admitted)
			if st := gd.d.BusyState(); st.For != 0 || st.Escalated {
				t.Fatalf("after a GOOD read: %+v", st)
			}
			be.failWith(fmt.Errorf("io: %w", tc.errno))
			clock.advance(time.Hour)
			gd.expect(t, read10, busy)
			gd.expect(t, write10, busy)
			if st := gd.d.BusyState(); st.Escalations != 2 || st.Escalated {
				t.Errorf("new runs: %+v", st)
			}
		})
	}
}

// A filesystem remounted read-only under user:file fails writes with
// EROFS and serves reads: the reads do not end the writes' run, which
// escalates at its bound.
func TestBusyReadsDoNotEndTheWritesRun(t *testing.T) {
	clock := newBusyClock()
	be := &failingBackend{writesOnly: true}
	gd := runWithClock(t, be, nil, clock)
	be.failWith(fmt.Errorf("pwritev2: %w", syscall.EROFS))
	gd.expect(t, write10, busy)
	for range 3 {
		clock.advance(testBounds.Lock / 4)
		gd.expect(t, read10, admitted)
		gd.expect(t, write10, busy)
	}
	clock.advance(testBounds.Lock / 4)
	gd.expect(t, read10, admitted)
	gd.expect(t, write10, unavail)
}

// Errors not mapped to BUSY, answered with a medium error, end a run.
func TestBusyRunEndsAtAnotherError(t *testing.T) {
	clock := newBusyClock()
	be := &failingBackend{}
	gd := runWithClock(t, be, nil, clock)
	be.failWith(syscall.EAGAIN)
	gd.expect(t, write10, busy)
	clock.advance(testBounds.Transient)
	be.failWith(syscall.EIO)
	gd.submit(t, write10, make([]byte, 512), 0)
	if c := gd.completion(t); c.Status != statusCheckCondition || senseKeyOf(c.Sense) != keyMediumError {
		t.Fatalf("EIO: status %#x sense % x", c.Status, c.Sense)
	}
	be.failWith(syscall.EAGAIN)
	gd.expect(t, write10, busy)
}

// run sends a command without data and returns its completion.
func (gd *gateDevice) run(t *testing.T, cdb []byte) uiotest.Completion {
	t.Helper()
	gd.submit(t, cdb, nil, 0)
	return gd.completion(t)
}

// A device with a lock gate (rbd) that answers BUSY past the bound
// recovers as from a lost connection: its TPGs go offline, it reopens
// with a fresh client and brings them back, meanwhile answering NOT
// READY.
func TestBusyBoundEscalatesThroughTheGate(t *testing.T) {
	const iqn = "iqn.2026-01.test:busy"

	t.Run("transient", func(t *testing.T) {
		clock := newBusyClock()
		cfg := newTPGConfig(iqn, false)
		gd := runWithClock(t, &lockBackend{}, cfg, clock)
		takeLock(t, gd)
		gd.be.failNext(fmt.Errorf("write: %w", syscall.ECONNRESET))
		gd.expect(t, write10, busy)
		clock.advance(testBounds.Transient - time.Nanosecond)
		gd.be.failNext(fmt.Errorf("write: %w", syscall.EAGAIN))
		gd.expect(t, write10, busy)
		if got := cfg.switches(); len(got) != 0 {
			t.Fatalf("TPG switches before the bound: %v", got)
		}
		clock.advance(time.Nanosecond)
		gd.be.failNext(fmt.Errorf("write: %w", syscall.EAGAIN))
		gd.expect(t, write10, unavail)
		if got := cfg.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
			t.Errorf("TPG switches %v, want the local TPG offline then back", got)
		}
		st := gd.settled(t)
		if st.Escalations != 1 || st.ConnLosses != 1 || st.State != "unlocked" {
			t.Errorf("gate after the escalation: %+v", st)
		}
		if !slices.Contains(gd.be.callList(), "reopen") {
			t.Errorf("backend calls %v, want a reopen", gd.be.callList())
		}
		// The recovered client serves reads. The fresh client holds no
		// lock: the writes' run goes on while the gate takes it, and the
		// first write that passes ends it.
		gd.expect(t, read10, admitted)
		gd.expect(t, write10, unavail)
		if st := gd.settled(t); st.State != "locked" {
			t.Fatalf("gate after the write: %+v", st)
		}
		gd.expect(t, write10, admitted)
		if st := gd.d.BusyState(); st.For != 0 {
			t.Errorf("after the write: %+v", st)
		}
	})

	// The connection is lost and the cluster does not come back: the
	// gate's own BUSY while it recovers is bounded by Conn.
	t.Run("connection", func(t *testing.T) {
		clock := newBusyClock()
		cfg := newTPGConfig(iqn, false)
		be := &lockBackend{reopenHold: make(chan struct{})}
		gd := runWithClock(t, be, cfg, clock)
		be.failNext(fmt.Errorf("read: %w", syscall.ETIMEDOUT))
		gd.expect(t, read10, busy)
		if got := cfg.switchesAfter(t, 1); !slices.Equal(got, []string{iqn + "/1=false"}) {
			t.Fatalf("TPG switches %v, want the local TPG offline", got)
		}
		clock.advance(testBounds.Conn - time.Nanosecond)
		gd.expect(t, read10, busy)
		if st := gd.d.BusyState(); st.Class != "connection" {
			t.Errorf("run of the recovering gate: %+v", st)
		}
		clock.advance(time.Nanosecond)
		gd.expect(t, read10, unavail)
		gd.expect(t, read10, unavail)
		close(be.reopenHold)
		if st := gd.settled(t); st.State != "unlocked" {
			t.Fatalf("gate after the cluster came back: %+v", st)
		}
		if got := cfg.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
			t.Errorf("TPG switches %v", got)
		}
		gd.expect(t, read10, admitted)
	})

	// The lock was lost and the reopen does not end: Lock bounds it,
	// and the recovery follows once the reopen returns.
	t.Run("lock", func(t *testing.T) {
		clock := newBusyClock()
		cfg := newTPGConfig(iqn, false)
		be := &lockBackend{}
		gd := runWithClock(t, be, cfg, clock)
		takeLock(t, gd)
		hold := make(chan struct{})
		be.mu.Lock()
		be.reopenHold = hold
		be.mu.Unlock()
		be.setOwner("other")
		be.failNext(fmt.Errorf("write: %w", syscall.ESHUTDOWN))
		gd.expect(t, write10, busy)
		// Writes are refused as standby for the hold-down; reads wait
		// for the reopen, BUSY.
		gd.expect(t, write10, standby)
		gd.expect(t, read10, busy)
		clock.advance(testBounds.Lock - time.Nanosecond)
		gd.expect(t, read10, busy)
		clock.advance(time.Nanosecond)
		gd.expect(t, read10, unavail)
		if st := gd.d.BusyState(); st.Class != "lock" || !st.Escalated {
			t.Errorf("run: %+v", st)
		}
		be.mu.Lock()
		be.reopenHold = nil
		be.mu.Unlock()
		close(hold)
		if got := cfg.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
			t.Errorf("TPG switches %v, want the recovery after the reopen", got)
		}
		if st := gd.settled(t); st.Escalations != 1 || st.ConnLosses != 1 {
			t.Errorf("gate: %+v", st)
		}
	})
}

// takeLock makes gd's gate take the lock with a first write, and ends
// that write's run of BUSY with a second.
func takeLock(t *testing.T, gd *gateDevice) {
	t.Helper()
	gd.expect(t, write10, busy)
	if st := gd.settled(t); st.State != "locked" {
		t.Fatalf("state %q after the first write, want locked", st.State)
	}
	gd.expect(t, write10, admitted)
	if st := gd.d.BusyState(); st.For != 0 {
		t.Fatalf("run after the lock was taken: %+v", st)
	}
}

func TestBusyBoundsDefaults(t *testing.T) {
	d := newTestDevice(t, testDev{})
	if got := d.busyBounds(); got != DefaultBusyBounds {
		t.Errorf("bounds of a new device %+v, want the defaults", got)
	}
	d.SetBusyBounds(BusyBounds{Conn: time.Minute})
	if got, want := d.busyBounds(), (BusyBounds{Lock: DefaultBusyBounds.Lock, Conn: time.Minute, Transient: DefaultBusyBounds.Transient}); got != want {
		t.Errorf("bounds %+v, want %+v", got, want)
	}
	for _, b := range []time.Duration{DefaultBusyBounds.Lock, DefaultBusyBounds.Conn, DefaultBusyBounds.Transient} {
		// Below Linux's (5 + 1) × 30 s of retries on BUSY.
		if b <= 0 || b >= 180*time.Second {
			t.Errorf("default bound %v", b)
		}
	}
}
