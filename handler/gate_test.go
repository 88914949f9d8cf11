package handler

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler/lockgate"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// The lock gate's state machine is tested in package lockgate with a fake
// Locker and a fake clock; these tests run a device with a lock through
// the fake kernel's ring: the gate's wiring, its verdicts as status and
// sense, and the SPC-4 policy for port groups.

// lockBackend is a Backend and Locker in memory: I/O completes at once, or
// with the error the test queued, and the lock operations record what
// they were asked.
type lockBackend struct {
	mu         sync.Mutex
	calls      []string
	submitErr  []error // next results of Submit, nil when empty
	acquireErr []error // next results of AcquireLock
	// acquireHold, when set, makes AcquireLock wait for it; reopenHold
	// does the same for Reopen.
	acquireHold chan struct{}
	reopenHold  chan struct{}
	// inflightAtReopen is the device's I/O count seen by each Reopen.
	inflightAtReopen []int64
	inflight         func() int64
	owner            string
	// reopens counts Reopen's new clients: each has a name of its own
	// as the lock's owner (me, me1, me2, ...).
	reopens int
}

// me is the current client's name as the lock's owner.
func (b *lockBackend) me() string {
	if b.reopens == 0 {
		return "me"
	}
	return fmt.Sprintf("me%d", b.reopens)
}

func (b *lockBackend) Submit(io *IO) {
	b.mu.Lock()
	err := pop(&b.submitErr)
	b.mu.Unlock()
	io.Done(err)
}

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

func waitFor(ctx context.Context, ch chan struct{}) error {
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *lockBackend) IsLockOwner() (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.owner == b.me(), nil
}

func (b *lockBackend) AcquireLock(ctx context.Context) error {
	b.record("acquire")
	b.mu.Lock()
	hold := b.acquireHold
	b.mu.Unlock()
	if err := waitFor(ctx, hold); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	err := pop(&b.acquireErr)
	if err == nil {
		b.owner = b.me()
	}
	return err
}

func (b *lockBackend) ReleaseLock() error {
	b.record("release")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.owner == b.me() {
		b.owner = ""
	}
	return nil
}

func (b *lockBackend) Reopen(ctx context.Context) error {
	b.record("reopen")
	b.mu.Lock()
	hold := b.reopenHold
	b.inflightAtReopen = append(b.inflightAtReopen, b.inflight())
	b.mu.Unlock()
	if err := waitFor(ctx, hold); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// The new client holds nothing; a lock the old one held stays under
	// its name until someone breaks it.
	b.reopens++
	return nil
}

func (b *lockBackend) LockOwner() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.owner, nil
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

// failNext makes the next I/O fail with err.
func (b *lockBackend) failNext(err error) {
	b.mu.Lock()
	b.submitErr = append(b.submitErr, err)
	b.mu.Unlock()
}

// gateDevice is a device whose backend is a lockBackend, served over a
// fake kernel.
type gateDevice struct {
	d  *Device
	be *lockBackend
	k  *uiotest.Kernel
}

// runDevice serves a device with a lock over a fake kernel, its gate
// sharing tpgs (nil: its own).
func runDevice(t *testing.T, cfg DeviceConfig, tpgs *lockgate.Holds) *gateDevice {
	t.Helper()
	k := uiotest.New(t, uiotest.Config{})
	be := &lockBackend{}
	info := DeviceInfo{Name: "gw", Size: 1 << 20, BlockSize: 512, MaxSectors: 128}
	d, err := newDevice(zerolog.New(zerolog.NewTestWriter(t)), info, k.Ring(), k, be, cfg, tpgs)
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
		if err := d.WaitIdle(context.Background()); err != nil {
			t.Errorf("WaitIdle: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &gateDevice{d: d, be: be, k: k}
}

var (
	write10 = []byte{0x2a, 0, 0, 0, 0, 8, 0, 0, 1, 0}
	read10  = []byte{0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0}
)

// verdict is what the device answered a command with.
type verdict string

const (
	admitted verdict = "GOOD"
	busy     verdict = "BUSY"
	standby  verdict = "NOT READY/standby"
	unavail  verdict = "NOT READY/unavailable"
)

func (gd *gateDevice) completion(t *testing.T) uiotest.Completion {
	t.Helper()
	select {
	case c := <-gd.k.Completions():
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no completion within 10 s")
		return uiotest.Completion{}
	}
}

func (gd *gateDevice) submit(t *testing.T, cdb, out []byte, inLen int) {
	t.Helper()
	if _, err := gd.k.Submit(uiotest.Request{CDB: cdb, DataOut: out, DataInLen: inLen}); err != nil {
		t.Fatal(err)
	}
}

// exec sends a READ(10) or WRITE(10) of one block through the ring and
// returns what it was answered.
func (gd *gateDevice) exec(t *testing.T, cdb []byte) verdict {
	t.Helper()
	if cdb[0] == write10[0] {
		gd.submit(t, cdb, make([]byte, 512), 0)
	} else {
		gd.submit(t, cdb, nil, 512)
	}
	c := gd.completion(t)
	switch {
	case c.Status == statusGood:
		return admitted
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

func (gd *gateDevice) expect(t *testing.T, cdb []byte, want verdict) {
	t.Helper()
	if got := gd.exec(t, cdb); got != want {
		st, _ := gd.d.LockStatus()
		t.Fatalf("CDB %#02x in state %s: %s, want %s", cdb[0], st.State, got, want)
	}
}

// stpg sends SET TARGET PORT GROUPS with the (state, group) pairs.
func (gd *gateDevice) stpg(t *testing.T, pairs ...int) {
	t.Helper()
	list := stpgList(pairs...)
	gd.submit(t, stpgCDB(uint32(len(list))), list, 0)
}

// settled waits until no worker of the gate runs and returns its status.
func (gd *gateDevice) settled(t *testing.T) LockStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := gd.d.LockStatus()
		switch st.State {
		case "locking", "reopening", "recovering":
		default:
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("gate still %s after 10 s", st.State)
		}
		time.Sleep(time.Millisecond)
	}
}

// lostLock brings gd to the point where another gateway took the lock and
// this one found out from a write failing with errno.
func lostLock(t *testing.T, gd *gateDevice, errno syscall.Errno) {
	t.Helper()
	gd.expect(t, write10, busy)
	if st := gd.settled(t); st.State != "locked" {
		t.Fatalf("state %q after the first write, want locked", st.State)
	}
	gd.be.setOwner("other")
	gd.be.failNext(fmt.Errorf("write: %w", errno))
	gd.expect(t, write10, busy)
}

// tpgConfig is a DeviceConfig whose port groups and TPG switches live in
// memory; SetPortGroupState changes the group as configfs would.
type tpgConfig struct {
	mu     sync.Mutex
	groups []PortGroup
	log    []string
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
	c.log = append(c.log, fmt.Sprintf("%s/%d=%v", wwn, tpgt, on))
	return nil
}

func (c *tpgConfig) switches() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.log)
}

// switchesAfter waits until at least n switches were made and returns
// them all: a gate brings TPGs back after it left recovery.
func (c *tpgConfig) switchesAfter(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.switches()) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return c.switches()
}

// gatewayGroups is ceph-iscsi's layout on one gateway: its own TPG (tpgt
// 1, enabled) in "ao", the other gateway's (tpgt 2, disabled here) in
// "ano2".
func gatewayGroups(iqn string, explicit bool) []PortGroup {
	return []PortGroup{
		{Name: "ao", ID: 1, State: aluaActiveOptimized, Supported: supT | supS | supANO | supAO, Implicit: true, Explicit: explicit,
			Ports: []TargetPort{{RelativeID: 1, ProtocolID: 5, TargetName: iqn, TPGT: 1, Enabled: true}}},
		{Name: "ano2", ID: 2, State: aluaActiveNonOptimized, Supported: supT | supS | supANO | supAO, Implicit: true, Explicit: explicit,
			Ports: []TargetPort{{RelativeID: 2, ProtocolID: 5, TargetName: iqn, TPGT: 2}}},
	}
}

func newTPGConfig(iqn string, explicit bool) *tpgConfig {
	return &tpgConfig{groups: gatewayGroups(iqn, explicit)}
}

// explicitOnly makes cfg's groups allow explicit transitions only.
func explicitOnly(cfg *tpgConfig) *tpgConfig {
	for i := range cfg.groups {
		cfg.groups[i].Implicit, cfg.groups[i].Explicit = false, true
	}
	return cfg
}

func TestDeviceWithoutLockerHasNoGate(t *testing.T) {
	d := newTestDevice(t, testDev{})
	if d.gate != nil {
		t.Fatal("a gate for a backend without a lock")
	}
	if _, ok := d.LockStatus(); ok {
		t.Error("LockStatus ok without a lock")
	}
	d.SetLockHoldDown(time.Second)
	d.noteIOError(syscall.ESHUTDOWN)
}

// The first write takes the lock: BUSY until the gate holds it, reads
// pass meanwhile only before it started.
func TestLockGateThroughTheRing(t *testing.T) {
	gd := runDevice(t, nil, nil)
	gd.expect(t, read10, admitted)
	hold := make(chan struct{})
	gd.be.acquireHold = hold
	gd.expect(t, write10, busy)
	gd.expect(t, read10, busy)
	close(hold)
	if st := gd.settled(t); st.State != "locked" || st.Acquisitions != 1 {
		t.Fatalf("after the first write: %+v", st)
	}
	gd.expect(t, write10, admitted)
	if s := gd.d.snapshot(); s.LockTransitions != 1 {
		t.Errorf("LockTransitions %d, want 1", s.LockTransitions)
	}
	if owner, state := gd.d.lockState(); owner != "me" || state != "locked" {
		t.Errorf("lockState() = %q, %q", owner, state)
	}
}

// A write failing because another gateway took the lock makes the device
// reopen, once no I/O is in flight, and refuse writes as a standby port
// for the hold-down.
func TestLockLossHoldsDownThroughTheRing(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ESHUTDOWN, syscall.EROFS} {
		t.Run(errno.Error(), func(t *testing.T) {
			gd := runDevice(t, nil, nil)
			lostLock(t, gd, errno)
			st := gd.settled(t)
			if st.State != "held-down" || st.Losses != 1 || st.Owner != "other" {
				t.Fatalf("after the lost lock: %+v", st)
			}
			if got := gd.be.inflightAtReopen; !slices.Equal(got, []int64{0}) {
				t.Errorf("I/O in flight at each reopen: %v, want [0]", got)
			}
			gd.expect(t, write10, standby)
			gd.expect(t, read10, admitted)
			gd.d.SetLockHoldDown(0)
			gd.expect(t, write10, busy)
			if st := gd.settled(t); st.State != "locked" || st.Acquisitions != 2 {
				t.Fatalf("after the hold-down: %+v", st)
			}
		})
	}
}

// A write timing out takes the TPG enabled here, this gateway's, offline
// until the device reopened.
func TestConnectionLossTakesTheLocalTPGOffline(t *testing.T) {
	const iqn = "iqn.2026-01.test:conn-loss"
	cfg := newTPGConfig(iqn, false)
	gd := runDevice(t, cfg, nil)
	gd.be.failNext(fmt.Errorf("write: %w", syscall.ETIMEDOUT))
	gd.expect(t, read10, busy)
	st := gd.settled(t)
	if st.State != "unlocked" || st.ConnLosses != 1 {
		t.Fatalf("after recovering: %+v", st)
	}
	if got := cfg.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
		t.Errorf("TPG switches %v, want the local TPG disabled then enabled", got)
	}
	if got := gd.be.inflightAtReopen; !slices.Equal(got, []int64{0}) {
		t.Errorf("I/O in flight at each reopen: %v, want [0]", got)
	}
}

// A partition (issue 15): the gateway holding the lock stops reaching the
// cluster, its write times out, and another gateway has taken the lock by
// the time it is back. Its TPG goes offline while it reopens, and then it
// refuses writes as a standby port for the hold-down instead of taking the
// lock back.
func TestPartitionHoldsDownThroughTheRing(t *testing.T) {
	const iqn = "iqn.2026-01.test:partition"
	cfg := newTPGConfig(iqn, false)
	gd := runDevice(t, cfg, nil)
	takeLock(t, gd)
	gd.be.setOwner("gw-b")
	gd.be.failNext(fmt.Errorf("write: %w", syscall.ETIMEDOUT))
	gd.expect(t, write10, busy)
	st := gd.settled(t)
	if st.State != "held-down" || st.Losses != 1 || st.ConnLosses != 1 || st.Owner != "gw-b" {
		t.Fatalf("after recovering: %+v", st)
	}
	if got := cfg.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
		t.Errorf("TPG switches %v, want the local TPG disabled then enabled", got)
	}
	gd.expect(t, write10, standby)
	gd.expect(t, read10, admitted)
	if st, _ := gd.d.LockStatus(); st.Acquisitions != 1 {
		t.Fatalf("the lock taken back inside the hold-down: %+v", st)
	}
	gd.d.SetLockHoldDown(0)
	gd.expect(t, write10, busy)
	if st := gd.settled(t); st.State != "locked" || st.Acquisitions != 2 {
		t.Fatalf("after the hold-down: %+v", st)
	}
}

// Devices sharing a registry of TPG holds, as a Manager's do, bring a TPG
// they share back when the last of them reopened.
func TestSharedTPGBackWhenLastDeviceRecovered(t *testing.T) {
	const iqn = "iqn.2026-01.test:shared"
	cfg := newTPGConfig(iqn, false)
	var tpgs lockgate.Holds
	a, b := runDevice(t, cfg, &tpgs), runDevice(t, cfg, &tpgs)
	hold := make(chan struct{})
	a.be.reopenHold = hold
	a.be.failNext(fmt.Errorf("read: %w", syscall.ETIMEDOUT))
	a.expect(t, read10, busy)
	// a reopens only after it took the TPG offline.
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(a.be.callList(), "reopen") {
		if time.Now().After(deadline) {
			t.Fatal("a did not reopen within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	b.be.failNext(fmt.Errorf("read: %w", syscall.ETIMEDOUT))
	b.expect(t, read10, busy)
	if st := b.settled(t); st.ConnLosses != 1 {
		t.Fatalf("b after recovering: %+v", st)
	}
	if got := cfg.switches(); !slices.Equal(got, []string{iqn + "/1=false"}) {
		t.Fatalf("with one device still recovering: switches %v", got)
	}
	close(hold)
	a.settled(t)
	if got := cfg.switchesAfter(t, 2); !slices.Equal(got, []string{iqn + "/1=false", iqn + "/1=true"}) {
		t.Errorf("switches %v", got)
	}
}

func TestGatePortsLocalTPGs(t *testing.T) {
	groups := gatewayGroups("iqn.2026-01.test:a", false)
	groups = append(groups, PortGroup{Name: "more", ID: 3, Ports: []TargetPort{
		{RelativeID: 3, TargetName: "iqn.2026-01.test:a", TPGT: 1, Enabled: true}, // the same TPG, another LUN
		{RelativeID: 4, TargetName: "iqn.2026-01.test:b", TPGT: 3, Enabled: true},
		{RelativeID: 5, TPGT: 4, Enabled: true},                                                     // no target name
		{RelativeID: 6, TargetName: "naa.5001405000000001", TPGT: 1, Enabled: true, AlwaysOn: true}, // tcm_loop
	}})
	got, err := gatePorts{&tpgConfig{groups: groups}}.LocalTPGs()
	if err != nil {
		t.Fatal(err)
	}
	want := []lockgate.TPG{{WWN: "iqn.2026-01.test:a", TPGT: 1}, {WWN: "iqn.2026-01.test:b", TPGT: 3}}
	if !slices.Equal(got, want) {
		t.Errorf("LocalTPGs() = %v, want %v", got, want)
	}
}

// SET TARGET PORT GROUPS that makes this gateway's group active/optimized
// completes once the gateway holds the lock.
func TestExplicitTransitionTakesTheLock(t *testing.T) {
	cfg := newTPGConfig("iqn.2026-01.test:stpg", true)
	cfg.groups[0].State, cfg.groups[1].State = aluaStandby, aluaActiveOptimized
	gd := runDevice(t, cfg, nil)
	hold := make(chan struct{})
	gd.be.acquireHold = hold
	gd.stpg(t, aluaActiveOptimized, 1, aluaStandby, 2)
	select {
	case c := <-gd.k.Completions():
		t.Fatalf("SET TARGET PORT GROUPS completed (status %#x) before the lock was taken", c.Status)
	case <-time.After(50 * time.Millisecond):
	}
	// Writes meanwhile wait for the lock like any implicit transition.
	gd.expect(t, write10, busy)
	close(hold)
	if c := gd.completion(t); c.Status != statusGood {
		t.Fatalf("SET TARGET PORT GROUPS: status %#x sense % x, want GOOD", c.Status, c.Sense)
	}
	if st, _ := gd.d.LockStatus(); st.State != "locked" || st.Acquisitions != 1 {
		t.Fatalf("after the transition: %+v", st)
	}
	gd.expect(t, write10, admitted)
}

func TestExplicitTransitionFailure(t *testing.T) {
	cfg := newTPGConfig("iqn.2026-01.test:stpg-fail", true)
	cfg.groups[0].State = aluaStandby
	gd := runDevice(t, cfg, nil)
	gd.be.acquireErr = []error{syscall.EIO}
	gd.stpg(t, aluaActiveOptimized, 1)
	c := gd.completion(t)
	if c.Status != statusCheckCondition || senseKeyOf(c.Sense) != keyHardwareError || c.Sense[12] != 0x67 || c.Sense[13] != 0x0a {
		t.Fatalf("status %#x sense % x, want HARDWARE ERROR / SET TARGET PORT GROUPS COMMAND FAILED", c.Status, c.Sense)
	}
}

func TestExplicitTransitionOverridesHoldDown(t *testing.T) {
	cfg := newTPGConfig("iqn.2026-01.test:stpg-hold", true)
	gd := runDevice(t, cfg, nil)
	lostLock(t, gd, syscall.ESHUTDOWN)
	if st := gd.settled(t); st.State != "held-down" {
		t.Fatalf("state %q, want held-down", st.State)
	}
	gd.expect(t, write10, standby)
	gd.stpg(t, aluaActiveOptimized, 1)
	if c := gd.completion(t); c.Status != statusGood {
		t.Fatalf("status %#x sense % x", c.Status, c.Sense)
	}
	if st, _ := gd.d.LockStatus(); st.State != "locked" || st.Acquisitions != 2 {
		t.Fatalf("%+v", st)
	}
	gd.expect(t, write10, admitted)
}

// A transition of the other gateway's group only does not touch the lock.
func TestExplicitTransitionOfAnotherGatewaysGroup(t *testing.T) {
	cfg := newTPGConfig("iqn.2026-01.test:stpg-other", true)
	cfg.groups[0].State = aluaStandby
	gd := runDevice(t, cfg, nil)
	gd.stpg(t, aluaActiveOptimized, 2)
	if c := gd.completion(t); c.Status != statusGood {
		t.Fatalf("status %#x", c.Status)
	}
	if calls := gd.be.callList(); len(calls) != 0 {
		t.Errorf("calls %v, want none", calls)
	}
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
		{name: "offline", state: aluaOffline, want: unavail},
		{name: "active_non_optimized", state: aluaActiveNonOptimized, want: busy},
		{name: "standby_with_implicit_transitions", implicit: true, state: aluaStandby, want: busy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := explicitOnly(newTPGConfig("iqn.2026-01.test:explicit-"+tt.name, true))
			cfg.groups[0].State, cfg.groups[0].Implicit = tt.state, tt.implicit
			gd := runDevice(t, cfg, nil)
			if got := gd.exec(t, write10); got != tt.want {
				t.Errorf("write: %s, want %s", got, tt.want)
			}
			if tt.want == standby || tt.want == unavail {
				if got := gd.exec(t, read10); got != tt.want {
					t.Errorf("read: %s, want %s", got, tt.want)
				}
				if calls := gd.be.callList(); len(calls) != 0 {
					t.Errorf("calls %v at a refusing port", calls)
				}
			}
		})
	}
}

// SET TARGET PORT GROUPS putting this gateway's group in standby gives the
// lock up before it completes; I/O here is refused from then on.
func TestExplicitTransitionToStandbyReleasesTheLock(t *testing.T) {
	cfg := explicitOnly(newTPGConfig("iqn.2026-01.test:stpg-release", true))
	gd := runDevice(t, cfg, nil)
	gd.stpg(t, aluaActiveOptimized, 1)
	if c := gd.completion(t); c.Status != statusGood {
		t.Fatalf("to active/optimized: status %#x", c.Status)
	}
	gd.expect(t, write10, admitted)
	gd.stpg(t, aluaStandby, 1, aluaActiveOptimized, 2)
	if c := gd.completion(t); c.Status != statusGood {
		t.Fatalf("to standby: status %#x sense % x", c.Status, c.Sense)
	}
	if st, _ := gd.d.LockStatus(); st.State != "unlocked" || st.Owner != "" {
		t.Fatalf("after the transition to standby: %+v", st)
	}
	if calls := gd.be.callList(); !slices.Equal(calls, []string{"acquire", "release"}) {
		t.Errorf("calls %v, want acquire then release", calls)
	}
	gd.expect(t, write10, standby)
	gd.expect(t, read10, standby)
}
