package lockgate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// DefaultHoldDown is how long a gateway that lost the image's lock to
// another gateway refuses to take it back. Writes arriving meanwhile get
// Standby, which handler answers NOT READY / TARGET PORT IN STANDBY STATE
// (02/04/0B), not BUSY:
//
//   - Linux: BUSY is retried on the same path (scsi_decide_disposition's
//     ADD_TO_MLQUEUE) for up to (retries+1) × the command timeout, 180 s by
//     default, without dm-multipath noticing; a retried write would then
//     take the lock back as soon as the hold-down ends, which is the
//     ping-pong of tcmu-runner PR #477 (stale I/O retried on the old path
//     after failback). 02/04/0B ends in BLK_STS_IOERR, a path error:
//     dm-multipath fails the path at once and requeues the write on
//     another path, the one whose gateway holds the lock.
//   - ESXi's ALUA SATP takes 02/04/0B as the port being in standby and
//     moves to an active path, where MRU then stays: two hosts that used
//     different gateways (tcmu-runner #341) settle on one.
//
// 30 s is longer than dm-multipath's max_polling_interval (4 ×
// polling_interval = 20 s by default), so a path the TUR checker
// reinstates is refused again rather than winning the lock back on its
// first write, and longer than ESXi's iSCSI RecoveryTimeout of 25 s that
// Ceph recommends; it is shorter than the failback delay Ceph recommends
// (60 s), so a deliberate failback to this gateway is never refused, and
// well inside no_path_retry queue, so an initiator left with this path
// only (the other gateway died too) waits at most 30 s. With I/O arriving
// at both gateways the lock moves at most once per hold-down.
const DefaultHoldDown = 30 * time.Second

// acquireRetryDelay keeps a failing acquisition (the cluster refuses, the
// lock cannot be broken) from being retried by every BUSY retry.
const acquireRetryDelay = time.Second

// reopenBackoff bounds the wait between reopen attempts after a lost
// connection; tcmu-runner retries forever, so does the gate, but not in a
// tight loop.
const reopenBackoff = 30 * time.Second

// refusalTTL bounds how long the gate trusts what Ports said about this
// gateway's port groups; Transition refreshes it at once, an operator's
// configfs write is seen within this.
const refusalTTL = time.Second

// Gate states.
const (
	// unlocked: the client is healthy and does not hold the lock. Reads
	// pass; a write takes the lock.
	unlocked int32 = iota
	// locking: a worker is taking the lock; everything is Busy.
	locking
	// locked: this gateway holds the lock; everything passes.
	locked
	// lost: the client was fenced and a reopen failed; the next command
	// tries again.
	lost
	// reopening: a worker is reopening after the lock was lost.
	reopening
	// recovering: the connection was lost; TPGs are offline while a
	// worker reopens.
	recovering
)

var stateNames = [...]string{
	unlocked:   "unlocked",
	locking:    "locking",
	locked:     "locked",
	lost:       "lost",
	reopening:  "reopening",
	recovering: "recovering",
}

// working reports whether a worker owns the state.
func working(state int32) bool {
	return state == locking || state == reopening || state == recovering
}

// Config is what a gate is made of.
type Config struct {
	Log    zerolog.Logger
	Locker Locker
	// WaitIdle returns once none of the device's I/O is in flight, or
	// ctx's error (handler.Device.WaitIdle): a reopen replaces the client
	// under it.
	WaitIdle func(ctx context.Context) error
	// Ports tells the gate about the device's port groups; nil: the
	// device has none (nothing is refused, no TPG goes offline).
	Ports Ports
	// Switch takes TPGs offline while the connection is lost; nil: none.
	Switch TPGSwitch
	// Holds is the registry of TPGs held offline that the gate shares
	// with the other gates of the process; nil: one of its own.
	Holds *Holds
	// CmdTimeout is the kernel's time limit on the device's commands
	// (attrib/cmd_time_out), 0 when it has none; nil: none known. See
	// recover.
	CmdTimeout func() time.Duration
	// Now is the clock of hold-downs and retry delays; nil: time.Now.
	Now func() time.Time
}

// Gate is one device's lock gate. Lock order: mu, then nothing; workers
// call the Locker without mu.
type Gate struct {
	log      zerolog.Logger
	lk       Locker
	ports    Ports
	sw       TPGSwitch
	holds    *Holds
	waitIdle func(context.Context) error
	cmdLimit func() time.Duration
	now      func() time.Time
	holdDown atomic.Int64 // nanoseconds

	state atomic.Int32 // read without mu by Admit's fast path

	mu    sync.Mutex
	owner string
	// lostAt is when the lock was last lost; holdUntil is lostAt plus
	// the hold-down, or zero when nothing is held down.
	lostAt    time.Time
	holdUntil time.Time
	retryAt   time.Time
	// connLost is set when the connection was lost while a worker ran;
	// the worker starts recovery when it is done.
	connLost bool
	// waiters are the transitions that end when the acquisition or
	// release running now ends.
	waiters []func(error)
	// refusal is the answer to media access while this gateway's ports
	// refuse it (Pass: they do not), as Ports said at refusalAt.
	refusal   Verdict
	refusalAt time.Time
	stats     Status
	closed    bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a gate, unlocked and with DefaultHoldDown. Close stops its
// workers.
func New(cfg Config) *Gate {
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gate{
		log:      cfg.Log,
		lk:       cfg.Locker,
		ports:    cfg.Ports,
		sw:       cfg.Switch,
		holds:    cfg.Holds,
		waitIdle: cfg.WaitIdle,
		cmdLimit: cfg.CmdTimeout,
		now:      cfg.Now,
		ctx:      ctx,
		cancel:   cancel,
	}
	if g.holds == nil {
		g.holds = new(Holds)
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.holdDown.Store(int64(DefaultHoldDown))
	if w, ok := g.lk.(connWatcher); ok {
		w.WatchConnection(g.connectionLost)
	}
	return g
}

// Admit answers a command that accesses the medium; changes says whether
// it changes the medium (a write, or a flush that orders writes). While
// this gateway holds the lock it returns Pass without taking a lock.
func (g *Gate) Admit(changes bool) Verdict {
	if g.state.Load() == locked {
		return Pass
	}
	return g.admitSlow(changes)
}

func (g *Gate) admitSlow(changes bool) Verdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	state := g.state.Load()
	if state == locked {
		return Pass
	}
	if state == lost {
		// A reopen failed: any command tries again.
		g.startLocked(reopening, g.reopenLost)
		state = g.state.Load()
	}
	now := g.now()
	if state == unlocked {
		if v := g.portRefusal(now); v != Pass {
			return v
		}
	}
	// A command that leaves the medium as it is does not need the lock
	// (librbd reads without it, and reads cannot conflict with the
	// owner's writes), so it never moves it: dm-multipath and udev read
	// every path of a new device, which must not bounce the lock between
	// gateways (tcmu-runner's READ_LOCKED state, PR #477).
	switch {
	case state == unlocked && !changes:
		return Pass
	case changes && now.Before(g.holdUntil) && (state == unlocked || state == reopening):
		// Refused at once, also while the fenced client is being
		// replaced: the initiator moves the write to the gateway that
		// took the lock instead of retrying it here.
		g.stats.Refused++
		return Standby
	case state == unlocked && !now.Before(g.retryAt):
		g.startLocked(locking, g.acquire)
	}
	return Busy
}

// portRefusal returns the refusal of this gateway's port groups now, from
// Ports at most refusalTTL old. Called with mu held.
func (g *Gate) portRefusal(now time.Time) Verdict {
	if g.ports == nil {
		return Pass
	}
	if now.Sub(g.refusalAt) >= refusalTTL || now.Before(g.refusalAt) {
		v, err := g.ports.Refusal()
		if err != nil {
			g.log.Warn().Err(err).Msg("read port groups")
			return Pass
		}
		g.refusal, g.refusalAt = v, now
	}
	return g.refusal
}

// startLocked moves to state and runs work on a worker goroutine; the
// worker ends by calling settle. Called with mu held, in a state where no
// worker runs.
func (g *Gate) startLocked(state int32, work func(ctx context.Context)) {
	if g.closed {
		return
	}
	g.state.Store(state)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		work(g.ctx)
	}()
}

// settle ends a worker: the gate moves to state, or to recovery when the
// connection was lost meanwhile.
func (g *Gate) settle(state int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.connLost && !g.closed {
		g.connLost = false
		// A worker ran: the gate was taking the lock or reopening after
		// losing it, so it did not hold it.
		g.startLocked(recovering, func(ctx context.Context) { g.recover(ctx, false) })
		return
	}
	g.state.Store(state)
}

// NoteError is told the errno of every failed I/O of the device: ESHUTDOWN
// and EROFS mean the lock was lost, ETIMEDOUT the connection; others
// change nothing.
func (g *Gate) NoteError(errno syscall.Errno) {
	switch errno {
	case syscall.ESHUTDOWN, syscall.EROFS:
		g.lockLost()
	case syscall.ETIMEDOUT:
		g.connectionLost()
	}
}

// lockLost: an I/O failed because this gateway's client was fenced or its
// lock taken. Holding the lock until now means another gateway took it to
// serve the image: hold down.
func (g *Gate) lockLost() {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.state.Load() {
	case locked:
		g.stats.Losses++
		hold := time.Duration(g.holdDown.Load())
		g.lostAt = g.now()
		g.holdUntil = g.lostAt.Add(hold)
		g.log.Warn().Dur("hold_down", hold).Msg("exclusive lock lost to another gateway; reopening")
		g.startLocked(reopening, g.reopenLost)
	case unlocked:
		// A read on a fenced client.
		g.startLocked(reopening, g.reopenLost)
	}
	// A worker running now meets the fenced client itself.
}

// connectionLost: an I/O timed out, or the Locker found the cluster
// unreachable (connWatcher): the cluster does not answer.
func (g *Gate) connectionLost() {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch s := g.state.Load(); {
	case s == recovering:
	case working(s):
		g.connLost = true
	default:
		held := s == locked
		g.startLocked(recovering, func(ctx context.Context) { g.recover(ctx, held) })
	}
}

// Escalate is told that the device has answered Busy for longer than it
// may (handler's busy bounds): whatever the cause, it recovers as from a
// lost connection, so that initiators move to another gateway (its TPGs go
// offline) and the backend gets a fresh client. A gate recovering already
// goes on; one whose worker is taking the lock or reopening recovers once
// that worker ends.
func (g *Gate) Escalate() {
	g.mu.Lock()
	g.stats.Escalations++
	g.mu.Unlock()
	g.log.Warn().Msg("device answered BUSY past its bound: recovering as from a lost connection")
	g.connectionLost()
}

// reopen waits for the device's I/O to drain (a reopen replaces the
// client under it) and reopens the backend.
func (g *Gate) reopen(ctx context.Context) error {
	if err := g.waitIdle(ctx); err != nil {
		return err
	}
	if err := g.lk.Reopen(ctx); err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	return nil
}

// acquire takes the lock (tcmu_acquire_dev_lock): break and acquire,
// and if this gateway's own client turns out fenced, reopen and try once
// more.
func (g *Gate) acquire(ctx context.Context) {
	start := time.Now()
	err := g.lk.AcquireLock(ctx)
	if errors.Is(err, syscall.ESHUTDOWN) {
		if err = g.reopen(ctx); err == nil {
			err = g.lk.AcquireLock(ctx)
		}
	}
	var owner string
	if err == nil {
		owner, _ = g.lk.LockOwner()
	}
	g.mu.Lock()
	waiters := g.waiters
	g.waiters = nil
	next := locked
	if err != nil {
		g.log.Warn().Err(err).Msg("take exclusive lock")
		g.retryAt = g.now().Add(acquireRetryDelay)
		next = unlocked
		switch {
		case errors.Is(err, syscall.ETIMEDOUT):
			g.connLost = true
		case errors.Is(err, syscall.ESHUTDOWN):
			next = lost
		}
	} else {
		g.stats.Acquisitions++
		g.owner = owner
		g.holdUntil = time.Time{}
		g.log.Info().Str("owner", owner).Dur("took", time.Since(start)).Msg("took exclusive lock")
	}
	g.mu.Unlock()
	g.settleTransition(next, waiters, err)
}

// reopenLost reopens a fenced client. The lock stays with whoever took
// it; the next write here takes it back once the hold-down ends.
func (g *Gate) reopenLost(ctx context.Context) {
	start := time.Now()
	err := g.reopen(ctx)
	var owner string
	if err == nil {
		owner, _ = g.lk.LockOwner()
	}
	g.mu.Lock()
	next := unlocked
	if err != nil {
		g.log.Error().Err(err).Msg("reopen after losing the exclusive lock")
		next = lost
		g.connLost = g.connLost || errors.Is(err, syscall.ETIMEDOUT)
	} else {
		g.owner = owner
		g.log.Info().Str("owner", owner).Dur("took", time.Since(start)).Msg("reopened after losing the exclusive lock")
	}
	g.mu.Unlock()
	g.settle(next)
}

// recover handles a lost connection as tcmu-runner's
// tcmu_notify_conn_lost does: take this gateway's target portal groups
// offline so that initiators fail over, reopen until it works, and bring
// the TPGs back. held says the gate held the lock when the connection was
// lost: if another gateway holds it once the gate is back, it took it
// meanwhile (breaking this gateway's lock, which fences the old client),
// and the gate holds down as after losing the lock, instead of taking it
// back with the first write that reaches it.
func (g *Gate) recover(ctx context.Context, held bool) {
	g.mu.Lock()
	g.stats.ConnLosses++
	// The lock's owner as the gate saw it while holding it: this
	// gateway's old client.
	mine := g.owner
	g.mu.Unlock()
	if n, ok := g.lk.(connLossNoter); ok {
		n.NoteConnectionLost()
	}
	g.log.Warn().Msg("connection to the cluster lost; taking target portal groups offline and reopening")
	g.awaitKernelTimeout(ctx)
	release := g.holds.hold(g.log, g.sw, g.localTPGs())
	defer release()
	backoff := time.Second
	for {
		err := g.reopen(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			g.settle(lost)
			return
		}
		g.log.Error().Err(err).Dur("retry_in", backoff).Msg("reopen after losing the connection")
		select {
		case <-ctx.Done():
			g.settle(lost)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, reopenBackoff)
	}
	g.log.Info().Msg("reconnected to the cluster")
	// The lock was with the old client; another gateway may hold it now.
	owner, err := g.lk.LockOwner()
	g.mu.Lock()
	switch {
	case err != nil:
		g.log.Warn().Err(err).Msg("lock owner after reconnecting")
	case held && owner != "" && owner != mine:
		g.stats.Losses++
		hold := time.Duration(g.holdDown.Load())
		g.lostAt = g.now()
		g.holdUntil = g.lostAt.Add(hold)
		g.log.Warn().Str("owner", owner).Dur("hold_down", hold).Msg("exclusive lock taken by another gateway while the connection was lost")
	}
	if err == nil {
		g.owner = owner
	}
	g.mu.Unlock()
	g.settle(unlocked)
}

// awaitKernelTimeout lets the kernel end the device's commands in flight
// before the TPGs go offline, when it has a time limit for them: taking a
// TPG offline waits for its sessions' commands and then drops the
// sessions, and an initiator whose session drops waits its own
// replacement timeout before it retries elsewhere, while a command the
// kernel ends at cmd_time_out (CHECK CONDITION, 02/08/00) moves to another
// path at once. Commands the backend holds (a write waiting for its
// client's fence, which needs the monitors) end only that way. So the gate
// waits for the device to go idle, at most the limit and a second. The
// partition of 2026-12-05 15:24 (cmd_time_out 20 s, no such wait) had the
// other gateway take the lock at +47.7 s, the one of 16:53 with it at
// +29.2 s (test/results/partition.md).
// With cmd_time_out 0 (ceph-iscsi's) the kernel never ends them and the
// TPGs go offline at once.
func (g *Gate) awaitKernelTimeout(ctx context.Context) {
	if g.cmdLimit == nil {
		return
	}
	limit := g.cmdLimit()
	if limit <= 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, limit+time.Second)
	defer cancel()
	if g.waitIdle(wctx) != nil && ctx.Err() == nil {
		g.log.Info().Dur("cmd_time_out", limit).Msg("commands still in flight past the kernel's time limit; taking target portal groups offline")
	}
}

// localTPGs returns the TPGs to take offline while the connection is lost.
func (g *Gate) localTPGs() []TPG {
	if g.ports == nil {
		return nil
	}
	tpgs, err := g.ports.LocalTPGs()
	if err != nil {
		g.log.Error().Err(err).Msg("read port groups to take them offline")
		return nil
	}
	return tpgs
}

// Transition is what an explicit ALUA transition (SET TARGET PORT GROUPS)
// made of this gateway's port groups.
type Transition struct {
	// Active: a group of this gateway's ports became active/optimized,
	// the initiator chose this gateway.
	Active bool
	// Inactive: every group of this gateway's ports is in a state that
	// refuses media access now.
	Inactive bool
	// Refusal is what Ports.Refusal answers from now on.
	Refusal Verdict
}

// Transition acts on an explicit ALUA transition. When it made a group of
// this gateway's active/optimized, the gate takes the lock (overriding the
// hold-down); when it left all of them refusing media access, the gate
// gives the lock up. It returns pending=true when it started or joined
// that work: done is called with its result once the gate has settled in
// its new state, so that the initiator's next command meets that state.
// Otherwise done is never called and v says how the transition ends now:
// Pass (nothing to do) or Busy (the gate is reopening or recovering; the
// initiator may try again).
func (g *Gate) Transition(t Transition, done func(error)) (v Verdict, pending bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refusal, g.refusalAt = t.Refusal, g.now()
	s := g.state.Load()
	switch {
	case t.Active && s == locked, !t.Active && !t.Inactive, !t.Active && s != locked:
		return Pass, false
	case t.Active && s == locking:
	case working(s) || g.closed:
		return Busy, false
	case t.Active:
		// An explicit choice overrides the hold-down.
		g.holdUntil = time.Time{}
		g.startLocked(locking, g.acquire)
	default:
		g.startLocked(locking, g.release)
	}
	g.waiters = append(g.waiters, done)
	return Pass, true
}

// release gives the lock up after a transition put this gateway's ports
// in standby.
func (g *Gate) release(context.Context) {
	err := g.lk.ReleaseLock()
	g.mu.Lock()
	waiters := g.waiters
	g.waiters = nil
	next := unlocked
	if err != nil {
		g.log.Warn().Err(err).Msg("release exclusive lock")
		next = locked
	} else {
		g.owner = ""
		g.log.Info().Msg("released exclusive lock: this gateway's ports are in standby")
	}
	g.mu.Unlock()
	g.settleTransition(next, waiters, err)
}

// settleTransition ends a worker that transitions waited for: the state
// first, then the transitions. An initiator told the transition is done
// sends its next command at once, and that command must meet the new
// state, not Busy from the old one.
func (g *Gate) settleTransition(next int32, waiters []func(error), err error) {
	g.settle(next)
	for _, done := range waiters {
		done(err)
	}
}

// SetHoldDown sets how long the gate refuses writes after losing the lock
// to another gateway (DefaultHoldDown until set; 0 or less takes the lock
// back at once, as tcmu-runner does), also for a hold-down running now.
func (g *Gate) SetHoldDown(hold time.Duration) {
	hold = max(hold, 0)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holdDown.Store(int64(hold))
	if !g.holdUntil.IsZero() {
		g.holdUntil = g.lostAt.Add(hold)
	}
}

// Status snapshots the gate.
func (g *Gate) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.State = stateNames[g.state.Load()]
	s.Owner = g.owner
	if s.State == "unlocked" && g.now().Before(g.holdUntil) {
		s.State = "held-down"
		s.HoldDownUntil = g.holdUntil
	}
	return s
}

// Close stops the gate's workers and waits for them; transitions waiting
// for one end with its error. The lock itself goes with the backend. A
// closed gate starts no worker: writes stay Busy.
func (g *Gate) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}
