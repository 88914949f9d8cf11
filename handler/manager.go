package handler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler/lockgate"
	"github.com/gotcmu/gotcmu/uio"
)

// Kernel is how the Manager reaches TCMU devices: package uio and configfs
// in production (NewUIOKernel), the fake kernel of uio/uiotest in tests.
type Kernel interface {
	// Open opens the uio device of a TCMU device and maps its ring.
	Open(ref DeviceRef) (Port, error)
	// Files returns the configfs view of a device, which works without
	// opening it (block_dev and reset_ring come before the open).
	Files(ref DeviceRef) (DeviceFiles, error)
	// List returns the TCMU devices that exist now.
	List() ([]DeviceRef, error)
	// Reach reads which initiators reach each exported device (uio.Reach),
	// for EXTENDED COPY between devices.
	Reach() (Reach, error)
}

// DeviceRef names a TCMU device as the kernel announces it.
type DeviceRef struct {
	// UIOName is "tcm-user/<hba>/<name>[/<config>]".
	UIOName string
	Minor   uint32
}

// Port is an open uio device.
type Port interface {
	uio.Waiter
	Ring() *uio.Ring
	Close() error
}

// DeviceFiles is a device's configfs directory.
type DeviceFiles interface {
	DeviceConfig
	// Attributes reads what the backend needs to open: size, block size,
	// hw_max_sectors, emulate_write_cache.
	Attributes() (size int64, blockSize, maxSectors uint32, writeCache bool, err error)
	// BlockDev writes action/block_dev.
	BlockDev(on bool) error
	// ResetRing writes action/reset_ring=1: the kernel completes every
	// outstanding command with BUSY and resets head and tail to 0.
	ResetRing() error
}

// Manager owns every device gotcmu serves. Netlink events, adoption at
// start, D-Bus and shutdown all go through it. It is safe for concurrent
// use.
//
// Lock order: Manager.mu, then nothing (device work happens outside it).
type Manager struct {
	log      zerolog.Logger
	kernel   Kernel
	handlers map[string]Handler

	// openTimeout bounds each backend open (SetOpenTimeout); retryMin and
	// retryMax bound the backoff of a device waiting for its backend
	// (waiting.go). Zero means the defaults.
	openTimeout        atomic.Int64
	retryMin, retryMax time.Duration
	// giveUpLo and giveUpHi bound the backoff of a command loop that
	// gave up (repair.go), giveUpAfter replaces its timer; zero and nil
	// mean the defaults (tests change them).
	giveUpLo, giveUpHi atomic.Int64
	giveUpAfter        atomic.Pointer[func(time.Duration) <-chan time.Time]

	mu      sync.Mutex
	devices map[string]*managed // by uio name; nil while opening or waiting
	// byNAA remembers which device (uio name) had a NAA designator when
	// lookupNAA last walked the devices; a hit is checked against that
	// device's serial before it is used (lookupNAA).
	byNAA   map[[16]byte]string
	waiting map[string]*waiter // devices whose backend has not opened, by uio name
	opening map[string]opening // devices in their first open, by uio name
	// inflight holds the backend opens running, by uio name; openSlots
	// bounds how many run at once (opens.go).
	inflight  map[string]*backendOpen
	openSlots chan struct{}
	closed    bool // Shutdown began: nothing new waits
	wg        sync.WaitGroup

	spinWait   time.Duration // SetSpinWait
	noPollLoop bool          // SetPollLoop
	busyBounds BusyBounds    // SetBusyBounds

	reach *reachCache // EXTENDED COPY between devices: copyPeer
	// tpgs counts the devices whose lock gate holds each TPG offline:
	// TPGs are kernel-wide, shared by the devices exported through them.
	tpgs lockgate.Holds
}

type managed struct {
	ref    DeviceRef
	key    string // uio.UIOName.DeviceKey: the device in a Reach
	dev    *Device
	port   Port
	files  DeviceFiles
	sub    string
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returns
	runErr error
	loop   loopState // a command loop that gave up (repair.go)
}

// NewManager returns a Manager serving devices of the given handlers.
func NewManager(log zerolog.Logger, kernel Kernel, handlers []Handler) *Manager {
	m := &Manager{log: log, kernel: kernel, handlers: map[string]Handler{}, devices: map[string]*managed{},
		openSlots: make(chan struct{}, DefaultOpenConcurrency)}
	m.reach = newReachCache(kernel.Reach, time.Now)
	for _, h := range handlers {
		m.handlers[h.Subtype] = h
	}
	return m
}

// SetPollLoop chooses the command loop (Device.SetPollLoop) of every
// device served from now on; the daemon sets it before it adopts any.
func (m *Manager) SetPollLoop(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.noPollLoop = !on
}

// SetSpinWait sets the spin-wait (Device.SetSpinWait) of every device
// served from now on; the daemon sets it before it adopts any.
func (m *Manager) SetSpinWait(spin time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.spinWait = spin
}

// Handlers returns the handlers the manager serves, sorted by subtype.
func (m *Manager) Handlers() []Handler {
	hs := make([]Handler, 0, len(m.handlers))
	for _, h := range m.handlers {
		hs = append(hs, h)
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].Subtype < hs[j].Subtype })
	return hs
}

// Add starts serving a device the kernel announced (ADDED_DEVICE). The
// returned error is what the kernel's enable write reports. A backend
// that does not open within the open timeout (an unreachable cluster) is
// no error: the device is enabled, blocked (the kernel answers its
// commands BUSY) and retried in the background until it opens
// (waiting.go). Any other failure to open is returned, so that the enable
// fails with the reason.
func (m *Manager) Add(ctx context.Context, ref DeviceRef) error {
	err := m.add(ctx, ref, false, nil)
	if timedOut(err) {
		m.wait(ref, err, true)
		return nil
	}
	return err
}

// Adopt serves every TCMU device that already exists, as a restarted
// daemon must (AdoptDevice), all at once: one device whose backend is
// slow to open holds up no other (their backends open at most
// OpenConcurrency at a time, opens.go). It returns when every device is served
// or waiting for its backend; one that gotcmu cannot serve at all is
// logged and skipped.
func (m *Manager) Adopt(ctx context.Context) error {
	refs, err := m.List()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.AdoptDevice(ctx, ref); err != nil {
				m.log.Error().Err(err).Str("uio", ref.UIOName).Msg("adopt device")
			}
		}()
	}
	wg.Wait()
	return nil
}

// List returns the TCMU devices the kernel has now.
func (m *Manager) List() ([]DeviceRef, error) {
	refs, err := m.kernel.List()
	if err != nil {
		return nil, fmt.Errorf("list tcmu devices: %w", err)
	}
	return refs, nil
}

// AdoptDevice serves one device that already exists: block_dev,
// reset_ring (whatever the previous daemon left in the ring is completed
// with BUSY, so the initiator retries it), open, unblock. A device whose
// backend does not open stays blocked and is retried in the background
// (waiting.go); AdoptDevice returns nil for it, and for a device served
// already. It fails only for a device no handler here can serve.
func (m *Manager) AdoptDevice(ctx context.Context, ref DeviceRef) error {
	if _, err := m.resolve(ref); err != nil {
		return err
	}
	err := m.add(ctx, ref, true, nil)
	if err == nil || errors.Is(err, ErrAlreadyServed) {
		return nil
	}
	m.wait(ref, err, false)
	return nil
}

// ErrAlreadyServed is returned by Add for a device the manager serves
// already (an ADDED event for a device adopted at start).
var ErrAlreadyServed = errors.New("device already served")

// target is what a device's uio name says about serving it.
type target struct {
	name    uio.UIOName
	h       Handler
	subtype string
	config  string // after "<subtype>/"
}

// resolve finds the handler of a device; an error means no handler here
// can serve it.
func (m *Manager) resolve(ref DeviceRef) (target, error) {
	name, err := uio.ParseUIOName(ref.UIOName)
	if err != nil {
		return target{}, fmt.Errorf("add device: %w", syscall.EINVAL)
	}
	subtype, config, ok := strings.Cut(name.Config, "/")
	if !ok || subtype == "" {
		return target{}, fmt.Errorf("config string %q of %s has no <subtype>/ prefix: %w", name.Config, name.Device, syscall.EINVAL)
	}
	h, ok := m.handlers[subtype]
	if !ok {
		return target{}, fmt.Errorf("no handler for subtype %q of %s: %w", subtype, name.Device, syscall.ENOENT)
	}
	return target{name: name, h: h, subtype: subtype, config: config}, nil
}

// add opens a device and starts serving it. With reopen it blocks the
// device and resets its ring first, and unblocks it only once it is
// served. w is the waiter retrying the device, which holds the device's
// name in m.devices; without one add reserves the name itself.
func (m *Manager) add(ctx context.Context, ref DeviceRef, reopen bool, w *waiter) (err error) {
	t, err := m.resolve(ref)
	if err != nil {
		return err
	}
	name, subtype, config, h := t.name, t.subtype, t.config, t.h
	devName := name.Device
	if w == nil {
		m.mu.Lock()
		if _, ok := m.devices[ref.UIOName]; ok {
			m.mu.Unlock()
			return fmt.Errorf("add %s: %w", ref.UIOName, ErrAlreadyServed)
		}
		m.devices[ref.UIOName] = nil // reserve the name while opening
		if m.opening == nil {
			m.opening = map[string]opening{}
		}
		m.opening[ref.UIOName] = opening{ref: ref, t: t, since: time.Now()}
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			delete(m.opening, ref.UIOName)
			if err != nil {
				delete(m.devices, ref.UIOName)
			}
			m.mu.Unlock()
		}()
	}

	log := m.log.With().Str("dev", devName).Str("uio", fmt.Sprintf("uio%d", ref.Minor)).Str("handler", subtype).Logger()
	files, err := m.kernel.Files(ref)
	if err != nil {
		return fmt.Errorf("configfs of %s: %w", devName, err)
	}
	if reopen {
		if err := files.BlockDev(true); err != nil {
			return fmt.Errorf("block %s: %w", devName, err)
		}
		defer func() {
			if err != nil {
				// Stays blocked: its commands are answered BUSY by the
				// kernel while it waits for its backend (waiting.go).
				return
			}
			if uerr := files.BlockDev(false); uerr != nil {
				log.Error().Err(uerr).Msg("unblock device")
			}
		}()
		if err := files.ResetRing(); err != nil {
			return fmt.Errorf("reset ring of %s: %w", devName, err)
		}
	}
	size, bs, maxSec, wc, err := files.Attributes()
	if err != nil {
		return fmt.Errorf("attributes of %s: %w", devName, err)
	}
	info := DeviceInfo{Name: devName, Config: config, Size: size, BlockSize: bs, MaxSectors: maxSec, WriteCache: wc}
	// The backend first: it may take the open timeout, and the uio device
	// (its 1 GiB mapping) is held only once there is a backend to serve.
	be, err := m.openBackend(ctx, ref.UIOName, h, info, log, w != nil)
	if err != nil {
		return fmt.Errorf("open %s backend %q: %w", subtype, config, err)
	}
	port, err := m.kernel.Open(ref)
	if err != nil {
		be.Close()
		return fmt.Errorf("open uio%d: %w", ref.Minor, err)
	}
	dev, err := newDevice(log, info, port.Ring(), port, be, files, &m.tpgs)
	if err != nil {
		be.Close()
		port.Close()
		return err
	}
	key := name.DeviceKey()
	dev.copyPeer = func(naa [16]byte) (*Device, error) { return m.copyPeer(key, naa) }
	dev.copyTenant = func() (string, bool) { return m.copyTenant(key) }
	runCtx, cancel := context.WithCancel(context.Background())
	md := &managed{ref: ref, key: key, dev: dev, port: port, files: files, sub: subtype, cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	dev.SetSpinWait(m.spinWait)
	dev.SetPollLoop(!m.noPollLoop)
	dev.SetBusyBounds(m.busyBounds)
	m.devices[ref.UIOName] = md
	m.mu.Unlock()
	m.reach.invalidate()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(md.done)
		md.runErr = m.serve(runCtx, md)
		if md.runErr != nil {
			log.Error().Err(md.runErr).Msg("command loop stopped")
		}
	}()
	log.Info().Int64("size", size).Uint32("block_size", bs).Bool("reopen", reopen).Str("config", config).Msg("serving device")
	return nil
}

// lookupNAA finds a served device by its NAA designator (EXTENDED COPY),
// and returns it with its Reach key.
//
// A copy names its source and target by designator, and a device's serial
// lives in configfs, where targetcli or ceph-iscsi may still set it after
// the device was added; so the index only says where to look: a hit costs
// one read of that device's serial, and a miss, or a device whose serial
// no longer matches, walks every device (one read each) and rebuilds the
// index. Copies between the devices of a gateway hit, whatever their
// number; a designator served by no device here walks each time.
func (m *Manager) lookupNAA(naa [16]byte) (*Device, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if md := m.devices[m.byNAA[naa]]; md != nil {
		if s, err := md.files.UnitSerial(); err == nil && s != "" && naaDesignator(s) == naa {
			return md.dev, md.key
		}
	}
	m.byNAA = make(map[[16]byte]string, len(m.devices))
	var found *managed
	for name, md := range m.devices {
		if md == nil {
			continue
		}
		s, err := md.files.UnitSerial()
		if err != nil || s == "" {
			continue
		}
		d := naaDesignator(s)
		m.byNAA[d] = name
		if d == naa && found == nil {
			found = md
		}
	}
	if found == nil {
		return nil, ""
	}
	return found.dev, found.key
}

// Remove stops serving a device the kernel is deleting (REMOVED_DEVICE).
func (m *Manager) Remove(ctx context.Context, uioName string) error {
	if m.dropWaiting(uioName) {
		return nil
	}
	m.mu.Lock()
	md, ok := m.devices[uioName]
	if ok && md != nil {
		delete(m.devices, uioName)
	}
	m.mu.Unlock()
	m.reach.invalidate()
	if !ok || md == nil {
		return fmt.Errorf("remove %s: %w", uioName, syscall.ENODEV)
	}
	return m.stop(ctx, md, false, nil)
}

// stop ends a device's command loop, waits for the backend to finish what
// is in flight (its completions write into the mapping, which must outlive
// them), and closes backend and uio device. With block, new commands are
// held off by block_dev and the ring is drained first, so nothing the
// kernel queued is left unanswered (daemon shutdown). With slots, the
// close takes one of them (closeSlots).
func (m *Manager) stop(ctx context.Context, md *managed, block bool, slots *closeSlots) error {
	log := md.dev.log
	start := time.Now()
	if block {
		if err := md.files.BlockDev(true); err != nil {
			log.Warn().Err(err).Msg("block device for shutdown")
		}
		for !md.dev.ring.Idle() || md.dev.ring.Outstanding() > 0 {
			select {
			case <-ctx.Done():
				log.Warn().Int("outstanding", md.dev.ring.Outstanding()).Msg("shutdown before the ring drained")
				goto drained
			case <-md.done:
				goto drained
			case <-time.After(2 * time.Millisecond):
				if md.loop.isGivenUp() {
					// Nothing serves the ring until the retry.
					goto drained
				}
			}
		}
	}
drained:
	md.cancel()
	<-md.done
	// A backend bounds every operation (osd_op_timeout for rbd), so this
	// ends; until it does the mapping must stay.
	md.dev.WaitIdle(context.Background())
	release := slots.take()
	closing := time.Now()
	err := errors.Join(md.dev.Close(), md.port.Close())
	closed := time.Since(closing)
	release()
	if block {
		if uerr := md.files.BlockDev(false); uerr != nil {
			log.Warn().Err(uerr).Msg("unblock device")
		}
	}
	log.Info().Bool("drained", block).Dur("close", closed).Dur("took", time.Since(start)).Msg("device closed")
	return err
}

// Reconfigure applies a RECONFIG_DEVICE event. Exactly one of the
// arguments is set. A new config string is refused: a running backend
// cannot switch images under an initiator (tcmu-runner refuses it too).
func (m *Manager) Reconfigure(uioName string, config *string, size *uint64, writeCache *bool) error {
	m.mu.Lock()
	md := m.devices[uioName]
	_, waiting := m.waiting[uioName]
	m.mu.Unlock()
	if md == nil && waiting {
		// Nothing runs to change: the next attempt to open reads size and
		// write cache from configfs.
		if config != nil {
			return fmt.Errorf("change config string of a device waiting for its backend: %w", syscall.EOPNOTSUPP)
		}
		return nil
	}
	if md == nil {
		return fmt.Errorf("reconfigure %s: %w", uioName, syscall.ENODEV)
	}
	switch {
	case size != nil:
		if *size > 1<<62 {
			return fmt.Errorf("resize to %d bytes: %w", *size, syscall.EINVAL)
		}
		return md.dev.Resize(int64(*size))
	case writeCache != nil:
		md.dev.SetWriteCache(*writeCache)
		return nil
	case config != nil:
		return fmt.Errorf("change config string of a running device: %w", syscall.EOPNOTSUPP)
	}
	return fmt.Errorf("reconfigure %s: nothing to change: %w", uioName, syscall.EINVAL)
}

// Shutdown blocks, drains and closes every device (SIGTERM), at most
// open_concurrency backend closes at a time (closeSlots). Devices stay in
// the kernel; the next daemon adopts them.
func (m *Manager) Shutdown(ctx context.Context) {
	m.stopWaiting()
	m.abandonAll()
	m.mu.Lock()
	all := make([]*managed, 0, len(m.devices))
	for name, md := range m.devices {
		if md != nil {
			all = append(all, md)
			delete(m.devices, name)
		}
	}
	slots := newCloseSlots(cap(m.openSlots))
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, md := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.stop(ctx, md, true, slots); err != nil {
				md.dev.log.Error().Err(err).Msg("close device")
			}
		}()
	}
	wg.Wait()
	m.wg.Wait()
}

// DeviceStatus is what `gotcmu status` and the metrics show of a device;
// the JSON names are those of `gotcmu status --json`.
type DeviceStatus struct {
	// Name is the configfs backstore name.
	Name string `json:"name"`
	// UIO is the uio device, e.g. "uio0".
	UIO string `json:"uio"`
	// Handler is the backstore subtype, e.g. "rbd".
	Handler string `json:"backend"`
	// Config is the config string after "<subtype>/".
	Config    string `json:"config"`
	Size      int64  `json:"size"`
	BlockSize uint32 `json:"block_size"`
	// State is "running", "given-up" while its command loop waits for a
	// retry after giving up (ring broken too often, a fault in the
	// loop), "stopped" once the command loop ended for good (device
	// removed under us), "opening" during its first attempt to open its
	// backend, or "waiting" once that failed (the device is blocked: the
	// kernel answers BUSY) and it is retried.
	State string `json:"state"`
	// Reason says why an opening, waiting or given-up device is not
	// served: for how long, the last error, the attempts so far and the
	// next one; of a running device, how long it has answered BUSY and
	// when that escalates (BusyState).
	Reason string `json:"reason,omitempty"`
	// GiveUps counts the times the device's command loop gave up and was
	// retried.
	GiveUps uint64 `json:"give_ups,omitempty"`
	// LockOwner and LockState describe the backend's exclusive lock when
	// it has one (rbd): who holds it and whether this gateway does.
	LockOwner string `json:"lock_owner,omitempty"`
	LockState string `json:"lock_state,omitempty"`
	// InFlight is the number of commands taken from the ring and not yet
	// completed.
	InFlight int64 `json:"in_flight"`
	// Commands counts the commands taken from the ring; Errors those
	// whose I/O failed (errors.go, a failed copy or background flush).
	Commands uint64 `json:"commands"`
	Errors   uint64 `json:"errors"`
}

// served returns the devices being served, sorted by name.
func (m *Manager) served() []*managed {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*managed, 0, len(m.devices))
	for _, md := range m.devices {
		if md != nil {
			out = append(out, md)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].dev.name < out[j].dev.name })
	return out
}

// Status reports every device, served or waiting for its backend, sorted
// by name.
func (m *Manager) Status() []DeviceStatus {
	all := m.snapshot(false)
	out := make([]DeviceStatus, len(all))
	for i, s := range all {
		out[i] = s.DeviceStatus
	}
	return out
}

// DeviceStats is one device's status and counters, for the metrics.
type DeviceStats struct {
	DeviceStatus
	Snapshot StatsSnapshot
	// Waiting is set for a device whose backend has not opened
	// (waiting.go): it has no counters yet.
	Waiting bool
}

// Stats reports what Status does, with each served device's counters.
func (m *Manager) Stats() []DeviceStats { return m.snapshot(true) }

// snapshot is Status and Stats: every served device, with its counters
// when counters is set, and the devices waiting for their backend, sorted
// by name.
func (m *Manager) snapshot(counters bool) []DeviceStats {
	all := m.served()
	waiting := m.waitingStatus()
	out := make([]DeviceStats, 0, len(all)+len(waiting))
	for _, md := range all {
		s := DeviceStats{DeviceStatus: md.status()}
		if counters {
			s.Snapshot = md.dev.snapshot()
		}
		out = append(out, s)
	}
	for _, w := range waiting {
		out = append(out, DeviceStats{DeviceStatus: w, Waiting: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// status reports a served device.
func (md *managed) status() DeviceStatus {
	s := md.dev.set.Load()
	state := "running"
	select {
	case <-md.done:
		state = "stopped"
	default:
	}
	givenUp, reason, giveUps := md.loop.reason(time.Now())
	if givenUp && state == "running" {
		state = "given-up"
	} else {
		reason = md.dev.BusyState().String()
	}
	owner, lockState := md.dev.lockState()
	return DeviceStatus{
		Name:      md.dev.name,
		UIO:       fmt.Sprintf("uio%d", md.ref.Minor),
		Handler:   md.sub,
		Config:    md.dev.info.Config,
		Size:      int64(s.numLBAs) * int64(s.blockSize),
		BlockSize: s.blockSize,
		State:     state,
		Reason:    reason,
		GiveUps:   giveUps,
		LockOwner: owner,
		LockState: lockState,
		InFlight:  md.dev.InFlight(),
		Commands:  md.dev.stats.commands.Load(),
		Errors:    md.dev.stats.errors.Load(),
	}
}

// lockState reports the exclusive lock as the device's gate sees it.
func (d *Device) lockState() (owner, state string) {
	if d.gate != nil {
		s := d.gate.Status()
		return s.Owner, s.State
	}
	return "", ""
}
