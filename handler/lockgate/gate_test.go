package lockgate

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fakeLocker is a Locker in memory: its operations record what they were
// asked and answer what the test queued.
type fakeLocker struct {
	mu         sync.Mutex
	calls      []string
	acquireErr []error // next results of AcquireLock, nil when empty
	reopenErr  []error
	releaseErr []error
	// acquireHold, when set, makes AcquireLock wait for it.
	acquireHold chan struct{}
	// inflightAtReopen is the device's I/O count seen by each Reopen.
	inflightAtReopen []int64
	io               *fakeIO
	owner            string
	connLost         int
	lost             func() // registered by the gate (connWatcher)
	// reopens counts Reopen's new clients: each has a name of its own
	// as the lock's owner (me, me1, me2, ...).
	reopens int
}

// me is the current client's name as the lock's owner.
func (l *fakeLocker) me() string {
	if l.reopens == 0 {
		return "me"
	}
	return fmt.Sprintf("me%d", l.reopens)
}

func (l *fakeLocker) record(call string) {
	l.mu.Lock()
	l.calls = append(l.calls, call)
	l.mu.Unlock()
}

func pop(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

func (l *fakeLocker) IsLockOwner() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owner == l.me(), nil
}

func (l *fakeLocker) AcquireLock(ctx context.Context) error {
	l.record("acquire")
	l.mu.Lock()
	hold := l.acquireHold
	l.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := pop(&l.acquireErr)
	if err == nil {
		l.owner = l.me()
	}
	return err
}

func (l *fakeLocker) ReleaseLock() error {
	l.record("release")
	l.mu.Lock()
	defer l.mu.Unlock()
	err := pop(&l.releaseErr)
	if err == nil && l.owner == l.me() {
		l.owner = ""
	}
	return err
}

func (l *fakeLocker) Reopen(context.Context) error {
	l.record("reopen")
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflightAtReopen = append(l.inflightAtReopen, l.io.load())
	err := pop(&l.reopenErr)
	if err == nil {
		// The new client holds nothing; a lock the old one held stays
		// under its name until someone breaks it.
		l.reopens++
	}
	return err
}

func (l *fakeLocker) LockOwner() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owner, nil
}

func (l *fakeLocker) NoteConnectionLost() {
	l.mu.Lock()
	l.connLost++
	l.mu.Unlock()
}

func (l *fakeLocker) WatchConnection(lost func()) {
	l.mu.Lock()
	l.lost = lost
	l.mu.Unlock()
}

// signalLost tells the gate the connection is lost as rbd does when it
// starts holding a timed-out write for its client's fence.
func (l *fakeLocker) signalLost(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	lost := l.lost
	l.mu.Unlock()
	if lost == nil {
		t.Fatal("the gate registered no connection watch")
	}
	lost()
}

func (l *fakeLocker) callList() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func (l *fakeLocker) connLosses() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connLost
}

// setOwner makes another gateway the lock's holder.
func (l *fakeLocker) setOwner(o string) {
	l.mu.Lock()
	l.owner = o
	l.mu.Unlock()
}

// fakeIO is the device's I/O in flight, with the one "nothing in flight"
// signal the gate waits for.
type fakeIO struct {
	mu      sync.Mutex
	n       int64
	idle    chan struct{} // closed while n == 0
	waiters int           // calls of wait so far
}

func newFakeIO() *fakeIO {
	idle := make(chan struct{})
	close(idle)
	return &fakeIO{idle: idle}
}

func (f *fakeIO) add(delta int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.n
	f.n += delta
	switch {
	case was == 0 && f.n > 0:
		f.idle = make(chan struct{})
	case was > 0 && f.n == 0:
		close(f.idle)
	}
}

func (f *fakeIO) load() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *fakeIO) wait(ctx context.Context) error {
	f.mu.Lock()
	idle := f.idle
	f.waiters++
	f.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitedOn waits until the gate waits for the I/O, as a reopen does.
func (f *fakeIO) waitedOn(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		n := f.waiters
		f.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no reopen waits for the I/O after 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// fakePorts are port groups as the handler would describe them.
type fakePorts struct {
	mu      sync.Mutex
	refusal Verdict
	tpgs    []TPG
	reads   int
}

func (p *fakePorts) Refusal() (Verdict, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reads++
	return p.refusal, nil
}

func (p *fakePorts) LocalTPGs() ([]TPG, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.tpgs), nil
}

func (p *fakePorts) set(v Verdict) {
	p.mu.Lock()
	p.refusal = v
	p.mu.Unlock()
}

// fakeSwitch records TPG switches.
type fakeSwitch struct {
	mu  sync.Mutex
	log []string
}

func (s *fakeSwitch) SetTPGEnabled(wwn string, tpgt uint16, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, fmt.Sprintf("%s/%d=%v", wwn, tpgt, on))
	return nil
}

func (s *fakeSwitch) switches() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// switchesAfter waits until at least n switches were made and returns
// them all: a gate brings TPGs back after it left recovery.
func (s *fakeSwitch) switchesAfter(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.switches()) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return s.switches()
}

// harness is a gate over fakes, with its clock under the test's control.
type harness struct {
	g     *Gate
	lk    *fakeLocker
	io    *fakeIO
	clock *fakeClock
}

// options are the parts of a gate's Config a test chooses.
type options struct {
	ports      Ports
	sw         TPGSwitch
	holds      *Holds
	cmdTimeout time.Duration // Config.CmdTimeout's answer; 0: no CmdTimeout
}

func newHarness(t *testing.T, o options) *harness {
	t.Helper()
	io := newFakeIO()
	lk := &fakeLocker{io: io}
	clock := &fakeClock{}
	clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	cfg := Config{
		Log:      zerolog.New(zerolog.NewTestWriter(t)),
		Locker:   lk,
		WaitIdle: io.wait,
		Ports:    o.ports,
		Switch:   o.sw,
		Holds:    o.holds,
		Now:      clock.now,
	}
	if o.cmdTimeout > 0 {
		cfg.CmdTimeout = func() time.Duration { return o.cmdTimeout }
	}
	g := New(cfg)
	t.Cleanup(g.Close)
	return &harness{g: g, lk: lk, io: io, clock: clock}
}

const (
	write = true  // a command that changes the medium
	read  = false // one that does not
)

func kind(changes bool) string {
	if changes {
		return "write"
	}
	return "read"
}

func (h *harness) expect(t *testing.T, changes bool, want Verdict) {
	t.Helper()
	if got := h.g.Admit(changes); got != want {
		t.Fatalf("%s in state %s: %s, want %s", kind(changes), h.g.Status().State, got, want)
	}
}

// settled waits until no worker runs and returns the gate's status.
func (h *harness) settled(t *testing.T) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := h.g.state.Load()
		h.g.mu.Lock()
		pending := h.g.connLost
		h.g.mu.Unlock()
		if !working(s) && !pending {
			return h.g.Status()
		}
		if time.Now().After(deadline) {
			t.Fatalf("gate still %s after 10 s", stateNames[s])
		}
		time.Sleep(time.Millisecond)
	}
}

// lockedHarness is a gate with a local TPG and a switch that holds the
// lock, taken by a first write.
func lockedHarness(t *testing.T) (*harness, *fakeSwitch) {
	t.Helper()
	sw := &fakeSwitch{}
	h := newHarness(t, options{ports: localPorts(), sw: sw})
	h.expect(t, write, Busy)
	h.settled(t)
	return h, sw
}

func TestTakesTheLockOnFirstWrite(t *testing.T) {
	h := newHarness(t, options{})
	// Reads never move the lock.
	h.expect(t, read, Pass)
	if calls := h.lk.callList(); len(calls) != 0 {
		t.Fatalf("a read made the gate call %v", calls)
	}
	hold := make(chan struct{})
	h.lk.acquireHold = hold
	h.expect(t, write, Busy)
	// While the lock is being taken, everything waits.
	h.expect(t, write, Busy)
	h.expect(t, read, Busy)
	if st := h.g.Status(); st.State != "locking" {
		t.Fatalf("state %q while acquiring, want locking", st.State)
	}
	close(hold)
	st := h.settled(t)
	if st.State != "locked" || st.Owner != "me" || st.Acquisitions != 1 {
		t.Fatalf("after acquiring: %+v", st)
	}
	h.expect(t, write, Pass)
	h.expect(t, read, Pass)
	if calls := h.lk.callList(); !slices.Equal(calls, []string{"acquire"}) {
		t.Errorf("calls %v, want one acquire", calls)
	}
}

// lostLock brings h to the point where another gateway took the lock and
// this one found out from an I/O failing with errno.
func lostLock(t *testing.T, h *harness, errno syscall.Errno) {
	t.Helper()
	h.expect(t, write, Busy)
	h.settled(t)
	h.lk.setOwner("other")
	h.g.NoteError(errno)
}

func TestLostLock(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ESHUTDOWN, syscall.EROFS} {
		t.Run(errno.Error(), func(t *testing.T) {
			h := newHarness(t, options{})
			h.g.SetHoldDown(10 * time.Second)
			// A write still in flight when the lock goes: the reopen
			// waits for it.
			h.io.add(1)
			lostLock(t, h, errno)
			// While the fenced client is replaced, reads wait for the
			// new one; writes go elsewhere already.
			h.expect(t, read, Busy)
			h.expect(t, write, Standby)
			time.Sleep(20 * time.Millisecond)
			if calls := h.lk.callList(); slices.Contains(calls, "reopen") {
				t.Fatalf("reopened with I/O in flight: %v", calls)
			}
			h.io.add(-1)
			st := h.settled(t)
			if st.State != "held-down" || st.Losses != 1 || st.Owner != "other" {
				t.Fatalf("after reopening: %+v", st)
			}
			if got := h.lk.inflightAtReopen; !slices.Equal(got, []int64{0}) {
				t.Errorf("I/O in flight at each reopen: %v, want [0]", got)
			}
			// Held down: writes are refused as at a standby port,
			// reads are served by the fresh client.
			h.expect(t, write, Standby)
			h.expect(t, read, Pass)
			h.clock.advance(9 * time.Second)
			h.expect(t, write, Standby)
			if st := h.g.Status(); st.Refused != 3 {
				t.Errorf("refused %d writes, want 3", st.Refused)
			}
			if st := h.g.Status(); !st.HoldDownUntil.Equal(h.clock.now().Add(time.Second)) {
				t.Errorf("held down until %v, want %v", st.HoldDownUntil, h.clock.now().Add(time.Second))
			}
			// A shorter hold-down applies to the one running.
			h.g.SetHoldDown(9*time.Second + time.Millisecond)
			h.expect(t, write, Standby)
			h.g.SetHoldDown(9 * time.Second)
			// After the hold-down the lock is taken back the same way
			// it was taken the first time.
			h.expect(t, write, Busy)
			st = h.settled(t)
			if st.State != "locked" || st.Acquisitions != 2 {
				t.Fatalf("after taking the lock back: %+v", st)
			}
			want := []string{"acquire", "reopen", "acquire"}
			if calls := h.lk.callList(); !slices.Equal(calls, want) {
				t.Errorf("calls %v, want %v", calls, want)
			}
		})
	}
}

func TestWithoutHoldDownTakesTheLockBackAtOnce(t *testing.T) {
	for _, hold := range []time.Duration{0, -time.Second} {
		t.Run(hold.String(), func(t *testing.T) {
			h := newHarness(t, options{})
			h.g.SetHoldDown(hold)
			lostLock(t, h, syscall.ESHUTDOWN)
			if st := h.settled(t); st.State != "unlocked" {
				t.Fatalf("state %q, want unlocked", st.State)
			}
			h.expect(t, write, Busy)
			if st := h.settled(t); st.State != "locked" || st.Acquisitions != 2 {
				t.Fatalf("after the write: %+v", st)
			}
		})
	}
}

func TestIgnoresErrorsThatAreNotLockOrConnection(t *testing.T) {
	h := newHarness(t, options{})
	h.expect(t, write, Busy)
	h.settled(t)
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.ENOSPC, syscall.EILSEQ, syscall.EINVAL} {
		h.g.NoteError(errno)
	}
	h.expect(t, write, Pass)
	if calls := h.lk.callList(); !slices.Equal(calls, []string{"acquire"}) {
		t.Errorf("calls %v", calls)
	}
}

func TestAcquireFailures(t *testing.T) {
	t.Run("fenced_client_reopens_and_retries_once", func(t *testing.T) {
		h := newHarness(t, options{})
		h.lk.acquireErr = []error{fmt.Errorf("acquire: %w", syscall.ESHUTDOWN)}
		h.expect(t, write, Busy)
		if st := h.settled(t); st.State != "locked" {
			t.Fatalf("state %q, want locked", st.State)
		}
		want := []string{"acquire", "reopen", "acquire"}
		if calls := h.lk.callList(); !slices.Equal(calls, want) {
			t.Errorf("calls %v, want %v", calls, want)
		}
	})
	t.Run("refused_acquisition_is_retried_after_a_delay", func(t *testing.T) {
		h := newHarness(t, options{})
		h.lk.acquireErr = []error{fmt.Errorf("break lock: %w", syscall.EBUSY)}
		h.expect(t, write, Busy)
		if st := h.settled(t); st.State != "unlocked" || st.Acquisitions != 0 {
			t.Fatalf("after a failed acquisition: %+v", st)
		}
		h.expect(t, write, Busy)
		if calls := h.lk.callList(); len(calls) != 1 {
			t.Fatalf("retried at once: %v", calls)
		}
		h.clock.advance(acquireRetryDelay)
		h.expect(t, write, Busy)
		if st := h.settled(t); st.State != "locked" {
			t.Fatalf("state %q after the retry, want locked", st.State)
		}
	})
	t.Run("fenced_twice_needs_a_reopen_first", func(t *testing.T) {
		h := newHarness(t, options{})
		h.lk.acquireErr = []error{syscall.ESHUTDOWN, syscall.ESHUTDOWN}
		h.expect(t, write, Busy)
		if st := h.settled(t); st.State != "lost" {
			t.Fatalf("state %q, want lost", st.State)
		}
		// Any command, a read too, reopens first.
		h.expect(t, read, Busy)
		if st := h.settled(t); st.State != "unlocked" {
			t.Fatalf("state %q after the reopen, want unlocked", st.State)
		}
		h.expect(t, read, Pass)
	})
	t.Run("timeout_starts_recovery", func(t *testing.T) {
		h := newHarness(t, options{})
		h.lk.acquireErr = []error{fmt.Errorf("acquire: %w", syscall.ETIMEDOUT)}
		h.expect(t, write, Busy)
		if st := h.settled(t); st.State != "unlocked" || st.ConnLosses != 1 {
			t.Fatalf("after a timed-out acquisition: %+v", st)
		}
		if calls := h.lk.callList(); !slices.Equal(calls, []string{"acquire", "reopen"}) {
			t.Errorf("calls %v, want the client reopened", calls)
		}
	})
}

// A reopen that failed is tried again by the next command, a write
// refused during the hold-down too.
func TestFailedReopenRetriedByNextCommand(t *testing.T) {
	h := newHarness(t, options{})
	h.lk.reopenErr = []error{syscall.EIO}
	lostLock(t, h, syscall.ESHUTDOWN)
	if st := h.settled(t); st.State != "lost" {
		t.Fatalf("state %q after a failed reopen, want lost", st.State)
	}
	h.expect(t, write, Standby)
	if st := h.settled(t); st.State != "held-down" {
		t.Fatalf("state %q after the write, want held-down", st.State)
	}
	if calls := h.lk.callList(); !slices.Equal(calls, []string{"acquire", "reopen", "reopen"}) {
		t.Errorf("calls %v, want the reopen tried again", calls)
	}
}

const iqn = "iqn.2026-01.test:gw"

// localPorts are a gateway's port groups that serve media access, with
// its own TPG (tpgt 1).
func localPorts() *fakePorts {
	return &fakePorts{tpgs: []TPG{{WWN: iqn, TPGT: 1}}}
}

func TestConnectionLoss(t *testing.T) {
	h, sw := lockedHarness(t)
	h.io.add(1)
	h.g.NoteError(syscall.ETIMEDOUT)
	// The gateway's own TPG goes offline.
	if got := sw.switchesAfter(t, 1); !slices.Equal(got, []string{iqn + "/1=false"}) {
		t.Fatalf("TPG switches %v, want the local TPG disabled", got)
	}
	h.expect(t, write, Busy)
	h.expect(t, read, Busy)
	// More timeouts change nothing.
	h.g.NoteError(syscall.ETIMEDOUT)
	h.io.add(-1)
	st := h.settled(t)
	if st.State != "unlocked" || st.ConnLosses != 1 || h.lk.connLosses() != 1 {
		t.Fatalf("after recovering: %+v, Locker told %d times", st, h.lk.connLosses())
	}
	if got := sw.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
		t.Errorf("TPG switches %v, want disabled then enabled", got)
	}
	if got := h.lk.inflightAtReopen; !slices.Equal(got, []int64{0}) {
		t.Errorf("I/O in flight at each reopen: %v", got)
	}
	// No hold-down after a lost connection when no other gateway took the
	// lock meanwhile (the old client's lock is still there): the lock is
	// taken back with the next write.
	h.expect(t, write, Busy)
	if st := h.settled(t); st.State != "locked" {
		t.Errorf("state %q, want locked", st.State)
	}
}

// A partition (issue 15): the gateway holding the lock loses its
// connection, another gateway breaks its lock and takes it meanwhile. Back
// on the cluster the gate holds down as after losing the lock, instead of
// taking it back with the first write that reaches it; a gate that did not
// hold the lock does not.
func TestConnectionLossWhileAnotherGatewayTookTheLock(t *testing.T) {
	t.Run("held", func(t *testing.T) {
		h, sw := lockedHarness(t)
		h.io.add(1)
		h.g.NoteError(syscall.ETIMEDOUT)
		h.lk.setOwner("gw-b")
		h.io.add(-1)
		st := h.settled(t)
		want := h.clock.now().Add(DefaultHoldDown)
		if st.State != "held-down" || st.Owner != "gw-b" || st.Losses != 1 || !st.HoldDownUntil.Equal(want) {
			t.Fatalf("after recovering: %+v, want held down until %v", st, want)
		}
		if got := sw.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
			t.Errorf("TPG switches %v, want the local TPG offline then back", got)
		}
		h.expect(t, write, Standby)
		h.expect(t, read, Pass)
		h.clock.advance(DefaultHoldDown - time.Second)
		h.expect(t, write, Standby)
		if calls := h.lk.callList(); !slices.Equal(calls, []string{"acquire", "reopen"}) {
			t.Fatalf("calls %v: the lock taken back inside the hold-down", calls)
		}
		h.clock.advance(time.Second)
		h.expect(t, write, Busy)
		if st := h.settled(t); st.State != "locked" || st.Refused != 2 {
			t.Fatalf("after the hold-down: %+v, want locked after 2 refusals", st)
		}
	})
	t.Run("not_held", func(t *testing.T) {
		h := newHarness(t, options{ports: localPorts(), sw: &fakeSwitch{}})
		h.lk.setOwner("gw-b")
		h.g.NoteError(syscall.ETIMEDOUT)
		if st := h.settled(t); st.State != "unlocked" || st.Losses != 0 {
			t.Fatalf("after recovering: %+v, want no hold-down", st)
		}
		h.expect(t, write, Busy)
		if st := h.settled(t); st.State != "locked" {
			t.Fatalf("state %q, want locked", st.State)
		}
	})
}

// A partition (issue 15): the cluster stops answering and the backend
// holds the write that timed out, since it may still land until its
// client is fenced, which needs the monitors. No I/O error reaches the gate
// for as long as the cut lasts, so the backend's own signal must take the
// TPGs offline at once, with the write still in flight; once the held
// write is answered after the cut, the gate reopens, sees the lock with
// another gateway and holds down, without a second recovery for the
// write's own ETIMEDOUT.
func TestConnectionLossSignalledWhileTheWriteIsHeld(t *testing.T) {
	h, sw := lockedHarness(t)
	h.io.add(1)
	h.lk.signalLost(t)
	if got := sw.switchesAfter(t, 1); !slices.Equal(got, []string{iqn + "/1=false"}) {
		t.Fatalf("TPG switches %v with the write held, want the local TPG offline", got)
	}
	if st := h.g.Status(); st.State != "recovering" || st.ConnLosses != 1 {
		t.Fatalf("with the write held: %+v, want recovering", st)
	}
	h.expect(t, write, Busy)
	h.expect(t, read, Busy)
	h.io.waitedOn(t)
	if calls := h.lk.callList(); !slices.Equal(calls, []string{"acquire"}) {
		t.Fatalf("calls %v with the write held: a reopen may not replace the client under it", calls)
	}
	// The cut ends: the fence is committed and the held write fails.
	h.lk.setOwner("gw-b")
	h.g.NoteError(syscall.ETIMEDOUT)
	h.io.add(-1)
	st := h.settled(t)
	if st.State != "held-down" || st.Owner != "gw-b" || st.Losses != 1 || st.ConnLosses != 1 {
		t.Fatalf("after the cut: %+v, want held down behind gw-b after one connection loss", st)
	}
	if got := sw.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
		t.Errorf("TPG switches %v, want the local TPG offline then back", got)
	}
	if got := h.lk.inflightAtReopen; !slices.Equal(got, []int64{0}) {
		t.Errorf("I/O in flight at each reopen: %v, want [0]", got)
	}
	h.expect(t, write, Standby)
}

// With a kernel time limit on commands (cmd_time_out), a gate that loses
// its connection while a write is held lets the kernel end that write
// (CHECK CONDITION, which moves the initiator to another path at once)
// before it takes the TPG offline, which would drop the session instead;
// a device with nothing in flight goes offline at once.
func TestTPGOfflineAfterTheKernelsTimeLimit(t *testing.T) {
	const limit = 300 * time.Millisecond
	t.Run("held", func(t *testing.T) {
		sw := &fakeSwitch{}
		h := newHarness(t, options{ports: localPorts(), sw: sw, cmdTimeout: limit})
		h.expect(t, write, Busy)
		h.settled(t)
		h.io.add(1)
		start := time.Now()
		h.lk.signalLost(t)
		got := sw.switchesAfter(t, 1)
		took := time.Since(start)
		if !slices.Equal(got, []string{iqn + "/1=false"}) || took < limit+time.Second {
			t.Fatalf("TPG switches %v %v after the loss, want the TPG offline only after cmd_time_out and a second (%v)",
				got, took.Round(time.Millisecond), limit+time.Second)
		}
		h.lk.setOwner("gw-b")
		h.io.add(-1)
		if st := h.settled(t); st.State != "held-down" || st.ConnLosses != 1 {
			t.Fatalf("after the cut: %+v", st)
		}
	})
	t.Run("idle", func(t *testing.T) {
		sw := &fakeSwitch{}
		h := newHarness(t, options{ports: localPorts(), sw: sw, cmdTimeout: time.Minute})
		h.expect(t, write, Busy)
		h.settled(t)
		start := time.Now()
		h.g.NoteError(syscall.ETIMEDOUT)
		if got := sw.switchesAfter(t, 1); len(got) == 0 || got[0] != iqn+"/1=false" || time.Since(start) > 10*time.Second {
			t.Fatalf("TPG switches %v after %v, want the idle device's TPG offline at once", got, time.Since(start))
		}
		h.settled(t)
	})
}

// Without a switch, or without ports, a lost connection is recovered from
// all the same.
func TestConnectionLossWithoutSwitch(t *testing.T) {
	for name, o := range map[string]options{
		"no_switch": {ports: localPorts()},
		"no_ports":  {sw: &fakeSwitch{}},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, o)
			h.g.NoteError(syscall.ETIMEDOUT)
			if st := h.settled(t); st.State != "unlocked" || st.ConnLosses != 1 {
				t.Fatalf("after recovering: %+v", st)
			}
			if sw, ok := o.sw.(*fakeSwitch); ok && len(sw.switches()) != 0 {
				t.Errorf("switches %v without ports to switch", sw.switches())
			}
		})
	}
}

func TestConnectionLossRetriesReopen(t *testing.T) {
	sw := &fakeSwitch{}
	h := newHarness(t, options{ports: localPorts(), sw: sw})
	h.lk.reopenErr = []error{syscall.ETIMEDOUT}
	h.g.NoteError(syscall.ETIMEDOUT)
	st := h.settled(t)
	if st.State != "unlocked" {
		t.Fatalf("state %q, want unlocked", st.State)
	}
	if calls := h.lk.callList(); !slices.Equal(calls, []string{"reopen", "reopen"}) {
		t.Errorf("calls %v, want a failed reopen retried", calls)
	}
	if got := sw.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
		t.Errorf("TPG switches %v", got)
	}
}

func TestConnectionLossDuringAcquisition(t *testing.T) {
	h := newHarness(t, options{ports: localPorts(), sw: &fakeSwitch{}})
	hold := make(chan struct{})
	h.lk.acquireHold = hold
	h.expect(t, write, Busy)
	h.g.NoteError(syscall.ETIMEDOUT)
	close(hold)
	st := h.settled(t)
	if st.ConnLosses != 1 || st.State != "unlocked" {
		t.Fatalf("after the acquisition: %+v, want the connection loss handled", st)
	}
	want := []string{"acquire", "reopen"}
	if calls := h.lk.callList(); !slices.Equal(calls, want) {
		t.Errorf("calls %v, want %v", calls, want)
	}
}

// A device that answered Busy past its bound escalates: the gate
// recovers as from a lost connection, at once when no worker runs, after
// the worker when one does (here a lock acquisition), and not twice when
// it recovers already.
func TestEscalate(t *testing.T) {
	t.Run("locked", func(t *testing.T) {
		h, sw := lockedHarness(t)
		h.g.Escalate()
		st := h.settled(t)
		if st.State != "unlocked" || st.Escalations != 1 || st.ConnLosses != 1 {
			t.Fatalf("after the escalation: %+v", st)
		}
		if got := sw.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
			t.Errorf("TPG switches %v, want the local TPG offline then back", got)
		}
		if calls := h.lk.callList(); !slices.Equal(calls, []string{"acquire", "reopen"}) {
			t.Errorf("calls %v, want a reopen after the acquisition", calls)
		}
	})
	t.Run("during_acquisition", func(t *testing.T) {
		h := newHarness(t, options{ports: localPorts(), sw: &fakeSwitch{}})
		hold := make(chan struct{})
		h.lk.acquireHold = hold
		h.expect(t, write, Busy)
		h.g.Escalate()
		if st := h.g.Status(); st.State != "locking" {
			t.Fatalf("state %q while the acquisition runs, want locking", st.State)
		}
		close(hold)
		st := h.settled(t)
		if st.Escalations != 1 || st.ConnLosses != 1 || st.State != "unlocked" {
			t.Fatalf("after the acquisition: %+v", st)
		}
	})
	t.Run("recovering", func(t *testing.T) {
		h := newHarness(t, options{ports: localPorts(), sw: &fakeSwitch{}})
		h.io.add(1)
		h.g.NoteError(syscall.ETIMEDOUT)
		h.g.Escalate()
		h.io.add(-1)
		st := h.settled(t)
		if st.Escalations != 1 || st.ConnLosses != 1 {
			t.Fatalf("after recovering: %+v, want one recovery", st)
		}
		if calls := h.lk.callList(); !slices.Equal(calls, []string{"reopen"}) {
			t.Errorf("calls %v, want one reopen", calls)
		}
	})
}

// A TPG shared by the devices of two gates stays offline until both
// reopened.
func TestSharedTPGBackWhenLastGateRecovered(t *testing.T) {
	sw := &fakeSwitch{}
	holds := new(Holds)
	a := newHarness(t, options{ports: localPorts(), sw: sw, holds: holds})
	b := newHarness(t, options{ports: localPorts(), sw: sw, holds: holds})
	a.io.add(1)
	b.io.add(1)
	a.g.NoteError(syscall.ETIMEDOUT)
	b.g.NoteError(syscall.ETIMEDOUT)
	// Each gate took the TPG offline before its reopen waits.
	a.io.waitedOn(t)
	b.io.waitedOn(t)
	a.io.add(-1)
	a.settled(t)
	if got := sw.switches(); !slices.Equal(got, []string{iqn + "/1=false"}) {
		t.Fatalf("with one gate still recovering: switches %v", got)
	}
	b.io.add(-1)
	b.settled(t)
	if got := sw.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
		t.Errorf("switches %v", got)
	}
}

// blockingSwitch blocks taking one TPG offline until released, as the
// kernel does while that TPG's sessions still have commands in flight.
type blockingSwitch struct {
	fakeSwitch
	block   TPG
	blocked chan struct{} // closed once the switch blocks
	release chan struct{}
}

func (s *blockingSwitch) SetTPGEnabled(wwn string, tpgt uint16, on bool) error {
	if !on && (TPG{wwn, tpgt}) == s.block {
		close(s.blocked)
		<-s.release
	}
	return s.fakeSwitch.SetTPGEnabled(wwn, tpgt, on)
}

// One TPG whose switch blocks holds up no other (issue 15's partition with
// ceph-iscsi's cmd_time_out 0: taking A's TPG offline waits in the kernel
// for the writes held for the fence, as long as the cut lasts).
func TestBlockedTPGSwitchHoldsUpNoOther(t *testing.T) {
	stuck, other := TPG{"iqn.2026-01.test:stuck", 1}, TPG{"iqn.2026-01.test:other", 1}
	sw := &blockingSwitch{block: stuck, blocked: make(chan struct{}), release: make(chan struct{})}
	var holds Holds
	log := zerolog.New(zerolog.NewTestWriter(t))
	held := make(chan func())
	go func() { held <- holds.hold(log, sw, []TPG{stuck}) }()
	<-sw.blocked
	done := make(chan struct{})
	go func() {
		holds.hold(log, sw, []TPG{other})()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the other TPG's offline and back waited for the stuck TPG's switch")
	}
	if got := sw.switches(); !slices.Equal(got, []string{other.WWN + "/1=false", other.WWN + "/1=true"}) {
		t.Errorf("switches %v with the stuck one still blocked", got)
	}
	close(sw.release)
	(<-held)()
	if got := sw.switches(); !slices.Equal(got[2:], []string{stuck.WWN + "/1=false", stuck.WWN + "/1=true"}) {
		t.Errorf("switches %v, want the stuck TPG offline then back after its release", got)
	}
}

func TestCloseStopsWorkers(t *testing.T) {
	h := newHarness(t, options{})
	h.lk.acquireHold = make(chan struct{}) // never released
	h.expect(t, write, Busy)
	done := make(chan struct{})
	go func() {
		h.g.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the acquisition")
	}
	h.expect(t, write, Busy)
	if calls := h.lk.callList(); len(calls) != 1 {
		t.Errorf("calls %v after Close, want the one acquisition", calls)
	}
}

// Ports that refuse media access refuse it whoever holds the lock, reads
// too, and the gate never calls the Locker for them.
func TestPortRefusal(t *testing.T) {
	for _, v := range []Verdict{Standby, Unavailable} {
		t.Run(v.String(), func(t *testing.T) {
			ports := localPorts()
			ports.set(v)
			h := newHarness(t, options{ports: ports})
			h.expect(t, write, v)
			h.expect(t, read, v)
			if calls := h.lk.callList(); len(calls) != 0 {
				t.Errorf("calls %v at a refusing port", calls)
			}
			if st := h.g.Status(); st.Refused != 0 || st.State != "unlocked" {
				t.Errorf("status %+v: port refusals are not hold-down refusals", st)
			}
		})
	}
}

// The gate asks Ports again at most refusalTTL later, and takes what a
// Transition says at once.
func TestPortRefusalFollowsPorts(t *testing.T) {
	ports := localPorts()
	ports.set(Standby)
	h := newHarness(t, options{ports: ports})
	h.expect(t, read, Standby)
	ports.set(Pass)
	h.expect(t, read, Standby)
	h.clock.advance(refusalTTL)
	h.expect(t, read, Pass)
	if _, pending := h.g.Transition(Transition{Refusal: Unavailable}, nil); pending {
		t.Fatal("a transition of no local group is pending")
	}
	h.expect(t, read, Unavailable)
	if ports.reads != 2 {
		t.Errorf("Ports asked %d times, want 2", ports.reads)
	}
}

// transition runs Transition and returns a channel that receives its
// result when it was pending.
func transition(h *harness, tr Transition) (v Verdict, pending bool, result chan error) {
	result = make(chan error, 1)
	v, pending = h.g.Transition(tr, func(err error) {
		// The gate settles before it reports.
		if s := h.g.state.Load(); working(s) {
			err = fmt.Errorf("reported in state %s", stateNames[s])
		}
		result <- err
	})
	return v, pending, result
}

func wait(t *testing.T, result chan error) error {
	t.Helper()
	select {
	case err := <-result:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("transition not done within 10 s")
		return nil
	}
}

func TestTransition(t *testing.T) {
	t.Run("active_takes_the_lock_before_it_is_done", func(t *testing.T) {
		h := newHarness(t, options{})
		hold := make(chan struct{})
		h.lk.acquireHold = hold
		_, pending, result := transition(h, Transition{Active: true})
		if !pending {
			t.Fatal("not pending")
		}
		// Writes meanwhile wait for the lock like any implicit
		// transition; a second transition joins the first.
		h.expect(t, write, Busy)
		_, pending2, result2 := transition(h, Transition{Active: true})
		if !pending2 {
			t.Fatal("second transition not pending")
		}
		select {
		case err := <-result:
			t.Fatalf("done (%v) before the lock was taken", err)
		case <-time.After(20 * time.Millisecond):
		}
		close(hold)
		for _, r := range []chan error{result, result2} {
			if err := wait(t, r); err != nil {
				t.Fatal(err)
			}
		}
		if st := h.g.Status(); st.State != "locked" || st.Acquisitions != 1 {
			t.Fatalf("after the transition: %+v", st)
		}
		h.expect(t, write, Pass)
		if v, pending, _ := transition(h, Transition{Active: true}); pending || v != Pass {
			t.Errorf("active again: %s, pending %v; want Pass at once", v, pending)
		}
	})
	t.Run("failure", func(t *testing.T) {
		h := newHarness(t, options{})
		h.lk.acquireErr = []error{syscall.EIO}
		_, pending, result := transition(h, Transition{Active: true})
		if !pending {
			t.Fatal("not pending")
		}
		if err := wait(t, result); err == nil {
			t.Fatal("a failed acquisition reported success")
		}
	})
	t.Run("overrides_the_hold_down", func(t *testing.T) {
		h := newHarness(t, options{})
		lostLock(t, h, syscall.ESHUTDOWN)
		if st := h.settled(t); st.State != "held-down" {
			t.Fatalf("state %q, want held-down", st.State)
		}
		_, pending, result := transition(h, Transition{Active: true})
		if !pending {
			t.Fatal("not pending")
		}
		if err := wait(t, result); err != nil {
			t.Fatal(err)
		}
		if st := h.g.Status(); st.State != "locked" || st.Acquisitions != 2 {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("inactive_releases_the_lock", func(t *testing.T) {
		h := newHarness(t, options{ports: localPorts()})
		h.expect(t, write, Busy)
		h.settled(t)
		_, pending, result := transition(h, Transition{Inactive: true, Refusal: Standby})
		if !pending {
			t.Fatal("not pending")
		}
		if err := wait(t, result); err != nil {
			t.Fatal(err)
		}
		if st := h.g.Status(); st.State != "unlocked" || st.Owner != "" {
			t.Fatalf("after the transition to standby: %+v", st)
		}
		if calls := h.lk.callList(); !slices.Equal(calls, []string{"acquire", "release"}) {
			t.Errorf("calls %v, want acquire then release", calls)
		}
		h.expect(t, write, Standby)
		h.expect(t, read, Standby)
	})
	t.Run("failed_release_keeps_the_lock", func(t *testing.T) {
		h := newHarness(t, options{})
		h.expect(t, write, Busy)
		h.settled(t)
		h.lk.releaseErr = []error{syscall.EIO}
		_, _, result := transition(h, Transition{Inactive: true, Refusal: Standby})
		if err := wait(t, result); err == nil {
			t.Fatal("a failed release reported success")
		}
		if st := h.g.Status(); st.State != "locked" {
			t.Errorf("state %q, want locked", st.State)
		}
	})
	t.Run("nothing_to_do", func(t *testing.T) {
		h := newHarness(t, options{})
		for _, tr := range []Transition{{}, {Inactive: true, Refusal: Standby}} {
			if v, pending, _ := transition(h, tr); pending || v != Pass {
				t.Errorf("%+v while unlocked: %s, pending %v; want Pass at once", tr, v, pending)
			}
		}
		if calls := h.lk.callList(); len(calls) != 0 {
			t.Errorf("calls %v", calls)
		}
	})
	t.Run("busy_while_recovering", func(t *testing.T) {
		h := newHarness(t, options{})
		h.io.add(1)
		h.g.NoteError(syscall.ETIMEDOUT)
		if v, pending, _ := transition(h, Transition{Active: true}); pending || v != Busy {
			t.Errorf("while recovering: %s, pending %v; want Busy", v, pending)
		}
		h.io.add(-1)
		h.settled(t)
	})
	t.Run("closed", func(t *testing.T) {
		h := newHarness(t, options{})
		h.g.Close()
		if v, pending, _ := transition(h, Transition{Active: true}); pending || v != Busy {
			t.Errorf("closed: %s, pending %v; want Busy", v, pending)
		}
	})
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Pass: "pass", Busy: "busy", Standby: "standby", Unavailable: "unavailable", 9: "Verdict(9)"} {
		if got := v.String(); got != want {
			t.Errorf("%d: %q, want %q", v, got, want)
		}
	}
}
