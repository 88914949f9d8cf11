package handler

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler/lockgate"
	"github.com/gotcmu/gotcmu/uio"
)

// DeviceConfig is the part of a device's configfs the SCSI emulation reads
// while running: things rtslib writes after enable, or that the operator
// may change under a running device. Configfs is the truth: the emulation
// reads it each time a command needs it and keeps no copy.
type DeviceConfig interface {
	// UnitSerial returns the unit serial number of wwn/vpd_unit_serial
	// without the file's "T10 VPD Unit Serial Number: " prefix ("" if not
	// set yet).
	UnitSerial() (string, error)
	// PortGroups returns the ALUA target port groups of the device. An
	// empty list means ALUA is not configured: INQUIRY reports TPGS 00b.
	PortGroups() ([]PortGroup, error)
	// SetPortGroupState makes an explicit ALUA transition (SET TARGET
	// PORT GROUPS): it writes state to alua/<group>/alua_access_state of
	// the group with the given ID, and records alua_access_status as
	// "Altered by Explicit STPG". It is called only for groups whose
	// PortGroup.Explicit is set and states their Supported byte allows.
	// Taking the image's exclusive lock when a group of this gateway's
	// becomes active/optimized is the device's lock gate's (gate.go). An
	// error fails the command with HARDWARE ERROR / SET TARGET PORT
	// GROUPS COMMAND FAILED (SPC-4 6.36).
	SetPortGroupState(id uint16, state uint8) error
}

// PortGroup is one ALUA target port group (configfs alua/<group>).
type PortGroup struct {
	Name  string
	ID    uint16
	State uint8 // asymmetric access state (SPC-4 6.37): 0 AO, 1 ANO, 2 standby, ...
	// Supported is the supported-states byte of REPORT TARGET PORT GROUPS
	// (T_SUP, O_SUP, LBD_SUP, U_SUP, S_SUP, AN_SUP, AO_SUP; SPC-4 6.37).
	Supported uint8
	Preferred bool
	// Implicit and Explicit give the group's alua_access_type.
	Implicit, Explicit bool
	// ImplicitTransitionSecs is implicit_trans_secs (at most 255 in the
	// kernel), reported in REPORT TARGET PORT GROUPS' extended header.
	ImplicitTransitionSecs uint8
	// Status is alua_access_status, the STATUS CODE of REPORT TARGET PORT
	// GROUPS: 0 none, 1 altered by SET TARGET PORT GROUPS, 2 altered by
	// implicit ALUA.
	Status uint8
	// Ports are the target ports in the group (alua/<group>/members).
	Ports []TargetPort
}

// TargetPort is one target port of a port group: a LUN of a fabric TPG
// (member "<fabric>/<wwn>/tpgt_N/lun_M" of an ALUA group).
type TargetPort struct {
	// RelativeID is the relative target port identifier
	// (lun_M/statistics/scsi_port/indx).
	RelativeID uint16
	// ProtocolID is the SCSI transport protocol identifier of the fabric
	// (SPC-4 7.6.1: 5 iSCSI, 6 SAS, 0 FCP, ...).
	ProtocolID uint8
	// TargetName is the target's WWN (an iSCSI IQN) and TPGT the target
	// portal group tag: the SCSI name strings of VPD page 83.
	TargetName string
	TPGT       uint16
	// Enabled reports tpgt_N/enable. Each gateway enables only its own
	// TPGs (ceph-iscsi), so the enabled port is the one commands arrive
	// through: TCMU does not say which port a command came in on, and
	// tcmu-runner makes the same inference (tcmu_get_enabled_port).
	Enabled bool
	// AlwaysOn: the TPG has no enable attribute (tcm_loop): nothing can
	// take it offline.
	AlwaysOn bool
}

// settings is a snapshot of what the kernel told us about the device;
// replaced as a whole (resize, write cache change), read without locks.
type settings struct {
	blockSize  uint32
	numLBAs    uint64
	maxSectors uint32
	writeCache bool
}

// Device is one TCMU device being served: its ring, its backend, and the
// SCSI state the emulation keeps.
type Device struct {
	log  zerolog.Logger
	name string
	info DeviceInfo

	ring *uio.Ring
	wait uio.Waiter // a uio.Device, or the fake kernel of uio/uiotest
	be   Backend
	lim  Limits
	cfg  DeviceConfig
	// gate admits medium access when several gateways serve the backend
	// (gate.go); nil when the backend has no lock.
	gate *lockgate.Gate
	// copyPeer finds another device served by this daemon by its NAA
	// designator, for EXTENDED COPY: nil for none, and an error wrapping
	// ErrCopyTargetNotReachable when the initiators that reach this device
	// are not exactly those that reach it (or that cannot be read). Set by
	// the Manager; nil otherwise.
	copyPeer func(naa [16]byte) (*Device, error)
	// copyTenant says who alone reaches this device (one initiator, or
	// this host through tcm_loop), and false when that is not one: the
	// condition on which EXTENDED COPY holds its status for RECEIVE COPY
	// RESULTS, since TCMU does not say which I_T nexus sent a command.
	// Set by the Manager; nil otherwise (no status is held).
	copyTenant func() (string, bool)

	set               atomic.Pointer[settings]
	dsense            atomic.Bool // Control mode page D_SENSE
	uaCapacityChanged atomic.Bool

	freeMu sync.Mutex
	free   []*Cmd

	inflight inFlight
	kick     chan struct{}
	// batching is set while the command loop drains a batch (drain).
	batching atomic.Bool
	// spinWait is how long the loop polls the ring after a batch before
	// it sleeps on the uio fd (SetSpinWait; 0, the default, never).
	spinWait atomic.Int64
	// noPoll keeps the loop of Run even for a device that could poll
	// (SetPollLoop).
	noPoll atomic.Bool
	stats  deviceStats
	cstats commandStats
	// busy are the runs of BUSY answers going on, and their bounds
	// (busy.go).
	busy busyRuns

	// sbc is the state of the block commands (sbc.go).
	sbc sbcDevice
}

// deviceStats are the counters `gotcmu status` and the metrics report.
type deviceStats struct {
	commands atomic.Uint64
	errors   atomic.Uint64
	kickErrs atomic.Uint64
}

// NewDevice makes a device ready to Run. The backend is owned by the
// device from here on and closed by Close. A backend that implements
// Locker gets a lock gate, which takes the device's TPGs offline on its
// own while its connection is lost; the devices of a Manager share one
// registry of those instead.
func NewDevice(log zerolog.Logger, info DeviceInfo, ring *uio.Ring, wait uio.Waiter, be Backend, cfg DeviceConfig) (*Device, error) {
	return newDevice(log, info, ring, wait, be, cfg, nil)
}

// newDevice is NewDevice with the registry of TPGs held offline that the
// device's lock gate shares (nil: its own).
func newDevice(log zerolog.Logger, info DeviceInfo, ring *uio.Ring, wait uio.Waiter, be Backend, cfg DeviceConfig, tpgs *lockgate.Holds) (*Device, error) {
	switch info.BlockSize {
	case 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536:
	default:
		return nil, fmt.Errorf("block size %d: %w", info.BlockSize, syscall.EINVAL)
	}
	if info.Size < 0 || info.Size%int64(info.BlockSize) != 0 {
		return nil, fmt.Errorf("size %d is not a multiple of block size %d: %w", info.Size, info.BlockSize, syscall.EINVAL)
	}
	d := &Device{
		log:  log,
		name: info.Name,
		info: info,
		ring: ring,
		wait: wait,
		be:   be,
		lim:  be.Limits(),
		cfg:  cfg,
		kick: make(chan struct{}, 1),
	}
	if lk, ok := be.(Locker); ok {
		// Several gateways serve this backend: implicit ALUA over its
		// exclusive lock (gate.go).
		d.gate = d.newGate(lk, tpgs)
	}
	d.set.Store(&settings{
		blockSize:  info.BlockSize,
		numLBAs:    uint64(info.Size) / uint64(info.BlockSize),
		maxSectors: max(info.MaxSectors, 1),
		writeCache: info.WriteCache,
	})
	return d, nil
}

// Name returns the configfs name of the device.
func (d *Device) Name() string { return d.name }

// Run serves commands until ctx is cancelled or the ring can no longer be
// used (the device was removed, the ring broke). It returns nil on
// cancellation.
func (d *Device) Run(ctx context.Context) error {
	// Touching a data-area page that no pending iovec refers to raises
	// SIGBUS; make that a recoverable fault in this goroutine, not a crash.
	if w, p, ok := d.polled(); ok && !d.noPoll.Load() {
		return d.runPolled(ctx, w, p)
	}
	debug.SetPanicOnFault(true)
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	go d.kicker(kctx)
	for {
		if err := d.drain(time.Now()); err != nil {
			return err
		}
		if d.spin(ctx) {
			continue
		}
		if err := d.wait.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("wait for commands: %w", err)
		}
	}
}

// SetPollLoop chooses the command loop of a device whose waiter and
// backend allow it: on (the default), one goroutine sleeps in one epoll
// set for commands and completions together (runPolled); off, the command
// loop waits for commands only and the backend delivers completions from a
// goroutine of its own. Set before Run.
func (d *Device) SetPollLoop(on bool) { d.noPoll.Store(!on) }

// SetSpinWait makes the command loop poll the ring for up to spin after
// each batch before it sleeps on the uio fd (spin-then-block): a command
// queued meanwhile is fetched without the wake-up of a sleeping loop, at
// the price of a CPU kept busy for up to spin after every batch. 0 (the
// default) sleeps at once. test/results/bench-spin.md has the measurement.
func (d *Device) SetSpinWait(spin time.Duration) { d.spinWait.Store(int64(max(spin, 0))) }

// spin polls the ring for the spin-wait and reports whether the kernel
// queued a command meanwhile. The kernel still raises its uio event for
// that command, so the next Wait returns at once and finds the batch
// already served: one read of the fd, no sleep.
func (d *Device) spin(ctx context.Context) bool {
	spin := time.Duration(d.spinWait.Load())
	if spin <= 0 {
		return false
	}
	deadline := time.Now().Add(spin)
	for {
		if d.ring.Queued() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		default:
		}
		if !time.Now().Before(deadline) {
			return false
		}
		runtime.Gosched()
	}
}

// drain fetches and executes every command queued since the last wakeup,
// then rings the doorbell once for everything completed meanwhile. now,
// the wake-up's clock read, is every command's start time: one clock read
// for the batch (time.Now costs 50-150 ns on hardware, a system call in a
// guest whose clocksource is not the TSC).
//
// While a batch runs, completions leave the doorbell to its end: those
// that arrive inside Submit (mem completes inline) and those a backend
// goroutine posts meanwhile. Each posts its response before it looks at
// batching, and the loop clears batching before it rings, so the one
// doorbell covers every response posted while batching was seen set;
// without this each inline completion woke the kicker goroutine to find
// nothing left to ring.
func (d *Device) drain(now time.Time) (err error) {
	d.batching.Store(true)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("fault while serving ring: %v", p)
			d.ring.Flush() // what the batch answered before the fault
		}
		if d.batching.Swap(false) {
			d.doorbell()
		}
	}()
	if err := d.ring.Refresh(); err != nil {
		return err
	}
	for {
		c := d.getCmd()
		ok, err := d.ring.Next(c.Command)
		if err != nil || !ok {
			d.putCmd(c)
			d.ring.Flush()
			d.batching.Store(false)
			d.doorbell()
			return err
		}
		d.stats.commands.Add(1)
		c.start = now
		if d.execute(c) == done {
			// Answered within the batch: its response goes to the ring
			// with the batch's others (Ring.Flush above), and the
			// doorbell rings once for them all.
			d.account(c)
			d.ring.CompleteLater(c.Command)
			d.putCmd(c)
		}
	}
}

// complete posts c's response to the ring and recycles c. Completions from
// backend goroutines (async) outside a batch hand the doorbell to the
// kicker goroutine, so a burst of them costs one write; inside a batch the
// command loop rings it at the batch's end (drain).
func (d *Device) complete(c *Cmd, async bool) {
	d.post(c)
	d.putCmd(c)
	switch {
	case !async || d.batching.Load():
	case d.inflight.load() <= 1:
		// The last IO in flight (an IO completing still counts itself):
		// nothing else is coming to share a doorbell with, so ring it
		// here instead of waking the kicker, one goroutine hop less at
		// queue depth 1, as tcmu-runner rings from librbd's callback.
		d.doorbell()
	default:
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

// post writes c's response to the ring without recycling c: a command
// whose status goes out before its work ends (SYNCHRONIZE CACHE with
// IMMED) is recycled later.
func (d *Device) post(c *Cmd) {
	d.account(c)
	d.ring.Complete(c.Command)
}

// account records c's answer in the device's counters and busy run.
func (d *Device) account(c *Cmd) {
	d.cstats.record(c, time.Now())
	d.endBusy(c)
}

// settle does the bookkeeping of a command the backend answered GOOD
// itself at time at (IO.Answered), and recycles it: nothing goes to the
// ring, and the backend has normally rung the doorbell.
func (d *Device) settle(c *Cmd, at time.Time) {
	d.cstats.record(c, at)
	d.endBusy(c)
	d.putCmd(c)
	// Only if the backend could not (a ring without a doorbell fd, as in
	// tests): one atomic load otherwise.
	d.doorbell()
}

func (d *Device) kicker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
			d.doorbell()
		}
	}
}

func (d *Device) doorbell() {
	if err := d.ring.Kick(); err != nil {
		if d.stats.kickErrs.Add(1) == 1 {
			d.log.Error().Err(err).Msg("notify kernel of completions")
		}
	}
}

func (d *Device) getCmd() *Cmd {
	d.freeMu.Lock()
	if n := len(d.free); n > 0 {
		c := d.free[n-1]
		d.free = d.free[:n-1]
		d.freeMu.Unlock()
		return c
	}
	d.freeMu.Unlock()
	return newCmd(d)
}

func (d *Device) putCmd(c *Cmd) {
	c.then = nil
	c.releaseSBC()
	d.freeMu.Lock()
	d.free = append(d.free, c)
	d.freeMu.Unlock()
}

// countError records a failed IO.
func (d *Device) countError(c *Cmd, errno syscall.Errno) {
	if d.stats.errors.Add(1)%1000 == 1 {
		d.log.Warn().Uint16("cmd_id", c.ID).Str("errno", errno.Error()).Uint8("op", c.op()).Msg("io failed")
	}
}

// Resize changes the capacity after the kernel's dev_size changed and
// raises CAPACITY DATA HAS CHANGED for the next command (SBC-3 4.11).
func (d *Device) Resize(size int64) error {
	old := d.set.Load()
	if size <= 0 || size%int64(old.blockSize) != 0 {
		return fmt.Errorf("resize to %d bytes: %w", size, syscall.EINVAL)
	}
	if r, ok := d.be.(Resizer); ok {
		if err := r.Resize(size); err != nil {
			return fmt.Errorf("resize backend: %w", err)
		}
	}
	s := *old
	s.numLBAs = uint64(size) / uint64(s.blockSize)
	d.set.Store(&s)
	d.uaCapacityChanged.Store(true)
	d.log.Info().Int64("size", size).Msg("capacity changed")
	return nil
}

// SetWriteCache records emulate_write_cache (reported as WCE).
func (d *Device) SetWriteCache(on bool) {
	s := *d.set.Load()
	s.writeCache = on
	d.set.Store(&s)
}

// InFlight returns how many backend operations are outstanding.
func (d *Device) InFlight() int64 { return d.inflight.load() }

// WaitIdle returns once no IO of the device is in flight, or ctx's error.
// A backend that answers on its own threads is asked to hand each answer
// over at once meanwhile (AnswerWaker).
func (d *Device) WaitIdle(ctx context.Context) error {
	if w, ok := d.be.(AnswerWaker); ok {
		w.WakeOnAnswer(true)
		defer w.WakeOnAnswer(false)
	}
	return d.inflight.wait(ctx)
}

// Close releases the backend. The caller has stopped Run and made sure no
// IO is in flight.
func (d *Device) Close() error {
	if n := d.inflight.load(); n != 0 {
		return fmt.Errorf("close device with %d operations in flight: %w", n, syscall.EBUSY)
	}
	if d.gate != nil {
		// Its workers use the backend.
		d.gate.Close()
	}
	d.sbc.close()
	return errors.Join(d.be.Close())
}
