package handler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"
)

// DefaultOpenTimeout bounds each attempt to open a device's backend
// unless SetOpenTimeout says otherwise; the open itself may go on for
// openRunFactor times as long, taken up by the next attempt (opens.go).
// Without that deadline librados may wait up to client_mount_timeout
// (300 s) for monitors that do not answer; the rbd handler turns it into
// that timeout, so the C call itself ends, not only the wait for it.
const DefaultOpenTimeout = 30 * time.Second

// The backoff between attempts to open a waiting device's backend.
const (
	defaultRetryMin = time.Second
	defaultRetryMax = 30 * time.Second
)

// SetOpenTimeout sets how long opening one device's backend may take
// (d <= 0 restores DefaultOpenTimeout). It applies to opens that start
// afterwards.
func (m *Manager) SetOpenTimeout(d time.Duration) {
	m.openTimeout.Store(int64(max(d, 0)))
}

// OpenTimeout returns the deadline of one backend open.
func (m *Manager) OpenTimeout() time.Duration {
	if d := time.Duration(m.openTimeout.Load()); d > 0 {
		return d
	}
	return DefaultOpenTimeout
}

// timedOut reports whether an open failed for want of an answer within
// its deadline (an unreachable cluster), which a later attempt may get,
// rather than for a reason the operator must fix (no such image, wrong
// size), which an enable write should report.
func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT)
}

// A waiter retries opening a device the kernel has and gotcmu does not
// serve yet, because its backend failed to open (at adoption) or did not
// open in time (on ADDED). Meanwhile the device is blocked (block_dev=1):
// the kernel answers every command BUSY without queueing it, which
// initiators retry, and nothing about the device (capacity, VPD pages,
// data) is answered from a backend that is not there. Each attempt is
// AdoptDevice's sequence: block, reset the ring (commands that reached it
// before the block go back BUSY), open, unblock. A waiter ends when the
// device is served, removed (Remove, or gone from the kernel) or the
// manager shuts down; it holds the device's name in Manager.devices
// (as nil) all along, so an ADDED or adoption of it meanwhile is
// ErrAlreadyServed.
type waiter struct {
	ref    DeviceRef
	t      target
	size   int64
	since  time.Time
	cancel context.CancelFunc
	done   chan struct{} // closed when the retry loop returns

	mu       sync.Mutex
	attempts int
	lastErr  error
	next     time.Time
}

// opening is a device in its first attempt to open (add without a
// waiter), listed by Status so that a slow open is visible before it
// times out.
type opening struct {
	ref   DeviceRef
	t     target
	since time.Time
}

// wait starts retrying ref in the background after its open failed with
// cause. block says the device may not be blocked yet: on ADDED it
// becomes blockable only once the kernel has the reply and finishes the
// enable.
func (m *Manager) wait(ref DeviceRef, cause error, block bool) {
	t, err := m.resolve(ref)
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &waiter{ref: ref, t: t, since: time.Now(), cancel: cancel, done: make(chan struct{}), attempts: 1, lastErr: cause}
	if files, err := m.kernel.Files(ref); err == nil {
		w.size, _, _, _, _ = files.Attributes()
	}
	m.mu.Lock()
	if _, taken := m.devices[ref.UIOName]; taken || m.closed {
		if m.closed {
			m.abandonLocked(ref.UIOName)
		}
		m.mu.Unlock()
		cancel()
		return
	}
	m.devices[ref.UIOName] = nil
	if m.waiting == nil {
		m.waiting = map[string]*waiter{}
	}
	m.waiting[ref.UIOName] = w
	m.mu.Unlock()

	ev := m.log.Warn()
	msg := "backend did not open: device blocked (BUSY) and retried in the background"
	if errors.Is(cause, errNoOpenSlot) {
		// Many devices at once (a restart): no fault of this device's.
		ev, msg = m.log.Info(), "every open slot taken: device blocked (BUSY) until its backend opens in turn"
	}
	ev.Err(cause).Str("dev", t.name.Device).Str("uio", fmt.Sprintf("uio%d", ref.Minor)).
		Dur("open_timeout", m.OpenTimeout()).Msg(msg)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(w.done)
		m.retry(ctx, w, block)
	}()
}

// retry is a waiter's loop.
func (m *Manager) retry(ctx context.Context, w *waiter, block bool) {
	log := m.log.With().Str("dev", w.t.name.Device).Str("uio", fmt.Sprintf("uio%d", w.ref.Minor)).Logger()
	if block {
		m.blockWhenEnabled(ctx, w)
	}
	lo, hi := m.retryMin, m.retryMax
	if lo <= 0 {
		lo = defaultRetryMin
	}
	if hi < lo {
		hi = max(defaultRetryMax, lo)
	}
	delay := lo
	for {
		w.mu.Lock()
		w.next = time.Now().Add(delay)
		w.mu.Unlock()
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		err := m.add(ctx, w.ref, true, w)
		if err == nil {
			m.mu.Lock()
			delete(m.waiting, w.ref.UIOName)
			m.mu.Unlock()
			log.Info().Dur("waited", time.Since(w.since).Round(time.Millisecond)).Msg("backend opened: device served")
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !m.present(w.ref) {
			// Removed while its REMOVED event was lost (or never sent).
			m.mu.Lock()
			if m.waiting[w.ref.UIOName] == w {
				delete(m.waiting, w.ref.UIOName)
				delete(m.devices, w.ref.UIOName)
				m.abandonLocked(w.ref.UIOName)
			}
			m.mu.Unlock()
			log.Info().Msg("device gone from the kernel: no longer waiting for its backend")
			return
		}
		delay = min(delay*2, hi)
		w.mu.Lock()
		w.attempts++
		w.lastErr = err
		attempts := w.attempts
		w.mu.Unlock()
		log.Warn().Err(err).Int("attempts", attempts).Dur("retry_in", delay).Msg("backend still does not open")
	}
}

// blockWhenEnabled blocks a device that was just enabled as soon as the
// kernel lets it (block_dev fails with EINVAL until the enable write
// finishes, which needs the ADDED reply), so that commands get BUSY from
// the kernel instead of waiting in a ring nobody serves. Commands that
// reach the ring before are answered BUSY by the first attempt's reset.
func (m *Manager) blockWhenEnabled(ctx context.Context, w *waiter) {
	files, err := m.kernel.Files(w.ref)
	if err != nil {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for files.BlockDev(true) != nil && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// present reports whether the kernel still has ref; true when it cannot
// tell.
func (m *Manager) present(ref DeviceRef) bool {
	refs, err := m.kernel.List()
	if err != nil {
		return true
	}
	return slices.ContainsFunc(refs, func(r DeviceRef) bool { return r.UIOName == ref.UIOName })
}

// dropWaiting ends the waiter of uioName, if any, and reports whether the
// device is now gone from the manager. It is false when there was no
// waiter, or when the waiter's last attempt opened the device: that
// device is served and Remove stops it as any other.
func (m *Manager) dropWaiting(uioName string) bool {
	m.mu.Lock()
	w := m.waiting[uioName]
	m.mu.Unlock()
	if w == nil {
		return false
	}
	w.cancel()
	<-w.done
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.waiting[uioName] != w {
		return false // served (or dropped as gone) meanwhile
	}
	delete(m.waiting, uioName)
	delete(m.devices, uioName)
	m.abandonLocked(uioName)
	m.log.Info().Str("uio", uioName).Msg("device removed while waiting for its backend")
	return true
}

// stopWaiting ends every waiter for Shutdown and keeps new ones from
// starting. Their devices stay blocked for the next daemon to adopt.
func (m *Manager) stopWaiting() {
	m.mu.Lock()
	m.closed = true
	ws := make([]*waiter, 0, len(m.waiting))
	for _, w := range m.waiting {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	for _, w := range ws {
		w.cancel()
	}
	for _, w := range ws {
		<-w.done
	}
	m.mu.Lock()
	for name := range m.waiting {
		delete(m.waiting, name)
		delete(m.devices, name)
	}
	m.mu.Unlock()
}

// waitingStatus reports the devices whose backend has not opened: in
// their first attempt (opening) or waiting for the next.
func (m *Manager) waitingStatus() []DeviceStatus {
	m.mu.Lock()
	ws := make([]*waiter, 0, len(m.waiting))
	for _, w := range m.waiting {
		ws = append(ws, w)
	}
	ops := make([]opening, 0, len(m.opening))
	for _, o := range m.opening {
		ops = append(ops, o)
	}
	m.mu.Unlock()
	out := make([]DeviceStatus, 0, len(ws)+len(ops))
	for _, o := range ops {
		out = append(out, DeviceStatus{
			Name:    o.t.name.Device,
			UIO:     fmt.Sprintf("uio%d", o.ref.Minor),
			Handler: o.t.subtype,
			Config:  o.t.config,
			State:   "opening",
			Reason:  fmt.Sprintf("opening its backend for %s (open timeout %s)", time.Since(o.since).Round(time.Second), m.OpenTimeout()),
		})
	}
	for _, w := range ws {
		w.mu.Lock()
		reason := fmt.Sprintf("waiting %s for its backend, %d attempts, next in %s: %v",
			time.Since(w.since).Round(time.Second), w.attempts, max(time.Until(w.next), 0).Round(time.Second), w.lastErr)
		w.mu.Unlock()
		out = append(out, DeviceStatus{
			Name:    w.t.name.Device,
			UIO:     fmt.Sprintf("uio%d", w.ref.Minor),
			Handler: w.t.subtype,
			Config:  w.t.config,
			Size:    w.size,
			State:   "waiting",
			Reason:  reason,
		})
	}
	return out
}
