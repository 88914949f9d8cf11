package uio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Events says what woke a WaitEvents.
type Events uint8

const (
	// EventRing: the kernel signalled the ring; the event count was read,
	// so commands queued from here on raise a new event.
	EventRing Events = 1 << iota
	// EventWatched: the fd given to Watch is readable.
	EventWatched
)

// Tags of the epoll entries.
const (
	tagUIO = iota
	tagWake
	tagWatched
	tagTick
)

// doorbell tells the kernel that completions are in the ring: any 4-byte
// write runs tcmu_irqcontrol, which reaps them.
func (d *Device) doorbell() error {
	d.fdMu.RLock()
	defer d.fdMu.RUnlock()
	if d.fd < 0 {
		return fmt.Errorf("ring doorbell of uio%d: %w", d.minor, os.ErrClosed)
	}
	for {
		_, err := unix.Write(d.fd, d.bell[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return d.ioError("ring doorbell of", err)
		}
		return nil
	}
}

// Wait blocks until the kernel signals the device (see Waiter). It reads
// the 4-byte event count before the caller scans the ring, never after:
// acknowledging after the scan loses a wakeup for commands queued in
// between (tcmu-runner PR #30).
func (d *Device) Wait(ctx context.Context) error {
	for {
		ev, err := d.WaitEvents(ctx, -1, time.Time{})
		if err != nil || ev&EventRing != 0 {
			return err
		}
	}
}

// Watch makes WaitEvents wait for fd to be readable too (level-triggered;
// the caller reads it): a backend's completion eventfd, so that the
// device's command loop sleeps in one place for commands and completions.
// One fd at a time; -1 stops watching. Called by the waiting goroutine.
func (d *Device) Watch(fd int) error {
	d.waitMu.Lock()
	defer d.waitMu.Unlock()
	if err := d.setupWait(); err != nil {
		return err
	}
	if d.watched >= 0 {
		if err := unix.EpollCtl(d.ep, unix.EPOLL_CTL_DEL, d.watched, nil); err != nil && err != unix.EBADF && err != unix.ENOENT {
			return fmt.Errorf("unwatch fd %d of uio%d: %w", d.watched, d.minor, err)
		}
		d.watched = -1
	}
	if fd < 0 {
		return nil
	}
	if err := unix.EpollCtl(d.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: tagWatched}); err != nil {
		return fmt.Errorf("watch fd %d with uio%d: %w", fd, d.minor, err)
	}
	d.watched = fd
	return nil
}

// WaitEvents blocks until the kernel signals the ring, the watched fd is
// readable, the timeout passes (0 events), or ctx is done, and says
// which. A positive timeout bounds a quiet spell, not each wait: the
// wait returns 0 events once no call of WaitEvents has come for between
// timeout/2 and timeout, so a loop that is woken more often than that is
// never woken by the timer (a one-shot timerfd in the epoll set, re-armed
// at most once per timeout/2 of calls, a system call then and none per
// wait otherwise); 0 only looks; a negative one never times out. now is
// the caller's latest clock read, from which the timer's re-arming is
// decided (a loop takes one per wake-up and shares it; the zero Time has
// WaitEvents read the clock): one taken before the loop's work of its last
// wake-up makes the timer fire up to that work's time early, never late. Like
// Wait, the first call reports EventRing at once. It returns ctx.Err()
// when ctx is done, an error wrapping os.ErrClosed after Close, and one
// wrapping ErrDeviceGone once the device was removed. It does not
// allocate.
//
// The goroutine parks in Go's netpoller on the epoll fd rather than
// blocking its thread in epoll_wait: a thread blocked in a system call
// keeps its P, which keeps the runtime's sysmon thread from its deep
// sleep and has it wake every few tens of microseconds, measured as a
// dozen context switches per IO at queue depth 1 in the guest.
func (d *Device) WaitEvents(ctx context.Context, timeout time.Duration, now time.Time) (Events, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d.waitMu.Lock()
	defer d.waitMu.Unlock()
	if err := d.watch(ctx); err != nil {
		return 0, err
	}
	if err := d.setupWait(); err != nil {
		return 0, err
	}
	if !d.primed {
		d.primed = true
		return EventRing, nil
	}
	if timeout > 0 {
		// Re-armed only when it would fire sooner than timeout/2 from now.
		if now.IsZero() {
			now = time.Now()
		}
		if d.tickAt.IsZero() || d.tickAt.Sub(now) < timeout/2 {
			if err := d.setTick(timeout); err != nil {
				return 0, err
			}
			d.tickAt = now.Add(timeout)
		}
	} else if timeout < 0 && !d.tickAt.IsZero() {
		if err := d.setTick(0); err != nil {
			return 0, err
		}
		d.tickAt = time.Time{}
	}
	for {
		var n int
		var err error
		if timeout == 0 {
			n, err = unix.EpollWait(d.ep, d.evs[:], 0)
		} else {
			d.nev, d.everr = 0, nil
			if rerr := d.epRC.Read(d.epollFn); rerr != nil {
				return 0, fmt.Errorf("wait for uio%d: %w", d.minor, rerr)
			}
			n, err = d.nev, d.everr
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for uio%d: %w", d.minor, err)
		}
		var ev Events
		ticked := false
		for _, e := range d.evs[:n] {
			switch e.Fd {
			case tagWake:
				unix.Read(d.wake, d.count[:])
				if err := d.stopped(ctx); err != nil {
					return 0, err
				}
			case tagTick:
				unix.Read(d.tfd, d.count[:])
				ticked = true
				d.tickAt = time.Time{} // it fired: one-shot, disarmed
			case tagWatched:
				ev |= EventWatched
			case tagUIO:
				ok, err := d.readCount()
				if err != nil {
					return 0, err
				}
				if ok {
					ev |= EventRing
				}
			}
		}
		if ev != 0 || ticked || timeout == 0 {
			return ev, nil
		}
	}
}

// epollWait is the function the netpoller calls while the epoll fd is
// readable (bound once in setupWait, so a wait does not allocate): it
// takes the ready events without blocking, and asks to be parked again
// when there were none.
func (d *Device) epollWait(fd uintptr) bool {
	n, err := unix.EpollWait(int(fd), d.evs[:], 0)
	if err == unix.EINTR {
		return false
	}
	d.nev, d.everr = n, err
	return n > 0 || err != nil
}

// setTick arms the one-shot timer to fire once, after the given time (0
// disarms it; a pending expiry is dropped either way). Called with waitMu
// held.
func (d *Device) setTick(after time.Duration) error {
	ts := unix.NsecToTimespec(int64(after))
	if err := unix.TimerfdSettime(d.tfd, 0, &unix.ItimerSpec{Value: ts}, nil); err != nil {
		return fmt.Errorf("wait for uio%d: arm timer: %w", d.minor, err)
	}
	return nil
}

// readCount reads the 4-byte event count; ok is false when there was
// none to read (a wake-up already consumed).
func (d *Device) readCount() (ok bool, err error) {
	for {
		n, err := unix.Read(d.fd, d.ack[:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false, nil
		case err != nil:
			return false, d.ioError("wait for", err)
		case n != len(d.ack):
			return false, fmt.Errorf("wait for uio%d: read returned %d bytes, want 4: %w", d.minor, n, io.ErrUnexpectedEOF)
		}
		return true, nil
	}
}

// stopped is why a wait woken through the wake eventfd ends: Close, ctx,
// or nothing (a wake-up left over from an earlier context).
func (d *Device) stopped(ctx context.Context) error {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return fmt.Errorf("wait for uio%d: %w", d.minor, os.ErrClosed)
	}
	return ctx.Err()
}

// setupWait creates the epoll instance at the first wait, so that a
// device opened but never waited on (and the regular files tests map)
// needs none: the uio fd, the wake eventfd and a timerfd, the epoll fd
// itself non-blocking and in Go's netpoller. Called with waitMu held.
func (d *Device) setupWait() error {
	if d.ep >= 0 {
		return nil
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("wait for uio%d: create epoll: %w", d.minor, err)
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return fmt.Errorf("wait for uio%d: create timerfd: %w", d.minor, err)
	}
	fail := func(err error) error {
		unix.Close(ep)
		unix.Close(tfd)
		return fmt.Errorf("wait for uio%d: epoll: %w", d.minor, err)
	}
	for _, e := range []struct {
		fd, tag int
	}{{d.fd, tagUIO}, {d.wake, tagWake}, {tfd, tagTick}} {
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, e.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(e.tag)}); err != nil {
			return fail(err)
		}
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		return fail(err)
	}
	// Non-blocking, so os.NewFile puts it in the netpoller.
	f := os.NewFile(uintptr(ep), "uio-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(tfd)
		return fmt.Errorf("wait for uio%d: epoll: %w", d.minor, err)
	}
	d.ep, d.epf, d.epRC, d.tfd = ep, f, rc, tfd
	d.epollFn = d.epollWait
	return nil
}

// watch makes cancellation of ctx interrupt a blocked wait through the
// wake eventfd. The registration is kept while callers pass the same
// context, so a steady-state wait allocates nothing.
func (d *Device) watch(ctx context.Context) error {
	done := ctx.Done()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("wait for uio%d: %w", d.minor, os.ErrClosed)
	}
	if done == d.done {
		return nil
	}
	if d.stop != nil {
		d.stop()
		d.stop = nil
	}
	d.done = done
	if done != nil {
		d.stop = context.AfterFunc(ctx, d.wakeUp)
	}
	return nil
}

// wakeUp makes a blocked wait look at why it should stop.
func (d *Device) wakeUp() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wake >= 0 {
		unix.Write(d.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

func (d *Device) ioError(verb string, err error) error {
	if errors.Is(err, syscall.EIO) {
		return fmt.Errorf("%s uio%d: %w: %w", verb, d.minor, ErrDeviceGone, err)
	}
	return fmt.Errorf("%s uio%d: %w", verb, d.minor, err)
}

// Close closes the fd, which makes a blocked Wait return, and unmaps the
// region. It is safe to call more than once.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		if d.stop != nil {
			d.stop()
		}
		if d.wake >= 0 {
			unix.Write(d.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		}
		d.mu.Unlock()
		// A wait in progress returns now; none starts after closed.
		d.waitMu.Lock()
		if d.ep >= 0 {
			d.epf.Close()
			unix.Close(d.tfd)
			d.ep, d.tfd = -1, -1
		}
		d.waitMu.Unlock()
		d.mu.Lock()
		if d.wake >= 0 {
			unix.Close(d.wake)
			d.wake = -1
		}
		d.mu.Unlock()
		if d.ring != nil {
			// No backend thread rings the doorbell on a closed (and
			// perhaps reused) fd number.
			d.ring.SetDoorbellFD(-1)
		}
		d.fdMu.Lock()
		var errClose error
		if d.fd >= 0 {
			errClose = unix.Close(d.fd)
			d.fd = -1
		}
		d.fdMu.Unlock()
		var errUnmap error
		if d.mem != nil {
			errUnmap = d.unmap(d.mem)
		}
		if errClose != nil {
			errClose = fmt.Errorf("close uio%d: %w", d.minor, errClose)
		}
		if errUnmap != nil {
			errUnmap = fmt.Errorf("unmap uio%d: %w", d.minor, errUnmap)
		}
		d.closeErr = errors.Join(errClose, errUnmap)
	})
	return d.closeErr
}
