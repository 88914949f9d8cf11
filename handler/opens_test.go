package handler_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gotcmu/gotcmu/handler"
)

// A restart adopts more devices than may open at once while the cluster
// is slow (every open outlasts the open timeout): no more than
// OpenConcurrency opens run at any time, each device's backend is opened
// once (its waiter takes up the open its first attempt left running,
// instead of starting another), and every device is served.
func TestManagerAdoptBoundsOpensAndKeepsLateOnes(t *testing.T) {
	const (
		devices = 6
		slots   = 2
		timeout = 200 * time.Millisecond
	)
	m, k, s := newSlowManager(t, timeout)
	m.SetOpenConcurrency(slots)
	var refs []handler.DeviceRef
	for i := range devices {
		ref, _ := k.create(fmt.Sprintf("tcm-user/1/d%d/slow/x", i), 1<<20)
		refs = append(refs, ref)
	}
	start := time.Now()
	if err := m.Adopt(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Errorf("Adopt took %v with an open timeout of %v", d, timeout)
	}
	// Every first attempt has timed out, the first two opens still run,
	// and status says which timed out and which found no slot.
	timedOut := 0
	for i := range devices {
		st := state(m, fmt.Sprintf("d%d", i))
		if st.State != "waiting" {
			t.Fatalf("d%d: %+v, want waiting", i, st)
		}
		switch {
		case strings.Contains(st.Reason, "backend open timed out"):
			timedOut++
		case !strings.Contains(st.Reason, "every backend open slot taken"):
			t.Errorf("d%d waits for %q, want a timed out open or no free slot", i, st.Reason)
		}
	}
	if timedOut != slots {
		t.Errorf("%d devices' opens timed out, want %d (one per slot)", timedOut, slots)
	}
	// Each open finishes past its first attempt's deadline but within its
	// own (openRunFactor times the timeout).
	for i := range devices {
		s.release(fmt.Sprintf("d%d", i))
	}
	for i, ref := range refs {
		eventually(t, fmt.Sprintf("d%d served", i), func() bool { return state(m, fmt.Sprintf("d%d", i)).State == "running" })
		if c := roundTrip(t, k.devs[ref.UIOName], tur, 0); c.Status != 0 {
			t.Fatalf("TEST UNIT READY on d%d: status %#x", i, c.Status)
		}
	}
	if p := s.peakRunning(); p > slots {
		t.Errorf("%d opens ran at once, want at most %d", p, slots)
	}
	for i := range devices {
		if n := s.opened(fmt.Sprintf("d%d", i)); n != 1 {
			t.Errorf("d%d opened %d times, want once: a late open must be taken up, not repeated", i, n)
		}
	}
	if opened, closed := s.backends(); opened != devices || closed != 0 {
		t.Errorf("%d backends opened and %d closed, want %d and 0", opened, closed, devices)
	}
}

// A device removed while the open its attempt left running goes on: the
// open is cancelled, and a backend it opens anyway is closed, not leaked
// nor served.
func TestManagerRemoveClosesALateOpen(t *testing.T) {
	m, k, s := newSlowManager(t, 100*time.Millisecond)
	ref, _ := k.create("tcm-user/1/late/slow/x", 1<<20)
	if err := m.Add(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	eventually(t, "waiting", func() bool { return state(m, "late").State == "waiting" })
	// The handler ignores the cancel and opens anyway, as an rbd open
	// that has reached librados' uncancellable calls does.
	s.release("late")
	prompt(t, "Remove of the waiting device", func() error { return m.Remove(context.Background(), ref.UIOName) })
	eventually(t, "the late backend closed", func() bool {
		opened, closed := s.backends()
		return opened == closed
	})
	if st := m.Status(); len(st) != 0 {
		t.Errorf("removed device still listed: %+v", st)
	}
}

// The open timeout of a device's first attempt includes its wait for a
// slot: ADDED is answered within it even while every slot is taken.
func TestManagerAddAnsweredWhileSlotsAreTaken(t *testing.T) {
	const timeout = 100 * time.Millisecond
	m, k, s := newSlowManager(t, time.Hour)
	m.SetOpenConcurrency(1)
	busy, _ := k.create("tcm-user/1/busy/slow/x", 1<<20)
	go func() { _ = m.Add(context.Background(), busy) }()
	eventually(t, "the slot taken", func() bool { return s.opened("busy") == 1 })
	m.SetOpenTimeout(timeout)
	ref, _ := k.create("tcm-user/1/next/slow/x", 1<<20)
	start := time.Now()
	if err := m.Add(context.Background(), ref); err != nil {
		t.Fatalf("Add while the slot is taken: %v, want nil (enabled, retried)", err)
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Errorf("Add took %v with an open timeout of %v", d, timeout)
	}
	if n := s.opened("next"); n != 0 {
		t.Errorf("next opened %d times while the one slot was taken", n)
	}
	if st := state(m, "next"); st.State != "waiting" || !strings.Contains(st.Reason, "every backend open slot taken") {
		t.Errorf("status while waiting for a slot: %+v", st)
	}
	s.release("next")
	s.release("busy")
	eventually(t, "both served", func() bool {
		return state(m, "busy").State == "running" && state(m, "next").State == "running"
	})
}

// servedSlow adds n devices of the slow handler, named prefix0.., and
// waits until each is served.
func servedSlow(t *testing.T, m *handler.Manager, k *fakeKernel, s *slowOpens, prefix string, n int) {
	t.Helper()
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		s.release(name)
		ref, _ := k.create("tcm-user/1/"+name+"/slow/x", 1<<20)
		if err := m.Add(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
		eventually(t, name+" served", func() bool { return state(m, name).State == "running" })
	}
}

// A shutdown closes at most OpenConcurrency backends at once (256 rbd
// closes at once took SIGTERM 2.4 times tcmu-runner's serial closes in
// the guest), and uses that many.
func TestManagerShutdownBoundsCloses(t *testing.T) {
	const devices, slots = 6, 2
	m, k, s := newSlowManager(t, 5*time.Second)
	m.SetOpenConcurrency(slots)
	servedSlow(t, m, k, s, "c", devices)
	s.mu.Lock()
	s.closeDelay = 100 * time.Millisecond
	s.mu.Unlock()
	start := time.Now()
	m.Shutdown(context.Background())
	took := time.Since(start)
	if _, closed := s.backends(); closed != devices {
		t.Fatalf("%d backends closed, want %d", closed, devices)
	}
	if _, peak := s.closes(); peak != slots {
		t.Errorf("%d closes ran at once, want %d (open_concurrency)", peak, slots)
	}
	if min := devices / slots * 100 * time.Millisecond; took < min {
		t.Errorf("Shutdown took %v, less than %d rounds of %d closes of 100ms", took, devices/slots, slots)
	}
}

// A close that does not return (a cluster that does not answer) gives
// its slot to the next after a while: the closes of a dead cluster run
// side by side, not one op timeout after another.
func TestManagerShutdownHungCloseGivesUpItsSlot(t *testing.T) {
	m, k, s := newSlowManager(t, 5*time.Second)
	m.SetOpenConcurrency(1)
	servedSlow(t, m, k, s, "h", 2)
	hang := make(chan struct{})
	s.mu.Lock()
	s.closeHangs["h0"], s.closeHangs["h1"] = hang, hang
	s.mu.Unlock()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		m.Shutdown(context.Background())
		close(done)
	}()
	eventually(t, "both closes running", func() bool { now, _ := s.closes(); return now == 2 })
	if took := time.Since(start); took < time.Second {
		t.Errorf("the second close began %v after the first, within its hold of the only slot", took)
	}
	close(hang)
	<-done
	if _, closed := s.backends(); closed != 2 {
		t.Errorf("%d backends closed, want 2", closed)
	}
}
