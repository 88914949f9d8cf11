package handler

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// lockBackend is a Backend and Locker in memory: IO completes at once, and
// the lock operations record what they were asked and answer what the
// test queued.
type lockBackend struct {
	mu         sync.Mutex
	calls      []string
	acquireErr []error // next results of AcquireLock, nil when empty
	reopenErr  []error
	// acquireHold, when set, makes AcquireLock wait for it.
	acquireHold chan struct{}
	// inflightAtReopen is the device's IO count seen by each Reopen.
	inflightAtReopen []int64
	inflight         func() int64
	owner            string
	connLost         int
}

func (b *lockBackend) Submit(io *IO)  { io.Done(nil) }
func (b *lockBackend) Limits() Limits { return Limits{} }
func (b *lockBackend) Close() error   { return nil }

func (b *lockBackend) record(call string) {
	b.mu.Lock()
	b.calls = append(b.calls, call)
	b.mu.Unlock()
}

func pop(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

func (b *lockBackend) IsLockOwner() (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.owner == "me", nil
}

func (b *lockBackend) AcquireLock(ctx context.Context) error {
	b.record("acquire")
	b.mu.Lock()
	hold := b.acquireHold
	b.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	err := pop(&b.acquireErr)
	if err == nil {
		b.owner = "me"
	}
	return err
}

func (b *lockBackend) ReleaseLock() error {
	b.record("release")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.owner == "me" {
		b.owner = ""
	}
	return nil
}

func (b *lockBackend) Reopen(context.Context) error {
	b.record("reopen")
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inflightAtReopen = append(b.inflightAtReopen, b.inflight())
	err := pop(&b.reopenErr)
	if err == nil && b.owner == "me" {
		// The new client holds nothing.
		b.owner = "other"
	}
	return err
}

func (b *lockBackend) LockOwner() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.owner, nil
}

func (b *lockBackend) NoteConnectionLost() {
	b.mu.Lock()
	b.connLost++
	b.mu.Unlock()
}

func (b *lockBackend) callList() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// setOwner makes another gateway the lock's holder.
func (b *lockBackend) setOwner(o string) {
	b.mu.Lock()
	b.owner = o
	b.mu.Unlock()
}

// fakeClock is a clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// gateDevice is a device whose backend is a lockBackend, with the gate's
// clock under the test's control.
type gateDevice struct {
	d     *Device
	g     *lockGate
	be    *lockBackend
	clock *fakeClock
}

func newGateDevice(t *testing.T, cfg DeviceConfig) *gateDevice {
	t.Helper()
	mem := make([]byte, uio.MailboxSize+1024+4096)
	binary.LittleEndian.PutUint16(mem[0:], uio.MailboxVersion)
	binary.LittleEndian.PutUint32(mem[4:], uio.MailboxSize)
	binary.LittleEndian.PutUint32(mem[8:], 1024)
	ring, err := uio.NewRing(mem, func() error { return nil })
	if err != nil {
		t.Fatalf("NewRing: %v", err)
	}
	be := &lockBackend{}
	info := DeviceInfo{Name: "gw", Size: 1 << 20, BlockSize: 512, MaxSectors: 128}
	d, err := NewDevice(zerolog.New(zerolog.NewTestWriter(t)), info, ring, nil, be, cfg)
	if err != nil {
		t.Fatalf("NewDevice: %v", err)
	}
	be.inflight = d.InFlight
	g, ok := d.gate.(*lockGate)
	if !ok {
		t.Fatalf("a Locker backend got gate %T, want *lockGate", d.gate)
	}
	clock := &fakeClock{}
	clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	g.now = clock.now
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &gateDevice{d: d, g: g, be: be, clock: clock}
}

var (
	write10 = []byte{0x2a, 0, 0, 0, 0, 8, 0, 0, 1, 0}
	read10  = []byte{0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0}
	sync10  = []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}
)

// verdict is what the gate made of a command.
type verdict string

const (
	admitted verdict = "admitted"
	busy     verdict = "BUSY"
	standby  verdict = "NOT READY/standby"
	unavail  verdict = "NOT READY/unavailable"
)

func (gd *gateDevice) admit(t *testing.T, cdb []byte) verdict {
	t.Helper()
	c := newCmd(gd.d)
	c.CDB = cdb
	c.row = commands.lookup(cdb) // as execute sets it
	r, handled := gd.d.gate.Admit(c)
	switch {
	case !handled:
		return admitted
	case r != done:
		t.Fatalf("CDB % x: gate left the command pending", cdb)
	case c.Status == statusBusy:
		return busy
	case c.Status == statusCheckCondition && senseKeyOf(c.Sense) == keyNotReady && c.Sense[12] == 0x04 && c.Sense[13] == 0x0b:
		return standby
	case c.Status == statusCheckCondition && senseKeyOf(c.Sense) == keyNotReady && c.Sense[12] == 0x04 && c.Sense[13] == 0x0c:
		return unavail
	}
	t.Fatalf("CDB % x: status %#x sense % x", cdb, c.Status, c.Sense)
	return ""
}

// settled waits until no worker runs and returns the gate's status.
func (gd *gateDevice) settled(t *testing.T) LockStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := gd.g.state.Load()
		gd.g.mu.Lock()
		pending := gd.g.connLost
		gd.g.mu.Unlock()
		if !working(s) && !pending {
			st, _ := gd.d.LockStatus()
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("gate still %s after 10 s", lockStateNames[s])
		}
		time.Sleep(time.Millisecond)
	}
}

func (gd *gateDevice) expect(t *testing.T, cdb []byte, want verdict) {
	t.Helper()
	if got := gd.admit(t, cdb); got != want {
		st, _ := gd.d.LockStatus()
		t.Fatalf("CDB %#02x in state %s: %s, want %s", cdb[0], st.State, got, want)
	}
}

func TestLockGateTakesTheLockOnFirstWrite(t *testing.T) {
	gd := newGateDevice(t, nil)
	// Reads never move the lock.
	gd.expect(t, read10, admitted)
	if calls := gd.be.callList(); len(calls) != 0 {
		t.Fatalf("a read made the gate call %v", calls)
	}
	hold := make(chan struct{})
	gd.be.acquireHold = hold
	gd.expect(t, write10, busy)
	// While the lock is being taken, everything waits.
	gd.expect(t, write10, busy)
	gd.expect(t, read10, busy)
	if st, _ := gd.d.LockStatus(); st.State != "locking" {
		t.Fatalf("state %q while acquiring, want locking", st.State)
	}
	close(hold)
	st := gd.settled(t)
	if st.State != "locked" || st.Owner != "me" || st.Acquisitions != 1 {
		t.Fatalf("after acquiring: %+v", st)
	}
	gd.expect(t, write10, admitted)
	gd.expect(t, sync10, admitted)
	gd.expect(t, read10, admitted)
	if calls := gd.be.callList(); !slices.Equal(calls, []string{"acquire"}) {
		t.Errorf("calls %v, want one acquire", calls)
	}
	if n := gd.g.Transitions(); n != 1 {
		t.Errorf("Transitions() = %d, want 1", n)
	}
	if owner, state := gd.g.LockState(); owner != "me" || state != "locked" {
		t.Errorf("LockState() = %q, %q", owner, state)
	}
}

// lostLock brings gd to the point where another gateway took the lock and
// this one found out from an IO failing with errno.
func lostLock(t *testing.T, gd *gateDevice, errno syscall.Errno) {
	t.Helper()
	gd.expect(t, write10, busy)
	gd.settled(t)
	gd.be.setOwner("other")
	gd.d.noteIOError(errno)
}

func TestLockGateLostLock(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ESHUTDOWN, syscall.EROFS} {
		t.Run(errno.Error(), func(t *testing.T) {
			gd := newGateDevice(t, nil)
			gd.d.SetLockHoldDown(10 * time.Second)
			// A write still in flight when the lock goes: the reopen
			// waits for it.
			gd.d.inflight.add(1)
			lostLock(t, gd, errno)
			// While the fenced client is replaced, reads wait for the
			// new one; writes go elsewhere already.
			gd.expect(t, read10, busy)
			gd.expect(t, write10, standby)
			time.Sleep(20 * time.Millisecond)
			if calls := gd.be.callList(); slices.Contains(calls, "reopen") {
				t.Fatalf("reopened with IO in flight: %v", calls)
			}
			gd.d.inflight.add(-1)
			st := gd.settled(t)
			if st.State != "held-down" || st.Losses != 1 || st.Owner != "other" {
				t.Fatalf("after reopening: %+v", st)
			}
			if got := gd.be.inflightAtReopen; !slices.Equal(got, []int64{0}) {
				t.Errorf("IO in flight at each reopen: %v, want [0]", got)
			}
			// Held down: writes are refused as at a standby port,
			// reads are served by the fresh client.
			gd.expect(t, write10, standby)
			gd.expect(t, read10, admitted)
			gd.clock.advance(9 * time.Second)
			gd.expect(t, write10, standby)
			if st, _ := gd.d.LockStatus(); st.Refused != 3 {
				t.Errorf("refused %d writes, want 3", st.Refused)
			}
			if st, _ := gd.d.LockStatus(); !st.HoldDownUntil.Equal(gd.clock.now().Add(time.Second)) {
				t.Errorf("held down until %v, want %v", st.HoldDownUntil, gd.clock.now().Add(time.Second))
			}
			// A shorter hold-down applies to the one running.
			gd.d.SetLockHoldDown(9*time.Second + time.Millisecond)
			gd.expect(t, write10, standby)
			gd.d.SetLockHoldDown(9 * time.Second)
			// After the hold-down the lock is taken back the same way
			// it was taken the first time.
			gd.expect(t, write10, busy)
			st = gd.settled(t)
			if st.State != "locked" || st.Acquisitions != 2 {
				t.Fatalf("after taking the lock back: %+v", st)
			}
			want := []string{"acquire", "reopen", "acquire"}
			if calls := gd.be.callList(); !slices.Equal(calls, want) {
				t.Errorf("calls %v, want %v", calls, want)
			}
		})
	}
}

func TestLockGateWithoutHoldDownTakesTheLockBackAtOnce(t *testing.T) {
	gd := newGateDevice(t, nil)
	gd.d.SetLockHoldDown(0)
	lostLock(t, gd, syscall.ESHUTDOWN)
	if st := gd.settled(t); st.State != "unlocked" {
		t.Fatalf("state %q, want unlocked", st.State)
	}
	gd.expect(t, write10, busy)
	if st := gd.settled(t); st.State != "locked" || st.Acquisitions != 2 {
		t.Fatalf("after the write: %+v", st)
	}
}

func TestLockGateIgnoresErrorsThatAreNotLockOrConnection(t *testing.T) {
	gd := newGateDevice(t, nil)
	gd.expect(t, write10, busy)
	gd.settled(t)
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.ENOSPC, syscall.EILSEQ, syscall.EINVAL} {
		gd.d.noteIOError(errno)
	}
	gd.expect(t, write10, admitted)
	if calls := gd.be.callList(); !slices.Equal(calls, []string{"acquire"}) {
		t.Errorf("calls %v", calls)
	}
}

func TestLockGateAcquireFailures(t *testing.T) {
	t.Run("fenced_client_reopens_and_retries_once", func(t *testing.T) {
		gd := newGateDevice(t, nil)
		gd.be.acquireErr = []error{fmt.Errorf("acquire: %w", syscall.ESHUTDOWN)}
		gd.expect(t, write10, busy)
		if st := gd.settled(t); st.State != "locked" {
			t.Fatalf("state %q, want locked", st.State)
		}
		want := []string{"acquire", "reopen", "acquire"}
		if calls := gd.be.callList(); !slices.Equal(calls, want) {
			t.Errorf("calls %v, want %v", calls, want)
		}
	})
	t.Run("refused_acquisition_is_retried_after_a_delay", func(t *testing.T) {
		gd := newGateDevice(t, nil)
		gd.be.acquireErr = []error{fmt.Errorf("break lock: %w", syscall.EBUSY)}
		gd.expect(t, write10, busy)
		if st := gd.settled(t); st.State != "unlocked" || st.Acquisitions != 0 {
			t.Fatalf("after a failed acquisition: %+v", st)
		}
		gd.expect(t, write10, busy)
		if calls := gd.be.callList(); len(calls) != 1 {
			t.Fatalf("retried at once: %v", calls)
		}
		gd.clock.advance(acquireRetryDelay)
		gd.expect(t, write10, busy)
		if st := gd.settled(t); st.State != "locked" {
			t.Fatalf("state %q after the retry, want locked", st.State)
		}
	})
	t.Run("fenced_twice_needs_a_reopen_first", func(t *testing.T) {
		gd := newGateDevice(t, nil)
		gd.be.acquireErr = []error{syscall.ESHUTDOWN, syscall.ESHUTDOWN}
		gd.expect(t, write10, busy)
		if st := gd.settled(t); st.State != "lost" {
			t.Fatalf("state %q, want lost", st.State)
		}
		// Any IO, a read too, reopens first.
		gd.expect(t, read10, busy)
		if st := gd.settled(t); st.State != "unlocked" {
			t.Fatalf("state %q after the reopen, want unlocked", st.State)
		}
		gd.expect(t, read10, admitted)
	})
}

// tpgConfig is a DeviceConfig whose port groups and TPG switches live in
// memory; SetPortGroupState changes the group as configfs would.
type tpgConfig struct {
	mu      sync.Mutex
	groups  []PortGroup
	enabled map[tpgRef]bool
	log     []string
}

func (c *tpgConfig) UnitSerial() (string, error) { return "serial", nil }

func (c *tpgConfig) PortGroups() ([]PortGroup, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.groups)
	for i := range out {
		out[i].Ports = slices.Clone(out[i].Ports)
	}
	return out, nil
}

func (c *tpgConfig) SetPortGroupState(id uint16, state uint8) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.groups {
		if c.groups[i].ID == id {
			c.groups[i].State = state
		}
	}
	return nil
}

func (c *tpgConfig) SetTPGEnabled(wwn string, tpgt uint16, on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enabled[tpgRef{wwn, tpgt}] = on
	c.log = append(c.log, fmt.Sprintf("%s/%d=%v", wwn, tpgt, on))
	return nil
}

func (c *tpgConfig) switches() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.log)
}

// gatewayGroups is ceph-iscsi's layout on one gateway: its own TPG (tpgt
// 1, enabled) in "ao", the other gateway's (tpgt 2, disabled here) in
// "ano2". The target name is unique per test.
func gatewayGroups(iqn string, explicit bool) []PortGroup {
	return []PortGroup{
		{Name: "ao", ID: 1, State: aluaActiveOptimized, Supported: supT | supS | supANO | supAO, Implicit: true, Explicit: explicit,
			Ports: []TargetPort{{RelativeID: 1, ProtocolID: 5, TargetName: iqn, TPGT: 1, Enabled: true}}},
		{Name: "ano2", ID: 2, State: aluaActiveNonOptimized, Supported: supT | supS | supANO | supAO, Implicit: true, Explicit: explicit,
			Ports: []TargetPort{{RelativeID: 2, ProtocolID: 5, TargetName: iqn, TPGT: 2}}},
	}
}

func newTPGConfig(iqn string, explicit bool) *tpgConfig {
	return &tpgConfig{groups: gatewayGroups(iqn, explicit), enabled: map[tpgRef]bool{}}
}

func TestLockGateConnectionLoss(t *testing.T) {
	const iqn = "iqn.2026-01.test:conn-loss"
	cfg := newTPGConfig(iqn, false)
	gd := newGateDevice(t, cfg)
	gd.expect(t, write10, busy)
	gd.settled(t)
	gd.d.inflight.add(1)
	gd.d.noteIOError(syscall.ETIMEDOUT)
	// Only the TPG enabled here, this gateway's, goes offline.
	deadline := time.Now().Add(5 * time.Second)
	for len(cfg.switches()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := cfg.switches(); !slices.Equal(got, []string{iqn + "/1=false"}) {
		t.Fatalf("TPG switches %v, want the local TPG disabled", got)
	}
	gd.expect(t, write10, busy)
	gd.expect(t, read10, busy)
	// More timeouts change nothing.
	gd.d.noteIOError(syscall.ETIMEDOUT)
	gd.d.inflight.add(-1)
	st := gd.settled(t)
	if st.State != "unlocked" || st.ConnLosses != 1 || gd.be.connLost != 1 {
		t.Fatalf("after recovering: %+v, backend told %d times", st, gd.be.connLost)
	}
	if got := cfg.switches(); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
		t.Errorf("TPG switches %v, want disabled then enabled", got)
	}
	if got := gd.be.inflightAtReopen; !slices.Equal(got, []int64{0}) {
		t.Errorf("IO in flight at each reopen: %v", got)
	}
	// No hold-down after a lost connection: the lock is taken back with
	// the next write.
	gd.expect(t, write10, busy)
	if st := gd.settled(t); st.State != "locked" {
		t.Errorf("state %q, want locked", st.State)
	}
}

func TestLockGateConnectionLossRetriesReopen(t *testing.T) {
	const iqn = "iqn.2026-01.test:conn-retry"
	cfg := newTPGConfig(iqn, false)
	gd := newGateDevice(t, cfg)
	gd.be.reopenErr = []error{syscall.ETIMEDOUT}
	gd.d.noteIOError(syscall.ETIMEDOUT)
	st := gd.settled(t)
	if st.State != "unlocked" {
		t.Fatalf("state %q, want unlocked", st.State)
	}
	if calls := gd.be.callList(); !slices.Equal(calls, []string{"reopen", "reopen"}) {
		t.Errorf("calls %v, want a failed reopen retried", calls)
	}
	if got := cfg.switches(); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
		t.Errorf("TPG switches %v", got)
	}
}

func TestLockGateConnectionLossDuringAcquisition(t *testing.T) {
	cfg := newTPGConfig("iqn.2026-01.test:conn-during", false)
	gd := newGateDevice(t, cfg)
	hold := make(chan struct{})
	gd.be.acquireHold = hold
	gd.expect(t, write10, busy)
	gd.d.noteIOError(syscall.ETIMEDOUT)
	close(hold)
	st := gd.settled(t)
	if st.ConnLosses != 1 || st.State != "unlocked" {
		t.Fatalf("after the acquisition: %+v, want the connection loss handled", st)
	}
	want := []string{"acquire", "reopen"}
	if calls := gd.be.callList(); !slices.Equal(calls, want) {
		t.Errorf("calls %v, want %v", calls, want)
	}
}

// A TPG shared by two devices stays offline until both reopened.
func TestLockGateSharedTPGBackWhenLastDeviceRecovered(t *testing.T) {
	const iqn = "iqn.2026-01.test:shared"
	cfg := newTPGConfig(iqn, false)
	a, b := newGateDevice(t, cfg), newGateDevice(t, cfg)
	a.d.inflight.add(1)
	b.d.inflight.add(1)
	a.d.noteIOError(syscall.ETIMEDOUT)
	b.d.noteIOError(syscall.ETIMEDOUT)
	for _, gd := range []*gateDevice{a, b} {
		for gd.g.stats0().ConnLosses == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	a.d.inflight.add(-1)
	a.settled(t)
	if got := cfg.switches(); !slices.Equal(got, []string{iqn + "/1=false"}) {
		t.Fatalf("with one device still recovering: switches %v", got)
	}
	b.d.inflight.add(-1)
	b.settled(t)
	if got := cfg.switches(); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
		t.Errorf("switches %v", got)
	}
}

// stats0 reads the counters without waiting for workers.
func (g *lockGate) stats0() LockStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// runDevice serves gd's device over a fake kernel and returns it.
func runDevice(t *testing.T, cfg DeviceConfig) (*gateDevice, *uiotest.Kernel) {
	t.Helper()
	k := uiotest.New(t, uiotest.Config{})
	be := &lockBackend{}
	info := DeviceInfo{Name: "gw", Size: 1 << 20, BlockSize: 512, MaxSectors: 128}
	d, err := NewDevice(zerolog.New(zerolog.NewTestWriter(t)), info, k.Ring(), k, be, cfg)
	if err != nil {
		t.Fatal(err)
	}
	be.inflight = d.InFlight
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	clock := &fakeClock{}
	clock.ns.Store(time.Now().UnixNano())
	g := d.gate.(*lockGate)
	g.now = clock.now
	return &gateDevice{d: d, g: g, be: be, clock: clock}, k
}

func completion(t *testing.T, k *uiotest.Kernel) uiotest.Completion {
	t.Helper()
	select {
	case c := <-k.Completions():
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no completion within 10 s")
		return uiotest.Completion{}
	}
}

// SET TARGET PORT GROUPS that makes this gateway's group active/optimized
// completes once the gateway holds the lock.
func TestExplicitTransitionTakesTheLock(t *testing.T) {
	cfg := newTPGConfig("iqn.2026-01.test:stpg", true)
	cfg.groups[0].State, cfg.groups[1].State = aluaStandby, aluaActiveOptimized
	gd, k := runDevice(t, cfg)
	hold := make(chan struct{})
	gd.be.acquireHold = hold
	list := stpgList(aluaActiveOptimized, 1, aluaStandby, 2)
	if _, err := k.Submit(uiotest.Request{CDB: stpgCDB(uint32(len(list))), DataOut: list}); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-k.Completions():
		t.Fatalf("SET TARGET PORT GROUPS completed (status %#x) before the lock was taken", c.Status)
	case <-time.After(50 * time.Millisecond):
	}
	// Writes meanwhile wait for the lock like any implicit transition.
	gd.expect(t, write10, busy)
	close(hold)
	if c := completion(t, k); c.Status != statusGood {
		t.Fatalf("SET TARGET PORT GROUPS: status %#x sense % x, want GOOD", c.Status, c.Sense)
	}
	if st := gd.settled(t); st.State != "locked" || st.Acquisitions != 1 {
		t.Fatalf("after the transition: %+v", st)
	}
}

func TestExplicitTransitionFailure(t *testing.T) {
	cfg := newTPGConfig("iqn.2026-01.test:stpg-fail", true)
	cfg.groups[0].State = aluaStandby
	gd, k := runDevice(t, cfg)
	gd.be.acquireErr = []error{syscall.EIO}
	list := stpgList(aluaActiveOptimized, 1)
	if _, err := k.Submit(uiotest.Request{CDB: stpgCDB(uint32(len(list))), DataOut: list}); err != nil {
		t.Fatal(err)
	}
	c := completion(t, k)
	if c.Status != statusCheckCondition || senseKeyOf(c.Sense) != keyHardwareError || c.Sense[12] != 0x67 || c.Sense[13] != 0x0a {
		t.Fatalf("status %#x sense % x, want HARDWARE ERROR / SET TARGET PORT GROUPS COMMAND FAILED", c.Status, c.Sense)
	}
}

func TestExplicitTransitionOverridesHoldDown(t *testing.T) {
	cfg := newTPGConfig("iqn.2026-01.test:stpg-hold", true)
	gd, k := runDevice(t, cfg)
	lostLock(t, gd, syscall.ESHUTDOWN)
	if st := gd.settled(t); st.State != "held-down" {
		t.Fatalf("state %q, want held-down", st.State)
	}
	list := stpgList(aluaActiveOptimized, 1)
	if _, err := k.Submit(uiotest.Request{CDB: stpgCDB(uint32(len(list))), DataOut: list}); err != nil {
		t.Fatal(err)
	}
	if c := completion(t, k); c.Status != statusGood {
		t.Fatalf("status %#x sense % x", c.Status, c.Sense)
	}
	if st := gd.settled(t); st.State != "locked" || st.Acquisitions != 2 {
		t.Fatalf("%+v", st)
	}
}

// A transition of the other gateway's group only does not touch the lock.
func TestExplicitTransitionOfAnotherGatewaysGroup(t *testing.T) {
	cfg := newTPGConfig("iqn.2026-01.test:stpg-other", true)
	cfg.groups[0].State = aluaStandby
	gd, k := runDevice(t, cfg)
	list := stpgList(aluaActiveOptimized, 2)
	if _, err := k.Submit(uiotest.Request{CDB: stpgCDB(uint32(len(list))), DataOut: list}); err != nil {
		t.Fatal(err)
	}
	if c := completion(t, k); c.Status != statusGood {
		t.Fatalf("status %#x", c.Status)
	}
	if calls := gd.be.callList(); len(calls) != 0 {
		t.Errorf("calls %v, want none", calls)
	}
}

func TestLockGateCloseStopsWorkers(t *testing.T) {
	gd := newGateDevice(t, nil)
	gd.be.acquireHold = make(chan struct{}) // never released
	gd.expect(t, write10, busy)
	done := make(chan struct{})
	go func() {
		gd.g.close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not stop the acquisition")
	}
	gd.expect(t, write10, busy)
}

func TestDeviceWithoutLockerHasNoGate(t *testing.T) {
	d := newTestDevice(t, testDev{})
	if d.gate != nil {
		t.Fatalf("gate %T for a backend without a lock", d.gate)
	}
	if _, ok := d.LockStatus(); ok {
		t.Error("LockStatus ok without a lock")
	}
	d.SetLockHoldDown(time.Second)
	d.noteIOError(syscall.ESHUTDOWN)
}

// A reopen that failed is tried again by the next IO, a write refused
// during the hold-down too.
func TestLockGateFailedReopenRetriedByNextIO(t *testing.T) {
	gd := newGateDevice(t, nil)
	gd.be.reopenErr = []error{syscall.EIO}
	lostLock(t, gd, syscall.ESHUTDOWN)
	if st := gd.settled(t); st.State != "lost" {
		t.Fatalf("state %q after a failed reopen, want lost", st.State)
	}
	gd.expect(t, write10, standby)
	if st := gd.settled(t); st.State != "held-down" {
		t.Fatalf("state %q after the write, want held-down", st.State)
	}
	if calls := gd.be.callList(); !slices.Equal(calls, []string{"acquire", "reopen", "reopen"}) {
		t.Errorf("calls %v, want the reopen tried again", calls)
	}
}

// explicitOnly makes cfg's groups allow explicit transitions only.
func explicitOnly(cfg *tpgConfig) *tpgConfig {
	for i := range cfg.groups {
		cfg.groups[i].Implicit, cfg.groups[i].Explicit = false, true
	}
	return cfg
}

// At a port in an explicit-only standby or unavailable group, media access
// is refused (SPC-4 5.15.2.4-5): the kernel leaves ALUA states to TCMU
// handlers. Groups that allow implicit transitions take the lock instead.
func TestExplicitStandbyRefusesMediaAccess(t *testing.T) {
	tests := []struct {
		name     string
		implicit bool
		state    uint8
		want     verdict
	}{
		{name: "standby", state: aluaStandby, want: standby},
		{name: "unavailable", state: aluaUnavailable, want: unavail},
		{name: "active_non_optimized", state: aluaActiveNonOptimized, want: busy},
		{name: "standby_with_implicit_transitions", implicit: true, state: aluaStandby, want: busy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := explicitOnly(newTPGConfig("iqn.2026-01.test:explicit-"+tt.name, true))
			cfg.groups[0].State, cfg.groups[0].Implicit = tt.state, tt.implicit
			gd := newGateDevice(t, cfg)
			got := gd.admit(t, write10)
			if got != tt.want {
				t.Errorf("write: %s, want %s", got, tt.want)
			}
			if tt.want == standby || tt.want == unavail {
				if got := gd.admit(t, read10); got != tt.want {
					t.Errorf("read: %s, want %s", got, tt.want)
				}
				if calls := gd.be.callList(); len(calls) != 0 {
					t.Errorf("calls %v at a refusing port", calls)
				}
			}
		})
	}
}

// The gate reads the groups again at most a second later, and at once
// after SET TARGET PORT GROUPS.
func TestExplicitStandbyFollowsConfigfs(t *testing.T) {
	cfg := explicitOnly(newTPGConfig("iqn.2026-01.test:explicit-ttl", true))
	cfg.groups[0].State = aluaStandby
	gd := newGateDevice(t, cfg)
	gd.expect(t, read10, standby)
	cfg.mu.Lock()
	cfg.groups[0].State = aluaActiveNonOptimized
	cfg.mu.Unlock()
	gd.expect(t, read10, standby)
	gd.clock.advance(explicitRefusalTTL)
	gd.expect(t, read10, admitted)
}

// SET TARGET PORT GROUPS putting this gateway's group in standby gives the
// lock up before it completes; I/O here is refused from then on.
func TestExplicitTransitionToStandbyReleasesTheLock(t *testing.T) {
	cfg := explicitOnly(newTPGConfig("iqn.2026-01.test:stpg-release", true))
	gd, k := runDevice(t, cfg)
	list := stpgList(aluaActiveOptimized, 1)
	if _, err := k.Submit(uiotest.Request{CDB: stpgCDB(uint32(len(list))), DataOut: list}); err != nil {
		t.Fatal(err)
	}
	if c := completion(t, k); c.Status != statusGood {
		t.Fatalf("to active/optimized: status %#x", c.Status)
	}
	gd.expect(t, write10, admitted)
	list = stpgList(aluaStandby, 1, aluaActiveOptimized, 2)
	if _, err := k.Submit(uiotest.Request{CDB: stpgCDB(uint32(len(list))), DataOut: list}); err != nil {
		t.Fatal(err)
	}
	if c := completion(t, k); c.Status != statusGood {
		t.Fatalf("to standby: status %#x sense % x", c.Status, c.Sense)
	}
	if st := gd.settled(t); st.State != "unlocked" || st.Owner != "" {
		t.Fatalf("after the transition to standby: %+v", st)
	}
	if calls := gd.be.callList(); !slices.Equal(calls, []string{"acquire", "release"}) {
		t.Errorf("calls %v, want acquire then release", calls)
	}
	gd.expect(t, write10, standby)
	gd.expect(t, read10, standby)
}
