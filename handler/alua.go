package handler

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

// Implicit ALUA over an exclusive lock, as tcmu-runner does it
// (reference/tcmu-runner.md §4): several gateways export one image, each
// through its own target port group, and an image is written through one
// gateway at a time, the one holding the image's exclusive lock. The lock
// follows the I/O: the first write at a gateway without the lock is
// answered BUSY while the gateway takes the lock in the background
// (breaking the owner's lock fences the owner: Ceph blocklists its
// client), and the initiator's retries are served once it holds it. A
// gateway whose lock was taken finds out from its own I/O failing
// (ESHUTDOWN when blocklisted, EROFS when the lock is gone), answers BUSY
// and reopens the image with a fresh client, which the blocklist does not
// cover. A gateway that loses its connection to the cluster (ETIMEDOUT)
// takes its target portal groups offline so that multipath moves to
// another gateway, reopens, and brings them back.
//
// Unlike tcmu-runner, a gateway that lost the lock while another gateway
// serves the image does not take it back for a hold-down period (see
// DefaultHoldDown): writes arriving meanwhile are refused as a port in
// standby state refuses them, which makes initiators send them elsewhere
// instead of bouncing the lock (tcmu-runner issues #341, #356, PR #477).

// Locker is what a backend shared by several gateways offers the lock
// gate; rbd.Image implements it. NewDevice gives a device whose backend
// implements Locker its gate.
//
// The gate calls the methods from one goroutine at a time, off the I/O
// path; Submit may run concurrently with any of them. Errors keep their
// errno: ESHUTDOWN means this gateway's client is fenced, ETIMEDOUT that
// the cluster does not answer.
type Locker interface {
	// IsLockOwner reports whether this gateway's client holds the lock.
	IsLockOwner() (bool, error)
	// AcquireLock takes the lock, breaking the current owner's first;
	// breaking fences the owner, so that none of its writes lands after
	// this gateway's first.
	AcquireLock(ctx context.Context) error
	// ReleaseLock gives the lock up if this gateway holds it.
	ReleaseLock() error
	// Reopen replaces the backend's connection with a fresh one, after
	// the old one was fenced or lost. It waits for the backend's own
	// operations in flight, fails operations submitted meanwhile with an
	// error wrapping ESHUTDOWN, and leaves the backend usable with the
	// old connection if it fails.
	Reopen(ctx context.Context) error
	// LockOwner names the lock's holder ("" when nobody holds it).
	LockOwner() (string, error)
}

// TPGSwitch is implemented by a DeviceConfig that can take the fabric
// target portal groups of the device's ports offline and back (configfs
// tpgt_N/enable). Without it a lost connection is still recovered from,
// but the initiators are not pushed to another gateway meanwhile.
type TPGSwitch interface {
	SetTPGEnabled(wwn string, tpgt uint16, on bool) error
}

// DefaultHoldDown is how long a gateway that lost the image's lock to
// another gateway refuses to take it back. Writes arriving meanwhile get
// NOT READY / TARGET PORT IN STANDBY STATE (02/04/0B), not BUSY:
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

// Lock gate states.
const (
	// lockUnlocked: the client is healthy and does not hold the lock.
	// Reads pass; a write takes the lock.
	lockUnlocked int32 = iota
	// lockLocking: a worker is taking the lock; everything is BUSY.
	lockLocking
	// lockLocked: this gateway holds the lock; everything passes.
	lockLocked
	// lockLost: the client was fenced and a reopen failed; the next IO
	// tries again.
	lockLost
	// lockReopening: a worker is reopening after the lock was lost.
	lockReopening
	// lockRecovering: the connection was lost; TPGs are offline while a
	// worker reopens.
	lockRecovering
)

var lockStateNames = [...]string{
	lockUnlocked:   "unlocked",
	lockLocking:    "locking",
	lockLocked:     "locked",
	lockLost:       "lost",
	lockReopening:  "reopening",
	lockRecovering: "recovering",
}

// LockStatus is what a device's lock gate says about the image's lock.
type LockStatus struct {
	// State is "unlocked", "held-down" (unlocked, and refusing writes
	// until HoldDownUntil), "locking", "locked", "lost", "reopening" or
	// "recovering".
	State string
	// Owner is the lock's holder as last seen ("" if unknown or none).
	Owner         string
	HoldDownUntil time.Time
	// Acquisitions counts the times this gateway took the lock: each is
	// one move of the lock onto it. Losses counts lock losses seen
	// through I/O, ConnLosses lost connections, Refused the writes
	// refused during hold-down.
	Acquisitions, Losses, ConnLosses, Refused uint64
}

// lockGate is a device's admitter when its backend is a Locker. Lock
// order: mu, then nothing; workers call the Locker without mu.
type lockGate struct {
	log      zerolog.Logger
	lk       Locker
	cfg      DeviceConfig
	waitIdle func(context.Context) error // Device.WaitIdle
	now      func() time.Time
	holdDown atomic.Int64 // nanoseconds
	tpgs     *tpgHolds

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
	// waiters are SET TARGET PORT GROUPS commands that complete when
	// the acquisition or release running now ends.
	waiters []*Cmd
	// refusal is the answer to media access while this gateway's ports
	// are in an explicit-only standby or unavailable group (0: none), as
	// configfs said at refusalAt.
	refusal   asc
	refusalAt time.Time
	stats     LockStatus
	closed    bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newLockGate(log zerolog.Logger, lk Locker, cfg DeviceConfig, waitIdle func(context.Context) error) *lockGate {
	ctx, cancel := context.WithCancel(context.Background())
	g := &lockGate{
		log:      log,
		lk:       lk,
		cfg:      cfg,
		waitIdle: waitIdle,
		now:      time.Now,
		tpgs:     &processTPGHolds,
		ctx:      ctx,
		cancel:   cancel,
	}
	g.holdDown.Store(int64(DefaultHoldDown))
	return g
}

// Admit implements admitter.
func (g *lockGate) Admit(c *Cmd) (result, bool) {
	if g.state.Load() == lockLocked {
		return done, false
	}
	return g.admitSlow(c)
}

func (g *lockGate) admitSlow(c *Cmd) (result, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	state := g.state.Load()
	if state == lockLocked {
		return done, false
	}
	if state == lockLost {
		// A reopen failed: any IO tries again.
		g.startLocked(lockReopening, g.reopenLost)
		state = g.state.Load()
	}
	// A command that leaves the medium as it is does not need the lock
	// (librbd reads without it, and reads cannot conflict with the
	// owner's writes), so it never moves it: dm-multipath and udev read
	// every path of a new device, which must not bounce the lock between
	// gateways (tcmu-runner's READ_LOCKED state, PR #477).
	write := c.row.medium == mediumChanges
	now := g.now()
	if state == lockUnlocked {
		if a := g.explicitRefusal(now); a != ascNone {
			return c.check(keyNotReady, a), true
		}
	}
	switch {
	case state == lockUnlocked && !write:
		return done, false
	case write && now.Before(g.holdUntil) && (state == lockUnlocked || state == lockReopening):
		// Refused at once, also while the fenced client is being
		// replaced: the initiator moves the write to the gateway that
		// took the lock instead of retrying it here.
		g.stats.Refused++
		return c.check(keyNotReady, ascLUNotReadyStandby), true
	case state == lockUnlocked && !now.Before(g.retryAt):
		g.startLocked(lockLocking, g.acquire)
	}
	return c.status(statusBusy), true
}

// startLocked moves to state and runs work on a worker goroutine; the
// worker ends by calling settle. Called with mu held, in a state where no
// worker runs.
func (g *lockGate) startLocked(state int32, work func(ctx context.Context)) {
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

// working reports whether a worker owns the state.
func working(state int32) bool {
	return state == lockLocking || state == lockReopening || state == lockRecovering
}

// settle ends a worker: the gate moves to state, or to recovery when the
// connection was lost meanwhile.
func (g *lockGate) settle(state int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.connLost && !g.closed {
		g.connLost = false
		g.startLocked(lockRecovering, g.recover)
		return
	}
	g.state.Store(state)
}

// noteIOError is told the errno of every failed IO (Cmd.fail).
func (g *lockGate) noteIOError(errno syscall.Errno) {
	switch errno {
	case syscall.ESHUTDOWN, syscall.EROFS:
		g.lockLost()
	case syscall.ETIMEDOUT:
		g.connectionLost()
	}
}

// lockLost: an IO failed because this gateway's client was fenced or its
// lock taken. Holding the lock until now means another gateway took it to
// serve the image: hold down.
func (g *lockGate) lockLost() {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.state.Load() {
	case lockLocked:
		g.stats.Losses++
		hold := time.Duration(g.holdDown.Load())
		g.lostAt = g.now()
		g.holdUntil = g.lostAt.Add(hold)
		g.log.Warn().Dur("hold_down", hold).Msg("exclusive lock lost to another gateway; reopening")
		g.startLocked(lockReopening, g.reopenLost)
	case lockUnlocked:
		// A read on a fenced client.
		g.startLocked(lockReopening, g.reopenLost)
	}
	// A worker running now meets the fenced client itself.
}

// connectionLost: an IO timed out, the cluster does not answer.
func (g *lockGate) connectionLost() {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch s := g.state.Load(); {
	case s == lockRecovering:
	case working(s):
		g.connLost = true
	default:
		g.startLocked(lockRecovering, g.recover)
	}
}

// reopen waits for the device's IO to drain (a reopen replaces the
// client under it) and reopens the backend.
func (g *lockGate) reopen(ctx context.Context) error {
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
func (g *lockGate) acquire(ctx context.Context) {
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
	next := lockLocked
	if err != nil {
		g.log.Warn().Err(err).Msg("take exclusive lock")
		g.retryAt = g.now().Add(acquireRetryDelay)
		next = lockUnlocked
		switch {
		case errors.Is(err, syscall.ETIMEDOUT):
			g.connLost = true
		case errors.Is(err, syscall.ESHUTDOWN):
			next = lockLost
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
func (g *lockGate) reopenLost(ctx context.Context) {
	start := time.Now()
	err := g.reopen(ctx)
	var owner string
	if err == nil {
		owner, _ = g.lk.LockOwner()
	}
	g.mu.Lock()
	next := lockUnlocked
	if err != nil {
		g.log.Error().Err(err).Msg("reopen after losing the exclusive lock")
		next = lockLost
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
// the TPGs back.
func (g *lockGate) recover(ctx context.Context) {
	g.mu.Lock()
	g.stats.ConnLosses++
	g.mu.Unlock()
	if n, ok := g.lk.(interface{ NoteConnectionLost() }); ok {
		n.NoteConnectionLost()
	}
	g.log.Warn().Msg("connection to the cluster lost; taking target portal groups offline and reopening")
	release := g.tpgs.hold(g.log, g.cfg, g.localTPGs())
	defer release()
	backoff := time.Second
	for {
		err := g.reopen(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			g.settle(lockLost)
			return
		}
		g.log.Error().Err(err).Dur("retry_in", backoff).Msg("reopen after losing the connection")
		select {
		case <-ctx.Done():
			g.settle(lockLost)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, reopenBackoff)
	}
	g.log.Info().Msg("reconnected to the cluster")
	// The lock was with the old client; another gateway may hold it now.
	g.settle(lockUnlocked)
}

// localTPGs returns the TPGs of the device's ports that are enabled: on a
// gateway those are its own (ceph-iscsi enables only the local TPG; see
// TargetPort.Enabled).
func (g *lockGate) localTPGs() []tpgRef {
	if g.cfg == nil {
		return nil
	}
	groups, err := g.cfg.PortGroups()
	if err != nil {
		g.log.Error().Err(err).Msg("read port groups to take them offline")
		return nil
	}
	var refs []tpgRef
	seen := map[tpgRef]bool{}
	for _, pg := range groups {
		for _, p := range pg.Ports {
			r := tpgRef{p.TargetName, p.TPGT}
			if p.Enabled && p.TargetName != "" && !seen[r] {
				seen[r] = true
				refs = append(refs, r)
			}
		}
	}
	return refs
}

// explicitTransition runs after SET TARGET PORT GROUPS changed group
// states. A group of this gateway's ports that became active/optimized
// means the initiator chose this gateway: the gateway takes the lock, and
// the command completes once it holds it (or fails with SET TARGET PORT
// GROUPS COMMAND FAILED if it cannot). When this gateway's groups are all
// standby or unavailable now, it gives the lock up the same way.
func (g *lockGate) explicitTransition(c *Cmd, groups []PortGroup) result {
	ao, inactive := false, true
	for _, pg := range groups {
		if !hasLocalPort(pg) {
			continue
		}
		ao = ao || pg.State == aluaActiveOptimized
		inactive = inactive && refusalOf(pg.State) != ascNone
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refusal, g.refusalAt = explicitRefusal(groups), g.now()
	s := g.state.Load()
	switch {
	case ao && s == lockLocked, !ao && !inactive, !ao && s != lockLocked:
		return c.good()
	case ao && s == lockLocking:
	case working(s) || g.closed:
		// Reopening or recovering: the initiator may try again.
		return c.status(statusBusy)
	case ao:
		// An explicit choice overrides the hold-down.
		g.holdUntil = time.Time{}
		g.startLocked(lockLocking, g.acquire)
	default:
		g.startLocked(lockLocking, g.release)
	}
	g.waiters = append(g.waiters, c)
	return pending
}

// release gives the lock up after SET TARGET PORT GROUPS put this
// gateway's ports in standby.
func (g *lockGate) release(context.Context) {
	err := g.lk.ReleaseLock()
	g.mu.Lock()
	waiters := g.waiters
	g.waiters = nil
	next := lockUnlocked
	if err != nil {
		g.log.Warn().Err(err).Msg("release exclusive lock")
		next = lockLocked
	} else {
		g.owner = ""
		g.log.Info().Msg("released exclusive lock: this gateway's ports are in standby")
	}
	g.mu.Unlock()
	g.settleTransition(next, waiters, err)
}

// explicitRefusalTTL bounds how long the gate trusts what configfs said
// about this gateway's port groups; SET TARGET PORT GROUPS refreshes it at
// once, an operator's configfs write within this.
const explicitRefusalTTL = time.Second

// explicitRefusal returns the additional sense code refusing media access
// at this gateway now (ascNone: none), from configfs at most
// explicitRefusalTTL old. Called with mu held.
func (g *lockGate) explicitRefusal(now time.Time) asc {
	if g.cfg == nil {
		return ascNone
	}
	if now.Sub(g.refusalAt) >= explicitRefusalTTL || now.Before(g.refusalAt) {
		groups, err := g.cfg.PortGroups()
		if err != nil {
			g.log.Warn().Err(err).Msg("read port groups")
			return ascNone
		}
		g.refusal, g.refusalAt = explicitRefusal(groups), now
	}
	return g.refusal
}

// explicitRefusal is the answer to media access at a gateway whose port
// groups allow explicit transitions only and are all standby or
// unavailable (SPC-4 5.15.2.4-5): the kernel does not check ALUA states
// for TCMU devices (TRANSPORT_FLAG_PASSTHROUGH_ALUA), so the handler must.
// Groups that allow implicit transitions let I/O take the lock instead.
func explicitRefusal(groups []PortGroup) asc {
	refusal := ascNone
	for _, pg := range groups {
		if !hasLocalPort(pg) {
			continue
		}
		a := refusalOf(pg.State)
		if a == ascNone || pg.Implicit || !pg.Explicit {
			return ascNone
		}
		refusal = max(refusal, a)
	}
	return refusal
}

// refusalOf is the sense a port in access state answers media access
// with: LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE (04/0B)
// or UNAVAILABLE STATE (04/0C); ascNone for states that serve it.
func refusalOf(state uint8) asc {
	switch state {
	case aluaStandby:
		return ascLUNotReadyStandby
	case aluaUnavailable, aluaOffline:
		return ascLUNotReadyUnavailable
	}
	return ascNone
}

// hasLocalPort reports whether one of pg's ports is this gateway's.
func hasLocalPort(pg PortGroup) bool {
	for _, p := range pg.Ports {
		if p.Enabled {
			return true
		}
	}
	return false
}

// settleTransition ends a worker that SET TARGET PORT GROUPS commands
// waited for: the state first, then the commands. An initiator told the
// transition is done sends its next command at once, and that command
// must meet the new state, not BUSY from the old one.
func (g *lockGate) settleTransition(next int32, waiters []*Cmd, err error) {
	g.settle(next)
	for _, c := range waiters {
		g.finishTransition(c, err)
	}
}

// finishTransition completes a SET TARGET PORT GROUPS command that waited
// for the lock to be taken or given up.
func (g *lockGate) finishTransition(c *Cmd, err error) {
	if err != nil {
		c.check(keyHardwareError, ascSetTargetPortGroupsFailed)
	} else {
		c.good()
	}
	c.dev.complete(c, true)
}

// close stops the gate's workers; the lock itself goes with the backend.
func (g *lockGate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}

// status snapshots the gate.
func (g *lockGate) status() LockStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.State = lockStateNames[g.state.Load()]
	s.Owner = g.owner
	if s.State == "unlocked" && g.now().Before(g.holdUntil) {
		s.State = "held-down"
		s.HoldDownUntil = g.holdUntil
	}
	return s
}

// Transitions counts the lock's moves onto this gateway (stats.go).
func (g *lockGate) Transitions() uint64 { return g.status().Acquisitions }

// LockState reports owner and state for the device status.
func (g *lockGate) LockState() (owner, state string) {
	s := g.status()
	return s.Owner, s.State
}

// tpgRef names a fabric TPG.
type tpgRef struct {
	wwn  string
	tpgt uint16
}

// tpgHolds counts the devices recovering behind each TPG. A TPG is shared
// by every LUN exported through it, so it goes offline when the first of
// its devices loses its connection and comes back when the last one has
// reopened, as tcmu-runner's per-TPG recovery list does (target.c).
type tpgHolds struct {
	mu    sync.Mutex
	count map[tpgRef]int
}

// processTPGHolds is the one registry of the process: TPGs are
// kernel-wide, whichever device a gate belongs to.
var processTPGHolds tpgHolds

// hold takes refs offline (those not offline already) and returns the
// function that brings each back when its last holder releases it.
func (h *tpgHolds) hold(log zerolog.Logger, cfg DeviceConfig, refs []tpgRef) (release func()) {
	sw, ok := cfg.(TPGSwitch)
	if !ok || len(refs) == 0 {
		return func() {}
	}
	h.mu.Lock()
	if h.count == nil {
		h.count = map[tpgRef]int{}
	}
	for _, r := range refs {
		h.count[r]++
		if h.count[r] == 1 {
			if err := sw.SetTPGEnabled(r.wwn, r.tpgt, false); err != nil {
				log.Error().Err(err).Str("target", r.wwn).Uint16("tpgt", r.tpgt).Msg("take target portal group offline")
			} else {
				log.Warn().Str("target", r.wwn).Uint16("tpgt", r.tpgt).Msg("target portal group offline")
			}
		}
	}
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, r := range refs {
			h.count[r]--
			if h.count[r] > 0 {
				continue
			}
			delete(h.count, r)
			if err := sw.SetTPGEnabled(r.wwn, r.tpgt, true); err != nil {
				log.Error().Err(err).Str("target", r.wwn).Uint16("tpgt", r.tpgt).Msg("bring target portal group back")
			} else {
				log.Info().Str("target", r.wwn).Uint16("tpgt", r.tpgt).Msg("target portal group back online")
			}
		}
	}
}

// Device methods of the gate.

// noteIOError tells the gate, if any, that an IO failed with errno.
func (d *Device) noteIOError(errno syscall.Errno) {
	if g, ok := d.gate.(*lockGate); ok {
		g.noteIOError(errno)
	}
}

// explicitTransition lets the gate act on a SET TARGET PORT GROUPS that
// changed group states (rtpg.go).
func (d *Device) explicitTransition(c *Cmd) result {
	g, ok := d.gate.(*lockGate)
	if !ok {
		return c.good()
	}
	groups, err := d.portGroups()
	if err != nil {
		return c.configFailed(err)
	}
	return g.explicitTransition(c, groups)
}

// SetLockHoldDown sets how long the device refuses writes after losing
// the image's lock to another gateway (DefaultHoldDown until set; 0
// takes the lock back at once, as tcmu-runner does), also for a hold-down
// running now. It does nothing for a backend without a lock.
func (d *Device) SetLockHoldDown(hold time.Duration) {
	if g, ok := d.gate.(*lockGate); ok {
		g.setHoldDown(max(hold, 0))
	}
}

func (g *lockGate) setHoldDown(hold time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holdDown.Store(int64(hold))
	if !g.holdUntil.IsZero() {
		g.holdUntil = g.lostAt.Add(hold)
	}
}

// LockStatus reports the device's lock gate; ok is false when the
// backend has no lock.
func (d *Device) LockStatus() (s LockStatus, ok bool) {
	g, ok := d.gate.(*lockGate)
	if !ok {
		return LockStatus{}, false
	}
	return g.status(), true
}

// SetTPGEnabled implements TPGSwitch for the running system's configfs.
func (f configfsFiles) SetTPGEnabled(wwn string, tpgt uint16, on bool) error {
	return f.c.SetTPGEnabled(wwn, tpgt, on)
}
