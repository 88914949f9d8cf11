package handler

import (
	"slices"
	"sync"
	"sync/atomic"
)

// rangeLock makes an emulated COMPARE AND WRITE atomic with respect to
// other writes to the same blocks, as SBC-3 5.2 requires of the compare
// and the write: while a CAW reads, compares and writes its blocks, no
// write to them may start, and it does not start while a write to them is
// in flight. Backends with a native COMPARE AND WRITE are atomic by
// themselves; their devices never use the lock.
//
// Writes take a fast path while no emulated CAW is active: one atomic add
// before the write and one after, no lock, no allocation. A CAW first
// raises active, then waits until the writes that took the fast path have
// drained (untracked reaches zero); writes that start while a CAW is
// active record their range under mu and wait only if it overlaps a CAW
// holding or queued for its range. The counters are a Dekker handshake: a
// write adds to untracked before it reads active, a CAW adds to active
// before it reads untracked, and Go's atomics are sequentially consistent,
// so at least one of the two sees the other.
//
// Waiting never blocks a goroutine: a command that must wait is queued
// with its continuation and its command function returns pending; whoever
// releases a conflicting range runs the continuation. Overlapping requests
// are granted in arrival order, so a stream of writes cannot starve a CAW.
// A continuation run by the lock must not touch the command's data-area
// buffers (it may run on any goroutine): commands read what they need
// from them before they lock.
type rangeLock struct {
	untracked atomic.Int64
	active    atomic.Int64

	mu      sync.Mutex
	held    []*Cmd // commands holding a tracked range
	waiting []*Cmd // commands queued for a range, in arrival order
}

// rangeHold is a command's place in a rangeLock.
type rangeHold struct {
	rl *rangeLock // nil: the command holds nothing
	// lba and n are the blocks held; lba+n never overflows because
	// every range is checked against the capacity first.
	lba, n uint64
	// excl marks an emulated COMPARE AND WRITE, which excludes every
	// overlapping write; writes exclude only CAWs.
	excl bool
	// tracked: the hold is in held or waiting, not in untracked.
	tracked bool
	// next continues the command once the range is granted.
	next func(*Cmd) result
}

func (h *rangeHold) conflicts(o *rangeHold) bool {
	return (h.excl || o.excl) && h.lba < o.lba+o.n && o.lba < h.lba+h.n
}

// lockWrite runs next once n blocks from lba of the command's device may be
// written.
func (c *Cmd) lockWrite(lba, n uint64, next func(*Cmd) result) result {
	return c.lockRange(c.dev, lba, n, false, next)
}

// lockRange runs next once the command holds n blocks from lba of d:
// shared with other writes, or exclusively for an emulated CAW. The hold
// lasts until the command is recycled (releaseSBC). A command holds one
// range at most.
func (c *Cmd) lockRange(d *Device, lba, n uint64, excl bool, next func(*Cmd) result) result {
	if d.lim.CompareAndWrite {
		return next(c)
	}
	rl := &d.sbc.writes
	h := &c.sbc.hold
	*h = rangeHold{rl: rl, lba: lba, n: n, excl: excl, next: next}
	if excl {
		h.tracked = true
		rl.active.Add(1)
		return rl.acquire(c)
	}
	rl.untracked.Add(1)
	if rl.active.Load() == 0 {
		return next(c)
	}
	h.tracked = true
	rl.untracked.Add(-1)
	return rl.acquire(c)
}

// acquire grants the command's tracked hold now, or queues it.
func (rl *rangeLock) acquire(c *Cmd) result {
	h := &c.sbc.hold
	rl.mu.Lock()
	if !rl.blockedLocked(h, len(rl.waiting)) {
		rl.held = append(rl.held, c)
		rl.mu.Unlock()
		if !h.excl {
			// Leaving the fast path may have drained untracked
			// writes a CAW was waiting for.
			rl.dispatch()
		}
		return h.next(c)
	}
	rl.waiting = append(rl.waiting, c)
	// A queued command counts as in flight, so that a device is not
	// closed under it (its holder has IO in flight).
	c.dev.inflight.add(1)
	rl.mu.Unlock()
	if !h.excl {
		rl.dispatch()
	}
	return pending
}

// blockedLocked reports whether h must wait: it conflicts with a held
// range or with one queued before it (position upto), or it is a CAW and
// fast-path writes are still in flight.
func (rl *rangeLock) blockedLocked(h *rangeHold, upto int) bool {
	if h.excl && rl.untracked.Load() != 0 {
		return true
	}
	for _, o := range rl.held {
		if h.conflicts(&o.sbc.hold) {
			return true
		}
	}
	for _, o := range rl.waiting[:upto] {
		if h.conflicts(&o.sbc.hold) {
			return true
		}
	}
	return false
}

// dispatch grants every queued command that no longer conflicts, in
// order, and runs its continuation; a continuation that finishes the
// command completes it.
func (rl *rangeLock) dispatch() {
	for {
		rl.mu.Lock()
		var c *Cmd
		for i, w := range rl.waiting {
			if !rl.blockedLocked(&w.sbc.hold, i) {
				c = w
				rl.waiting = slices.Delete(rl.waiting, i, i+1)
				rl.held = append(rl.held, w)
				break
			}
		}
		rl.mu.Unlock()
		if c == nil {
			return
		}
		d := c.dev
		if c.sbc.hold.next(c) == done {
			d.complete(c, true)
		}
		d.inflight.add(-1)
	}
}

// release ends the command's hold.
func (rl *rangeLock) release(c *Cmd) {
	h := &c.sbc.hold
	if !h.tracked {
		if rl.untracked.Add(-1) == 0 && rl.active.Load() != 0 {
			rl.dispatch()
		}
		return
	}
	rl.mu.Lock()
	if i := slices.Index(rl.held, c); i >= 0 {
		rl.held = slices.Delete(rl.held, i, i+1)
	}
	if h.excl {
		rl.active.Add(-1)
	}
	rl.mu.Unlock()
	rl.dispatch()
}
