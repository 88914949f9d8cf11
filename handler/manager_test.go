package handler_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/mem"
	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// fakeKernel serves devices from uiotest fake kernels and records what the
// manager writes to their configfs.
type fakeKernel struct {
	t       *testing.T
	mu      sync.Mutex
	devs    map[string]*uiotest.Kernel
	files   map[string]*fakeFiles
	present []handler.DeviceRef
	// reach answers Kernel.Reach, or reachErr; reachReads counts the calls.
	reach      handler.Reach
	reachErr   error
	reachReads int
}

// fakeReach is a handler.Reach: the group of initiators that reaches each
// device (by uio.UIOName.DeviceKey); devices of one group are reached
// alike, devices in none by no one.
type fakeReach map[string]string

func (r fakeReach) Same(a, b string) bool { return r[a] != "" && r[a] == r[b] }

// Paths gives each "+"-separated part of a device's group as an access
// path: "demo" any initiator of an iSCSI TPG, "loop" tcm_loop's, anything
// else the node ACL of an initiator of that name.
func (r fakeReach) Paths(key string) []string {
	if r[key] == "" {
		return nil
	}
	var paths []string
	for i, part := range strings.Split(r[key], "+") {
		tpg := fmt.Sprintf("iscsi/iqn.2003-01.org.test:t/tpgt_%d", i+1)
		switch part {
		case "demo":
			paths = append(paths, tpg+" * rw")
		case "loop":
			paths = append(paths, fmt.Sprintf("loopback/naa.5001405000000001/tpgt_%d * rw", i+1))
		default:
			paths = append(paths, tpg+" acl="+part+" rw")
		}
	}
	return paths
}

func (k *fakeKernel) Reach() (handler.Reach, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reachReads++
	if k.reachErr != nil {
		return nil, k.reachErr
	}
	if k.reach == nil {
		return fakeReach{}, nil
	}
	return k.reach, nil
}

func (k *fakeKernel) setReach(r handler.Reach, err error) {
	k.mu.Lock()
	k.reach, k.reachErr = r, err
	k.mu.Unlock()
}

func newFakeKernel(t *testing.T) *fakeKernel {
	return &fakeKernel{t: t, devs: map[string]*uiotest.Kernel{}, files: map[string]*fakeFiles{}}
}

// create makes a device the kernel has, as an enable write would.
func (k *fakeKernel) create(name string, size int64) (handler.DeviceRef, *uiotest.Kernel) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ref := handler.DeviceRef{UIOName: name, Minor: uint32(len(k.present))}
	fk := uiotest.New(k.t, uiotest.Config{})
	k.devs[name] = fk
	k.files[name] = &fakeFiles{size: size, serial: "serial-" + name}
	k.present = append(k.present, ref)
	return ref, fk
}

func (k *fakeKernel) Open(ref handler.DeviceRef) (handler.Port, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.devs[ref.UIOName]
	if !ok {
		return nil, syscall.ENODEV
	}
	return d, nil
}

func (k *fakeKernel) Files(ref handler.DeviceRef) (handler.DeviceFiles, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f, ok := k.files[ref.UIOName]
	if !ok {
		return nil, syscall.ENODEV
	}
	f.dev = k.devs[ref.UIOName]
	return f, nil
}

func (k *fakeKernel) List() ([]handler.DeviceRef, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.present), nil
}

type fakeFiles struct {
	mu      sync.Mutex
	size    int64
	serial  string
	actions []string
	dev     *uiotest.Kernel
	// panicSerial makes UnitSerial panic, a fault in the command loop
	// (INQUIRY's unit serial number page asks for it there).
	panicSerial atomic.Bool
}

func (f *fakeFiles) UnitSerial() (string, error) {
	if f.panicSerial.Load() {
		panic("unit serial: test fault")
	}
	return f.serial, nil
}

func (f *fakeFiles) PortGroups() ([]handler.PortGroup, error)    { return nil, nil }
func (f *fakeFiles) SetPortGroupState(id uint16, st uint8) error { return syscall.EOPNOTSUPP }
func (f *fakeFiles) Attributes() (int64, uint32, uint32, bool, error) {
	return f.size, 512, 128, false, nil
}

func (f *fakeFiles) BlockDev(on bool) error {
	f.record(map[bool]string{true: "block", false: "unblock"}[on])
	return nil
}

func (f *fakeFiles) ResetRing() error {
	f.record("reset")
	return f.dev.ResetRing(uio.ResetBusy)
}

func (f *fakeFiles) record(a string) {
	f.mu.Lock()
	f.actions = append(f.actions, a)
	f.mu.Unlock()
}

func (f *fakeFiles) took() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.actions)
}

func newManager(t *testing.T) (*handler.Manager, *fakeKernel) {
	k := newFakeKernel(t)
	m := handler.NewManager(zerolog.Nop(), k, []handler.Handler{mem.Handler()})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	return m, k
}

// roundTrip submits one CDB and returns its completion.
func roundTrip(t *testing.T, fk *uiotest.Kernel, cdb []byte, dataInLen int) uiotest.Completion {
	t.Helper()
	if _, err := fk.Submit(uiotest.Request{CDB: cdb, DataInLen: dataInLen}); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-fk.Completions():
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no completion within 10s")
	}
	return uiotest.Completion{}
}

var tur = []byte{0x00, 0, 0, 0, 0, 0}

func TestManagerAddServesCommands(t *testing.T) {
	m, k := newManager(t)
	ref, fk := k.create("tcm-user/1/d0/mem/x", 1<<20)
	if err := m.Add(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	if c := roundTrip(t, fk, tur, 0); c.Status != 0 {
		t.Fatalf("TEST UNIT READY: status %#x sense %x", c.Status, c.Sense)
	}
	c := roundTrip(t, fk, []byte{0x12, 0, 0, 0, 36, 0}, 36)
	if c.Status != 0 || string(c.DataIn[8:16]) != "LIO-ORG " {
		t.Fatalf("INQUIRY: status %#x data %q", c.Status, c.DataIn)
	}
	st := m.Status()
	if len(st) != 1 || st[0].Name != "d0" || st[0].Handler != "mem" || st[0].Size != 1<<20 || st[0].State != "running" {
		t.Errorf("Status = %+v", st)
	}
	if err := m.Add(context.Background(), ref); !errors.Is(err, handler.ErrAlreadyServed) {
		t.Errorf("second Add: %v, want ErrAlreadyServed", err)
	}
}

func TestManagerRefusesWhatItCannotServe(t *testing.T) {
	m, k := newManager(t)
	for _, tt := range []struct {
		name string
		want error
	}{
		{"tcm-user/1/d1/nosuch/x", syscall.ENOENT},
		{"tcm-user/1/d2", syscall.EINVAL},
		{"not-tcmu/1/d3/mem/x", syscall.EINVAL},
	} {
		ref, _ := k.create(tt.name, 1<<20)
		if err := m.Add(context.Background(), ref); !errors.Is(err, tt.want) {
			t.Errorf("Add(%q) = %v, want %v", tt.name, err, tt.want)
		}
	}
	if st := m.Status(); len(st) != 0 {
		t.Errorf("devices served after refusals: %+v", st)
	}
}

func TestManagerResizeRaisesUnitAttention(t *testing.T) {
	m, k := newManager(t)
	ref, fk := k.create("tcm-user/1/r0/mem/x", 1<<20)
	if err := m.Add(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	size := uint64(2 << 20)
	if err := m.Reconfigure(ref.UIOName, nil, &size, nil); err != nil {
		t.Fatal(err)
	}
	c := roundTrip(t, fk, tur, 0)
	if c.Status != 2 || len(c.Sense) < 14 || c.Sense[2]&0xf != 6 || c.Sense[12] != 0x2a || c.Sense[13] != 0x09 {
		t.Fatalf("first command after resize: status %#x sense %x, want UNIT ATTENTION 2A/09", c.Status, c.Sense)
	}
	if c := roundTrip(t, fk, tur, 0); c.Status != 0 {
		t.Fatalf("second command: status %#x, want GOOD (the attention is reported once)", c.Status)
	}
	cfg := "mem/other"
	if err := m.Reconfigure(ref.UIOName, &cfg, nil, nil); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("config change: %v, want EOPNOTSUPP", err)
	}
	if err := m.Reconfigure("tcm-user/1/nosuch/mem/x", nil, &size, nil); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("reconfigure unknown device: %v, want ENODEV", err)
	}
}

func TestManagerRemove(t *testing.T) {
	m, k := newManager(t)
	ref, _ := k.create("tcm-user/1/rm/mem/x", 1<<20)
	if err := m.Add(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(context.Background(), ref.UIOName); err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); len(st) != 0 {
		t.Errorf("device still listed after Remove: %+v", st)
	}
	if err := m.Remove(context.Background(), ref.UIOName); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("second Remove: %v, want ENODEV", err)
	}
}

// A restarted daemon finds commands the dead one left in the ring: it must
// block the device, reset the ring (the kernel answers them BUSY, the
// initiator retries) and unblock, in that order.
func TestManagerAdoptResetsTheRing(t *testing.T) {
	m, k := newManager(t)
	ref, fk := k.create("tcm-user/1/old/mem/x", 1<<20)
	if _, err := fk.Submit(uiotest.Request{CDB: tur}); err != nil {
		t.Fatal(err)
	}
	if err := m.Adopt(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := <-fk.Completions()
	if !c.Reset || c.Status != 0x08 {
		t.Errorf("left-over command: %+v, want completed BUSY by the reset", c)
	}
	if got, want := k.files[ref.UIOName].took(), []string{"block", "reset", "unblock"}; !slices.Equal(got, want) {
		t.Errorf("configfs actions %v, want %v", got, want)
	}
	if c := roundTrip(t, fk, tur, 0); c.Status != 0 {
		t.Errorf("command after adoption: status %#x", c.Status)
	}
}

// SIGTERM: every device is blocked, its ring drained, then unblocked.
func TestManagerShutdownDrains(t *testing.T) {
	m, k := newManager(t)
	ref, fk := k.create("tcm-user/1/sd/mem/x", 1<<20)
	if err := m.Add(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, fk, tur, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.Shutdown(ctx)
	if got, want := k.files[ref.UIOName].took(), []string{"block", "unblock"}; !slices.Equal(got, want) {
		t.Errorf("configfs actions %v, want %v", got, want)
	}
	if fk.Outstanding() != 0 {
		t.Errorf("%d commands left in the ring", fk.Outstanding())
	}
}
