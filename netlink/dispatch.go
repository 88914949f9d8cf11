package netlink

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"syscall"

	"github.com/rs/zerolog"
)

// A Dispatcher applies TCM-USER events and answers each one: the events
// of one device one at a time, in the order the kernel sent them, and the
// events of different devices concurrently, so that a device whose
// backend is slow to open holds up no other device's add, remove or
// reconfiguration (the kernel waits for each device's reply on its own:
// tcmu_wait_genl_cmd_reply in drivers/target/target_core_user.c).
//
// Its Event method is Receive's callback and never blocks: events queue
// per device, unbounded, and a goroutine per device with queued work
// applies them. Do queues other work behind a device's events so far
// (adopting it at start, a rescan), so that it too keeps the device's
// order.
//
// Every event gets its *_DONE reply once applied, with 0 or the -errno of
// the error apply returned; a malformed event that names its device gets
// -EINVAL without being applied. All methods are safe for concurrent use.
type Dispatcher struct {
	ctx   context.Context
	log   zerolog.Logger
	reply func(ctx context.Context, ev Event, status int32) error
	apply func(ctx context.Context, ev Event) error
	lost  func(ctx context.Context)

	mu     sync.Mutex
	queues map[string][]func() // by device; present while its goroutine runs
	wg     sync.WaitGroup
}

// NewDispatcher returns a Dispatcher that applies events with apply and
// answers them on c. lost is called, in an order of its own, when the
// kernel dropped events (ErrEventsLost): the caller rescans. apply and
// lost get ctx; replies are sent even after ctx ends, so that no
// configfs writer is left waiting for an event that was applied.
func NewDispatcher(ctx context.Context, log zerolog.Logger, c *Client, apply func(context.Context, Event) error, lost func(context.Context)) *Dispatcher {
	return newDispatcher(ctx, log, c.Reply, apply, lost)
}

func newDispatcher(ctx context.Context, log zerolog.Logger, reply func(context.Context, Event, int32) error,
	apply func(context.Context, Event) error, lost func(context.Context)) *Dispatcher {
	return &Dispatcher{ctx: ctx, log: log, reply: reply, apply: apply, lost: lost, queues: make(map[string][]func())}
}

// lostKey orders the rescans after lost events among themselves; no uio
// name can be empty, so it never meets a device's queue.
const lostKey = ""

// Event queues ev behind the earlier events of its device.
func (d *Dispatcher) Event(ev Event) {
	switch {
	case errors.Is(ev.Err, ErrEventsLost):
		d.push(lostKey, func() {
			if d.lost != nil {
				d.lost(d.ctx)
			}
		})
	case ev.Err != nil:
		d.log.Warn().Err(ev.Err).Str("uio", ev.Device).Msg("bad netlink event")
		if ev.HasDeviceID && ev.Cmd != 0 {
			d.push(eventKey(ev), func() { d.answer(ev, syscall.EINVAL) })
		}
	default:
		d.push(ev.Device, func() {
			err := d.apply(d.ctx, ev)
			l := d.log.Info()
			if err != nil {
				l = d.log.Error().Err(err)
			}
			l.Str("uio", ev.Device).Stringer("event", ev.Cmd).Msg("netlink event")
			d.answer(ev, err)
		})
	}
}

// eventKey is the queue of a malformed event: its device when that
// decoded, else its DEVICE_ID.
func eventKey(ev Event) string {
	if ev.Device != "" {
		return ev.Device
	}
	return "device_id:" + strconv.FormatUint(uint64(ev.DeviceID), 10)
}

// Do queues fn behind the events of device (a uio name) queued so far;
// events queued later wait for it.
func (d *Dispatcher) Do(device string, fn func(ctx context.Context)) {
	d.push(device, func() { fn(d.ctx) })
}

// Wait waits until everything queued so far, and anything it queued in
// turn, has run.
func (d *Dispatcher) Wait() { d.wg.Wait() }

func (d *Dispatcher) push(key string, fn func()) {
	d.mu.Lock()
	q, running := d.queues[key]
	d.queues[key] = append(q, fn)
	if !running {
		d.wg.Add(1)
	}
	d.mu.Unlock()
	if !running {
		go d.drain(key)
	}
}

// drain runs a device's queue until it is empty, then forgets it.
func (d *Dispatcher) drain(key string) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		q := d.queues[key]
		if len(q) == 0 {
			delete(d.queues, key)
			d.mu.Unlock()
			return
		}
		fn := q[0]
		q[0] = nil
		d.queues[key] = q[1:]
		d.mu.Unlock()
		fn()
	}
}

// answer sends ev's reply for err.
func (d *Dispatcher) answer(ev Event, err error) {
	if rerr := d.reply(context.WithoutCancel(d.ctx), ev, Status(err)); rerr != nil && !errors.Is(rerr, ErrNoDeviceID) {
		d.log.Error().Err(rerr).Str("uio", ev.Device).Stringer("event", ev.Cmd).Msg("netlink reply")
	}
}

// Status is the CMD_STATUS of a reply for err: 0, or the negative errno
// err wraps (EINVAL when it wraps none; EINTR for a cancelled context,
// as reset_netlink answers a wait it ends; ETIMEDOUT for a deadline).
func Status(err error) int32 {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno) && errno != 0 && errno <= 4095:
	case errors.Is(err, context.Canceled):
		errno = syscall.EINTR
	case errors.Is(err, context.DeadlineExceeded):
		errno = syscall.ETIMEDOUT
	default:
		errno = syscall.EINVAL
	}
	return -int32(errno)
}
