package handler_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/mem"
)

// slowOpens is a backend handler ("slow") whose opens block until the
// test releases the device, or fail with the error the test sets: a
// cluster that does not answer, then does.
type slowOpens struct {
	mu    sync.Mutex
	gates map[string]chan struct{} // by device name; closed: opens succeed
	fail  map[string]error         // by device name: opens fail at once
	opens map[string]int
	// running is the number of opens in progress, peak its maximum;
	// succeeded and closed count backends opened and closed.
	running, peak     int
	succeeded, closed int
	// closeDelay is how long each Close takes; a Close of a device in
	// closeHangs waits until its channel is closed. closing counts the
	// Closes in progress, closePeak its maximum.
	closeDelay         time.Duration
	closeHangs         map[string]chan struct{}
	closing, closePeak int
}

// backends returns how many backends opened and how many were closed.
func (s *slowOpens) backends() (opened, closed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.succeeded, s.closed
}

func (s *slowOpens) peakRunning() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// countedBackend counts its Close in slowOpens, and takes as long as it
// says.
type countedBackend struct {
	handler.Backend
	s    *slowOpens
	name string
}

func (b countedBackend) Close() error {
	s := b.s
	s.mu.Lock()
	s.closing++
	s.closePeak = max(s.closePeak, s.closing)
	delay, hang := s.closeDelay, s.closeHangs[b.name]
	s.mu.Unlock()
	time.Sleep(delay)
	if hang != nil {
		<-hang
	}
	s.mu.Lock()
	s.closing--
	s.closed++
	s.mu.Unlock()
	return b.Backend.Close()
}

// closes returns the Closes in progress and their peak.
func (s *slowOpens) closes() (now, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing, s.closePeak
}

func newSlowOpens() *slowOpens {
	return &slowOpens{gates: map[string]chan struct{}{}, fail: map[string]error{}, opens: map[string]int{}, closeHangs: map[string]chan struct{}{}}
}

func (s *slowOpens) gate(name string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.gates[name]
	if !ok {
		g = make(chan struct{})
		s.gates[name] = g
	}
	return g
}

// release lets name's opens, the one blocked now and those to come, succeed.
func (s *slowOpens) release(name string) { close(s.gate(name)) }

func (s *slowOpens) opened(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opens[name]
}

func (s *slowOpens) handler() handler.Handler {
	inner := mem.Handler()
	return handler.Handler{
		Subtype:     "slow",
		CheckConfig: inner.CheckConfig,
		Open: func(ctx context.Context, info handler.DeviceInfo, log zerolog.Logger) (handler.Backend, error) {
			s.mu.Lock()
			s.opens[info.Name]++
			err := s.fail[info.Name]
			s.running++
			s.peak = max(s.peak, s.running)
			s.mu.Unlock()
			defer func() {
				s.mu.Lock()
				s.running--
				s.mu.Unlock()
			}()
			if err != nil {
				return nil, err
			}
			select {
			case <-s.gate(info.Name):
				be, err := inner.Open(ctx, info, log)
				if err != nil {
					return nil, err
				}
				s.mu.Lock()
				s.succeeded++
				s.mu.Unlock()
				return countedBackend{be, s, info.Name}, nil
			case <-ctx.Done():
				// What the rbd handler answers when the monitors are silent.
				return nil, fmt.Errorf("ceph did not answer in time: %w", ctx.Err())
			}
		},
	}
}

// newSlowManager is newManager with the slow handler beside mem, an open
// timeout and a retry backoff short enough for a test.
func newSlowManager(t *testing.T, openTimeout time.Duration) (*handler.Manager, *fakeKernel, *slowOpens) {
	k := newFakeKernel(t)
	s := newSlowOpens()
	m := handler.NewManager(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), k, []handler.Handler{mem.Handler(), s.handler()})
	m.SetOpenTimeout(openTimeout)
	m.SetRetryBackoff(20*time.Millisecond, 50*time.Millisecond)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		m.Shutdown(ctx)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Shutdown with devices waiting for their backend took %v", d)
		}
	})
	return m, k, s
}

// prompt runs f and fails the test if it takes longer than a second:
// "promptly" for work that must not wait for another device's open.
func prompt(t *testing.T, what string, f func() error) {
	t.Helper()
	start := time.Now()
	if err := f(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("%s took %v while another device's open was stuck", what, d)
	}
}

func state(m *handler.Manager, name string) handler.DeviceStatus {
	for _, s := range m.Status() {
		if s.Name == name {
			return s
		}
	}
	return handler.DeviceStatus{}
}

// One device's open blocks (its cluster is silent): adding, serving and
// removing other devices meanwhile takes no longer than it would alone.
func TestManagerSlowOpenHoldsUpNoOther(t *testing.T) {
	m, k, s := newSlowManager(t, time.Minute)
	slow, slowK := k.create("tcm-user/1/stuck/slow/x", 1<<20)
	added := make(chan error, 1)
	go func() { added <- m.Add(context.Background(), slow) }()
	eventually(t, "open of the stuck device started", func() bool { return s.opened("stuck") == 1 })
	if st := state(m, "stuck"); st.State != "opening" || !strings.Contains(st.Reason, "opening its backend") {
		t.Errorf("status during a slow first open: %+v, want opening", st)
	}

	for i := range 3 {
		ref, fk := k.create(fmt.Sprintf("tcm-user/1/d%d/mem/x", i), 1<<20)
		prompt(t, "Add "+ref.UIOName, func() error { return m.Add(context.Background(), ref) })
		if c := roundTrip(t, fk, tur, 0); c.Status != 0 {
			t.Fatalf("TEST UNIT READY on %s: status %#x", ref.UIOName, c.Status)
		}
		if i == 1 {
			prompt(t, "Remove "+ref.UIOName, func() error { return m.Remove(context.Background(), ref.UIOName) })
		}
	}
	select {
	case err := <-added:
		t.Fatalf("Add of the stuck device returned %v before its open did", err)
	default:
	}

	s.release("stuck")
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	if c := roundTrip(t, slowK, tur, 0); c.Status != 0 {
		t.Fatalf("TEST UNIT READY on the once stuck device: status %#x", c.Status)
	}
}

// ADDED for a device whose backend does not open within the open timeout
// is answered 0 (the enable succeeds), the device is blocked while it
// waits, reported as waiting with the reason, and served as soon as its
// backend opens.
func TestManagerAddTimesOutThenServes(t *testing.T) {
	m, k, s := newSlowManager(t, 100*time.Millisecond)
	ref, fk := k.create("tcm-user/1/late/slow/x", 1<<20)
	start := time.Now()
	if err := m.Add(context.Background(), ref); err != nil {
		t.Fatalf("Add of a device whose open timed out: %v, want nil (enabled, retried)", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Add took %v with an open timeout of 100ms", d)
	}
	eventually(t, "retries", func() bool { return s.opened("late") >= 3 })
	st := state(m, "late")
	if st.State != "waiting" || !strings.Contains(st.Reason, "did not answer in time") || st.Handler != "slow" || st.Size != 1<<20 {
		t.Errorf("status while waiting: %+v", st)
	}
	if ss := m.Stats(); len(ss) != 1 || !ss[0].Waiting || ss[0].Name != "late" || ss[0].Size != 1<<20 {
		t.Errorf("Stats while waiting: %+v, want late flagged waiting", ss)
	}
	acts := k.files[ref.UIOName].took()
	if len(acts) == 0 || acts[0] != "block" || slices.Contains(acts, "unblock") {
		t.Errorf("configfs actions while waiting %v: want blocked first and never unblocked", acts)
	}
	if err := m.Add(context.Background(), ref); !errors.Is(err, handler.ErrAlreadyServed) {
		t.Errorf("second ADDED while waiting: %v, want ErrAlreadyServed", err)
	}
	size := uint64(1 << 20)
	if err := m.Reconfigure(ref.UIOName, nil, &size, nil); err != nil {
		t.Errorf("resize while waiting: %v", err)
	}

	s.release("late")
	eventually(t, "served after the backend opened", func() bool { return state(m, "late").State == "running" })
	if c := roundTrip(t, fk, tur, 0); c.Status != 0 {
		t.Fatalf("TEST UNIT READY after the backend opened: status %#x", c.Status)
	}
	acts = k.files[ref.UIOName].took()
	if acts[len(acts)-1] != "unblock" || slices.Index(acts, "unblock") != len(acts)-1 {
		t.Errorf("configfs actions %v: want unblocked once, last", acts)
	}
	if ss := m.Stats(); len(ss) != 1 || ss[0].Waiting {
		t.Errorf("Stats once served: %+v", ss)
	}
	if st := state(m, "late"); st.Reason != "" {
		t.Errorf("reason still given once served: %q", st.Reason)
	}
}

// An open that fails for a reason a retry will not fix (no such image,
// wrong size) fails the enable, as before: the operator gets the reason.
func TestManagerAddRefusesWhatWillNotOpen(t *testing.T) {
	m, k, s := newSlowManager(t, time.Minute)
	ref, _ := k.create("tcm-user/1/bad/slow/x", 1<<20)
	s.mu.Lock()
	s.fail["bad"] = fmt.Errorf("open image rbd/bad: %w", syscall.ENOENT)
	s.mu.Unlock()
	if err := m.Add(context.Background(), ref); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Add = %v, want ENOENT", err)
	}
	if st := m.Status(); len(st) != 0 {
		t.Errorf("refused device listed: %+v", st)
	}
}

// A restarted daemon adopts N devices while one's cluster is silent: the
// others serve within the open timeout, adding and removing devices
// meanwhile is prompt, and the silent one, blocked all along, serves once
// its backend opens.
func TestManagerAdoptWithOneBlockedDevice(t *testing.T) {
	const timeout = 300 * time.Millisecond
	m, k, s := newSlowManager(t, timeout)
	stuck, stuckK := k.create("tcm-user/1/stuck/slow/x", 1<<20)
	var good []handler.DeviceRef
	for i := range 4 {
		ref, _ := k.create(fmt.Sprintf("tcm-user/1/g%d/mem/x", i), 1<<20)
		good = append(good, ref)
	}
	start := time.Now()
	if err := m.Adopt(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Errorf("Adopt took %v with an open timeout of %v", d, timeout)
	}
	for _, ref := range good {
		if c := roundTrip(t, k.devs[ref.UIOName], tur, 0); c.Status != 0 {
			t.Fatalf("TEST UNIT READY on %s: status %#x", ref.UIOName, c.Status)
		}
	}
	if st := state(m, "stuck"); st.State != "waiting" {
		t.Fatalf("stuck device: %+v, want waiting", st)
	}
	if got := k.files[stuck.UIOName].took(); len(got) < 2 || got[0] != "block" || got[1] != "reset" || slices.Contains(got, "unblock") {
		t.Errorf("stuck device's configfs actions %v: want block, reset and no unblock", got)
	}

	ref, fk := k.create("tcm-user/1/new/mem/x", 1<<20)
	prompt(t, "Add while a device waits", func() error { return m.Add(context.Background(), ref) })
	if c := roundTrip(t, fk, tur, 0); c.Status != 0 {
		t.Fatalf("TEST UNIT READY on the new device: status %#x", c.Status)
	}
	prompt(t, "Remove while a device waits", func() error { return m.Remove(context.Background(), good[0].UIOName) })

	s.release("stuck")
	eventually(t, "stuck device served", func() bool { return state(m, "stuck").State == "running" })
	if c := roundTrip(t, stuckK, tur, 0); c.Status != 0 {
		t.Fatalf("TEST UNIT READY on the once stuck device: status %#x", c.Status)
	}
	if got := k.files[stuck.UIOName].took(); got[len(got)-1] != "unblock" {
		t.Errorf("stuck device's configfs actions %v: want unblocked last", got)
	}
}

// REMOVED for a device waiting for its backend is answered at once, also
// while an attempt is stuck in the backend's open, and nothing retries it
// afterwards.
func TestManagerRemoveWhileWaiting(t *testing.T) {
	m, k, s := newSlowManager(t, time.Hour)
	ref, _ := k.create("tcm-user/1/gone/slow/x", 1<<20)
	s.mu.Lock()
	s.fail["gone"] = fmt.Errorf("connect: %w", syscall.ETIMEDOUT)
	s.mu.Unlock()
	if err := m.Adopt(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "retries", func() bool { return s.opened("gone") >= 2 })
	// The next attempt blocks in the open, with an hour to go.
	s.mu.Lock()
	delete(s.fail, "gone")
	n := s.opens["gone"]
	s.mu.Unlock()
	eventually(t, "attempt stuck in open", func() bool { return s.opened("gone") > n })
	prompt(t, "Remove of the waiting device", func() error { return m.Remove(context.Background(), ref.UIOName) })
	if st := m.Status(); len(st) != 0 {
		t.Errorf("removed device still listed: %+v", st)
	}
	n = s.opened("gone")
	time.Sleep(200 * time.Millisecond)
	if got := s.opened("gone"); got != n {
		t.Errorf("%d more opens after the device was removed", got-n)
	}
	if err := m.Remove(context.Background(), ref.UIOName); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("second Remove: %v, want ENODEV", err)
	}
}
