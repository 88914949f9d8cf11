package handler

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// BUSY has an end. An initiator retries BUSY for as long as it is
// answered, so an error that does not go away (a cluster that stays
// unreachable, a filesystem remounted read-only under user:file) would
// keep a command, and the next, retrying forever. A device counts how long
// it has answered BUSY since the first BUSY of the current run (a run ends
// at the first command that accesses the medium and is answered anything
// else); once that passes the bound of the run's error class, the device
// escalates:
//
//   - every command that would be answered BUSY is answered CHECK
//     CONDITION, NOT READY / LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN
//     UNAVAILABLE STATE (02/04/0C) instead, a hard error the initiator
//     reports (Linux fails it as a path error, so dm-multipath moves the
//     I/O to another path and the application sees it only when none is
//     left);
//   - a device with a lock gate (rbd) also recovers as from a lost
//     connection: its target portal groups go offline so that multipath
//     moves, and the backend is reopened with a fresh client
//     (lockgate.Gate.Escalate).
//
// The run ends, and BUSY is answered again for a new error, at the first
// medium access of its kind answered otherwise (GOOD, a medium error, a
// standby refusal). Reads and writes have a run each: a filesystem
// remounted read-only under user:file still serves reads, which must not
// restart the bound of the writes it fails with EROFS.

// busyClass groups the errors answered BUSY by what ends them.
type busyClass uint8

const (
	// busyLock: ESHUTDOWN (the client is blocklisted), EROFS (the
	// exclusive lock was taken), and the lock gate's own Busy while it
	// takes the lock or reopens; a reopen ends it in seconds.
	busyLock busyClass = iota
	// busyConn: ETIMEDOUT, and the gate's Busy while it recovers: the
	// cluster does not answer; the OSDs or monitors must come back.
	busyConn
	// busyTransient: EAGAIN, EBUSY, ENOTCONN, ECONNRESET, which nothing
	// in gotcmu acts on: the backend's own retry must end them.
	busyTransient
	numBusyClasses
)

var busyClassNames = [numBusyClasses]string{busyLock: "lock", busyConn: "connection", busyTransient: "transient"}

func (c busyClass) String() string { return busyClassNames[c] }

// busyClassOf returns the class of an errno answered BUSY, and false for
// one that is not.
func busyClassOf(errno syscall.Errno) (busyClass, bool) {
	switch errno {
	case syscall.ESHUTDOWN, syscall.EROFS:
		return busyLock, true
	case syscall.ETIMEDOUT:
		return busyConn, true
	case syscall.EAGAIN, syscall.EBUSY, syscall.ENOTCONN, syscall.ECONNRESET:
		return busyTransient, true
	}
	return 0, false
}

// BusyBounds are how long a device answers BUSY, from the first BUSY of a
// run, before it escalates; one bound per class of error.
type BusyBounds struct {
	// Lock bounds ESHUTDOWN, EROFS and the lock gate's BUSY while it
	// takes the lock or reopens after losing it.
	Lock time.Duration
	// Conn bounds ETIMEDOUT and the gate's BUSY while it recovers a lost
	// connection.
	Conn time.Duration
	// Transient bounds EAGAIN, EBUSY, ENOTCONN and ECONNRESET.
	Transient time.Duration
}

// DefaultBusyBounds are the bounds until SetBusyBounds. Each is shorter
// than the 180 s a Linux initiator retries one command on BUSY by default
// ((retries 5 + 1) × the sd timeout of 30 s), so an initiator sees the
// escalation rather than its own timeout:
//   - Lock, 60 s: a reopen after a lost lock takes a few seconds, taking
//     the lock one more; a minute means they fail.
//   - Conn, 120 s: rbd reports ETIMEDOUT only after osd_op_timeout (30 s
//     by default) and the gate's TPGs are offline already; the OSDs get
//     another 90 s to come back.
//   - Transient, 30 s: an error nothing here acts on that lasts one sd
//     command timeout is not transient.
var DefaultBusyBounds = BusyBounds{Lock: 60 * time.Second, Conn: 120 * time.Second, Transient: 30 * time.Second}

func (b BusyBounds) of(c busyClass) time.Duration {
	switch c {
	case busyLock:
		return b.Lock
	case busyConn:
		return b.Conn
	}
	return b.Transient
}

// withDefaults replaces a bound of 0 or less by its default.
func (b BusyBounds) withDefaults() BusyBounds {
	d := DefaultBusyBounds
	if b.Lock > 0 {
		d.Lock = b.Lock
	}
	if b.Conn > 0 {
		d.Conn = b.Conn
	}
	if b.Transient > 0 {
		d.Transient = b.Transient
	}
	return d
}

// busyRuns are a device's runs of BUSY answers, one per kind of medium
// access, and their bounds.
type busyRuns struct {
	bounds atomic.Pointer[BusyBounds]
	// now is the clock of runs; time.Now unless a test sets it.
	now func() time.Time
	// runs are the reads' (0) and the writes' (1): see busyKind.
	runs [2]busyRun
}

// busyRun is one run of BUSY answers.
type busyRun struct {
	// since is when the run's first BUSY was answered (UnixNano), 0
	// with no run: every completion loads it, nothing else is touched
	// on the path of a healthy device.
	since atomic.Int64

	mu        sync.Mutex
	class     busyClass
	errno     syscall.Errno // 0: the lock gate's BUSY
	escalated bool
	// escalations counts the runs that passed their bound, by class.
	escalations [numBusyClasses]atomic.Uint64
}

// busyKind is the run c belongs to: 1 for a command that changes the
// medium, 0 for any other.
func (c *Cmd) busyKind() int {
	if c.row != nil && c.row.medium == mediumChanges {
		return 1
	}
	return 0
}

// SetBusyBounds sets how long the device answers BUSY before it escalates
// (a bound of 0 or less: its DefaultBusyBounds value), also for a run
// going on now.
func (d *Device) SetBusyBounds(b BusyBounds) {
	b = b.withDefaults()
	d.busy.bounds.Store(&b)
}

func (d *Device) busyBounds() BusyBounds {
	if b := d.busy.bounds.Load(); b != nil {
		return *b
	}
	return DefaultBusyBounds
}

func (d *Device) busyNow() time.Time {
	if d.busy.now != nil {
		return d.busy.now()
	}
	return time.Now()
}

// busy answers BUSY for an error of class (errno 0: the lock gate's
// verdict), or the escalation's hard error once the run of BUSY c belongs
// to has lasted the class's bound.
func (c *Cmd) busy(class busyClass, errno syscall.Errno) result {
	if !c.dev.answerBusy(c.busyKind(), class, errno) {
		return c.status(statusBusy)
	}
	c.escalated = true
	return c.check(keyNotReady, ascLUNotReadyUnavailable)
}

// answerBusy adds one BUSY to the device's run of kind and reports
// whether the run has passed its bound: the command gets the hard error
// instead. The first command past the bound escalates.
func (d *Device) answerBusy(kind int, class busyClass, errno syscall.Errno) (escalated bool) {
	r := &d.busy.runs[kind]
	now := d.busyNow()
	bound := d.busyBounds().of(class)
	r.mu.Lock()
	since := r.since.Load()
	if since == 0 {
		since = now.UnixNano()
		r.since.Store(since)
		r.escalated = false
		// Debug: every first write at a gateway without the lock starts
		// a run of a few milliseconds.
		d.log.Debug().Str("class", class.String()).Str("errno", errnoName(errno)).Dur("bound", bound).
			Msg("answering BUSY; escalating if it lasts the bound")
	}
	r.class, r.errno = class, errno
	lasted := now.Sub(time.Unix(0, since))
	if lasted < bound && !r.escalated {
		// An escalated run stays escalated until it ends, also when
		// its last BUSY is of a class with a longer bound.
		r.mu.Unlock()
		return false
	}
	first := !r.escalated
	r.escalated = true
	r.mu.Unlock()
	if first {
		r.escalations[class].Add(1)
		d.log.Error().Str("class", class.String()).Str("errno", errnoName(errno)).Dur("busy_for", lasted).Dur("bound", bound).
			Bool("writes", kind == 1).Bool("recover", d.gate != nil).
			Msg("BUSY past its bound: answering NOT READY (04/0C) until the device serves again")
		if d.gate != nil {
			// TPGs offline and a fresh client, unless already recovering.
			d.gate.Escalate()
		}
	}
	return true
}

// endBusy ends c's run of BUSY after c, a command that accesses the
// medium, was answered something else. Called on every completion; costs
// one atomic load without a run.
func (d *Device) endBusy(c *Cmd) {
	escalated := c.escalated
	c.escalated = false
	if c.row == nil || c.row.flags&flagIO == 0 {
		return
	}
	r := &d.busy.runs[c.busyKind()]
	if r.since.Load() == 0 || escalated || c.Status == statusBusy {
		return
	}
	r.mu.Lock()
	since := r.since.Swap(0)
	was, class, errno := r.escalated, r.class, r.errno
	r.escalated = false
	r.mu.Unlock()
	if since == 0 {
		return
	}
	lvl := zerolog.DebugLevel
	if was {
		lvl = zerolog.InfoLevel
	}
	d.log.WithLevel(lvl).Str("class", class.String()).Str("errno", errnoName(errno)).Bool("escalated", was).
		Bool("writes", c.busyKind() == 1).Dur("busy_for", d.busyNow().Sub(time.Unix(0, since))).Msg("serving again after BUSY")
}

// SetBusyBounds sets the bounds of BUSY (Device.SetBusyBounds) of every
// device served now and from now on.
func (m *Manager) SetBusyBounds(b BusyBounds) {
	m.mu.Lock()
	m.busyBounds = b
	m.mu.Unlock()
	for _, md := range m.served() {
		md.dev.SetBusyBounds(b)
	}
}

// BusyState is a device's run of BUSY answers as Status and the metrics
// show it.
type BusyState struct {
	// For is how long the run has lasted (0: no run).
	For time.Duration
	// Class and Errno are of the run's last BUSY ("lock", "connection",
	// "transient"; Errno "" for the lock gate's own BUSY).
	Class, Errno string
	Bound        time.Duration
	Escalated    bool
	// Escalations counts the runs that passed their bound, over the
	// device's life.
	Escalations uint64
}

// BusyState reports the device's longer run of BUSY answers (reads' or
// writes').
func (d *Device) BusyState() BusyState {
	var s BusyState
	now := d.busyNow()
	for i := range d.busy.runs {
		r := &d.busy.runs[i]
		for j := range r.escalations {
			s.Escalations += r.escalations[j].Load()
		}
		r.mu.Lock()
		since := r.since.Load()
		if since != 0 {
			if lasted := max(now.Sub(time.Unix(0, since)), 0); s.For == 0 || lasted > s.For {
				s.For = lasted
				s.Class, s.Errno = r.class.String(), errnoName(r.errno)
				s.Bound = d.busyBounds().of(r.class)
				s.Escalated = r.escalated
			}
		}
		r.mu.Unlock()
	}
	return s
}

// String is the line `gotcmu status` prints for a device in a run.
func (s BusyState) String() string {
	if s.For == 0 {
		return ""
	}
	what := s.Class
	if s.Errno != "" {
		what += ", " + s.Errno
	}
	if s.Escalated {
		return fmt.Sprintf("answered BUSY for %s (%s), past its bound of %s: answering NOT READY (04/0C) until it serves again",
			s.For.Round(time.Second), what, s.Bound)
	}
	return fmt.Sprintf("answering BUSY for %s (%s); escalates after %s", s.For.Round(time.Second), what, s.Bound)
}

func errnoName(errno syscall.Errno) string {
	if errno == 0 {
		return ""
	}
	return errnoNames[errno]
}

var errnoNames = map[syscall.Errno]string{
	syscall.ESHUTDOWN: "ESHUTDOWN", syscall.EROFS: "EROFS", syscall.ETIMEDOUT: "ETIMEDOUT",
	syscall.EAGAIN: "EAGAIN", syscall.EBUSY: "EBUSY", syscall.ENOTCONN: "ENOTCONN", syscall.ECONNRESET: "ECONNRESET",
}
