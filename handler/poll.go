package handler

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/gotcmu/gotcmu/uio"
)

// EventWaiter is a uio.Waiter that also waits for a backend's completion fd:
// the uio device (uio.Device.WaitEvents), which puts both fds in one epoll
// set, so that the device's command loop sleeps in one place for both.
type EventWaiter interface {
	uio.Waiter
	// Watch adds fd to what WaitEvents waits for; -1 removes it.
	Watch(fd int) error
	// WaitEvents blocks until the ring is signalled (its event count
	// read), the watched fd is readable, timeout passes, or ctx is done;
	// now is the caller's latest clock read (see uio.Device.WaitEvents).
	WaitEvents(ctx context.Context, timeout time.Duration, now time.Time) (uio.Events, error)
}

// Poller is a backend whose completions the device's command loop
// collects itself (runPolled), as tcmu-runner's per-device thread does:
// the loop sleeps in one place for new commands and finished IOs, and
// one wake-up submits, completes and rings the doorbell, with no
// goroutine hand-off per IO.
type Poller interface {
	// PollFD is a non-blocking fd, out of Go's netpoller, readable while
	// completions wait for Poll.
	PollFD() int
	// SetPolled(true) hands the backend's completions to Poll: the
	// backend stops delivering them from a goroutine of its own.
	// SetPolled(false) takes them back (the loop has stopped, and IOs in
	// flight must still complete).
	SetPolled(on bool)
	// Poll delivers every finished IO (IO.Done) on the calling goroutine
	// and does the backend's periodic work when due (failing stuck IOs);
	// it does not block. The loop calls it at least every PollInterval
	// while the device has IOs in flight, and when PollFD is readable.
	Poll()
}

// PollInterval is the longest the polled loop sleeps without calling
// Poll while IOs are in flight: the stuck-IO sweep's period. With none in
// flight it sleeps until signalled.
const PollInterval = time.Second

// polled returns the waiter and backend of a device whose loop can poll.
func (d *Device) polled() (EventWaiter, Poller, bool) {
	w, ok := d.wait.(EventWaiter)
	if !ok {
		return nil, nil, false
	}
	p, ok := d.be.(Poller)
	if !ok {
		return nil, nil, false
	}
	return w, p, true
}

// runPolled is Run for a device whose uio fd and backend completion fd
// can be waited for together. Each wake-up delivers the completions that
// are in, then drains the ring, and rings the doorbell once for both:
// per batch one epoll_wait, one read of each fd that fired, one doorbell.
// Completions that arrive from elsewhere (a write failed after its
// client's fence, SYNCHRONIZE CACHE with IMMED) take the kicker as in Run.
func (d *Device) runPolled(ctx context.Context, w EventWaiter, p Poller) error {
	debug.SetPanicOnFault(true)
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	go d.kicker(kctx)
	if err := w.Watch(p.PollFD()); err != nil {
		return fmt.Errorf("watch backend completions: %w", err)
	}
	p.SetPolled(true)
	defer func() {
		p.SetPolled(false)
		if err := w.Watch(-1); err != nil {
			d.log.Warn().Err(err).Msg("stop watching backend completions")
		}
	}()
	timeout := PollInterval
	// One clock read per wake-up, shared by the poll's schedule, the
	// batch's start time and the next wait's timer (a vDSO read on real
	// hardware, a system call in a guest whose clocksource is not the TSC).
	now := time.Now()
	lastPoll := now
	for {
		ev, err := w.WaitEvents(ctx, timeout, now)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("wait for commands: %w", err)
		}
		now = time.Now()
		// Poll when the backend signalled, when the timer found the
		// device quiet, and at least every PollInterval while IOs are in
		// flight: a device kept busy by new commands is not woken by the
		// timer (uio.Device.WaitEvents), so its sweep and the settling
		// of IOs answered in C come with a wake-up it has anyway.
		if ev&uio.EventWatched != 0 || ev == 0 || (timeout > 0 && now.Sub(lastPoll) >= PollInterval) {
			if err := d.reap(p, ev&uio.EventRing == 0); err != nil {
				return err
			}
			lastPoll = now
		}
		if ev&uio.EventRing != 0 {
			if err := d.drain(now); err != nil {
				return err
			}
		}
		// The timer is for IOs in flight (the stuck-IO sweep, and IOs
		// answered in C that wait to be settled): with none, the loop
		// sleeps until the kernel or the backend signals it, so that an
		// idle device costs no wake-ups (a gateway's hundreds of idle LUNs
		// would otherwise wake it hundreds of times a second). Arming
		// and disarming cost a system call each, at the edges of an idle
		// spell, and under load at most one per PollInterval/2.
		if d.inflight.load() == 0 {
			timeout = -1
		} else {
			timeout = PollInterval
		}
	}
}

// reap delivers the backend's completions inside a batch, so that their
// responses share one doorbell: at the end of reap when last, or at the
// end of the drain that follows.
func (d *Device) reap(p Poller, last bool) (err error) {
	d.batching.Store(true)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fault while completing IO: %v", r)
			last = true
		}
		if last && d.batching.Swap(false) {
			d.doorbell()
		}
	}()
	p.Poll()
	return nil
}
