package handler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Opening backends when many devices open at once.
//
// A restarted daemon adopts every device at once, and a gateway may hold
// hundreds. Opening an rbd backend is a client's monitor handshake, reads
// of the image's header, a watch and a service-map entry: work for a
// cluster that may be slow already (it is what made the previous daemon
// fail). At 256 devices, all opened at once on the emulated cluster of
// make scale (2026-12-06 02:45), each open outlasted the open timeout, each
// device was retried with a new open while the late one was thrown away,
// and 10 of the 256 were served after 21 minutes (708 opens). So:
//
//   - At most OpenConcurrency backend opens run at once. A device's first
//     attempt (ADDED, adoption) waits for a slot within its open timeout;
//     a device already waiting for its backend (blocked, BUSY) waits for a
//     slot as long as it takes, and its open timeout starts once it has
//     one.
//   - An open that outlasts its caller's timeout goes on (up to
//     openRunFactor times the open timeout, its own deadline, which the rbd
//     handler turns into librados' timeouts), holding its slot. The
//     device's next attempt takes it up instead of starting another, so a
//     slow cluster finishes each open once.
//   - A device removed, or a daemon stopping, cancels the open it left
//     running and closes whatever it opens.

// DefaultOpenConcurrency is how many backend opens run at once unless
// SetOpenConcurrency says otherwise (tcmu.conf open_concurrency).
const DefaultOpenConcurrency = 8

// openRunFactor times the open timeout is how long one backend open may
// run in all, across the attempts that wait for it.
const openRunFactor = 4

// errNoOpenSlot is the cause of a first attempt that found every slot
// taken for all of its open timeout.
var errNoOpenSlot = errors.New("every backend open slot taken")

// A backendOpen is one call of a handler's Open. It may outlive the
// attempt that started it; the device's next attempt takes it up.
type backendOpen struct {
	info   DeviceInfo
	log    zerolog.Logger
	since  time.Time
	cancel context.CancelFunc
	done   chan struct{} // closed when Open returned

	// Under Manager.mu.
	be        Backend
	err       error
	abandoned bool // its device is gone: close what it opens
}

// SetOpenConcurrency sets how many backend opens may run at once (n < 1
// restores DefaultOpenConcurrency). Opens already running keep the slots
// they hold.
func (m *Manager) SetOpenConcurrency(n int) {
	if n < 1 {
		n = DefaultOpenConcurrency
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cap(m.openSlots) != n {
		m.openSlots = make(chan struct{}, n)
	}
}

// openBackend opens the backend of the device uio with h, or takes up the
// open an earlier attempt of the same device left running. waiting says
// the caller is the device's waiter (waiting.go), which waits for a free
// slot without a deadline. It returns an error matching
// context.DeadlineExceeded when the open did not finish within the open
// timeout; the open then goes on for the next attempt.
func (m *Manager) openBackend(ctx context.Context, uio string, h Handler, info DeviceInfo, log zerolog.Logger, waiting bool) (Backend, error) {
	timeout := m.OpenTimeout()
	m.mu.Lock()
	o := m.inflight[uio]
	if o != nil && o.info != info {
		// Resized or reconfigured since: that open serves the old device.
		m.abandonLocked(uio)
		o = nil
	}
	slots := m.openSlots
	m.mu.Unlock()

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	if o == nil {
		var slotDeadline <-chan time.Time
		if !waiting {
			slotDeadline = deadline.C
		}
		select {
		case slots <- struct{}{}:
		case <-slotDeadline:
			return nil, fmt.Errorf("%w: %d opens ran for all of the open timeout (%s): %w", errNoOpenSlot, cap(slots), timeout, context.DeadlineExceeded)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if waiting {
			deadline.Reset(timeout)
		}
		o = m.startOpen(uio, h, info, log, timeout, slots)
	}
	select {
	case <-o.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		if o.abandoned {
			return nil, fmt.Errorf("open of %s abandoned: %w", info.Name, context.Canceled)
		}
		delete(m.inflight, uio)
		return o.be, o.err
	case <-deadline.C:
		return nil, fmt.Errorf("backend open timed out (open_timeout %s, running for %s); it goes on and the next attempt takes it up: %w",
			timeout, time.Since(o.since).Round(time.Second), context.DeadlineExceeded)
	case <-ctx.Done():
		m.abandon(uio)
		return nil, ctx.Err()
	}
}

// startOpen runs h.Open for the device uio in the background, holding a
// slot of slots (taken by the caller) until it returns.
func (m *Manager) startOpen(uio string, h Handler, info DeviceInfo, log zerolog.Logger, timeout time.Duration, slots chan struct{}) *backendOpen {
	octx, cancel := context.WithTimeout(context.Background(), openRunFactor*timeout)
	o := &backendOpen{info: info, log: log, since: time.Now(), cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	if m.inflight == nil {
		m.inflight = map[string]*backendOpen{}
	}
	m.inflight[uio] = o
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		be, err := h.Open(octx, info, log)
		cancel()
		<-slots
		// Published and closed under the lock, so that abandonLocked
		// either sees it done and closes be, or marks it abandoned first.
		m.mu.Lock()
		o.be, o.err = be, err
		orphan := o.abandoned
		close(o.done)
		m.mu.Unlock()
		if orphan {
			o.closeOrphan()
		}
	}()
	return o
}

// closeOrphan closes what an abandoned open opened.
func (o *backendOpen) closeOrphan() {
	if o.be == nil {
		return
	}
	if err := o.be.Close(); err != nil {
		o.log.Warn().Err(err).Msg("close backend opened after its device went away")
	}
}

// abandon cancels the open the device uio left running, if any; what it
// opens is closed.
func (m *Manager) abandon(uio string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.abandonLocked(uio)
}

func (m *Manager) abandonLocked(uio string) {
	o := m.inflight[uio]
	if o == nil {
		return
	}
	delete(m.inflight, uio)
	o.abandoned = true
	o.cancel()
	select {
	case <-o.done:
		// Finished before anyone took it up: close it here, outside the
		// lock (an rbd image's close waits for the cluster).
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			o.closeOrphan()
		}()
	default:
	}
}

// abandonAll cancels every open left running (Shutdown).
func (m *Manager) abandonAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for uio := range m.inflight {
		m.abandonLocked(uio)
	}
}

// Closing backends when many devices close at once.
//
// A daemon stopping closes every device. Closing an rbd backend is the
// reverse of its open (the exclusive lock released and its watchers told,
// the watch removed, the client's sessions ended and its threads joined):
// at 256 devices all closed at once on the emulated cluster of make scale
// (2026-12-06 04:46) SIGTERM took 31 s to exit, tcmu-runner, which closes
// one after the other, 13 s. So a shutdown runs at most OpenConcurrency
// closes at once; one that takes longer than closeSlotHold (a cluster that
// does not answer: rbd_close waits for up to the op timeout) gives its slot
// to the next, so a dead cluster does not make the closes wait in line.

// closeSlotHold is how long one close holds its slot.
const closeSlotHold = 2 * time.Second

// closeSlots bounds the closes of a shutdown; a nil *closeSlots does not.
type closeSlots struct{ c chan struct{} }

func newCloseSlots(n int) *closeSlots {
	return &closeSlots{c: make(chan struct{}, max(n, 1))}
}

// take waits for a slot and returns its release, which the caller calls
// once the close is done; the slot is released after closeSlotHold anyway.
func (s *closeSlots) take() (release func()) {
	if s == nil {
		return func() {}
	}
	s.c <- struct{}{}
	var once sync.Once
	give := func() { once.Do(func() { <-s.c }) }
	t := time.AfterFunc(closeSlotHold, give)
	return func() {
		t.Stop()
		give()
	}
}
