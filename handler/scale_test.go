package handler_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/mem"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// What one command costs must not grow with the number of devices the
// daemon serves (issue 16 point 2): a command is answered by its own
// device's loop, and nothing on its path walks the Manager's devices or
// looks one up. The same mix of commands runs on one device of a Manager
// serving 1 and then 64 devices over the fake kernel, and the test holds,
// deterministically (no timing):
//   - heap allocations per command (every goroutine's) are the same;
//   - the kernel's and configfs's calls per command on the device are the
//     same, and no other device's configfs, ring or doorbell is touched;
//   - the Manager's kernel is not asked anything (no List, Files, Open or
//     Reach on the command path).
//
// Reading another device's configfs is what a walk over the Manager's
// devices does (a look-up of a device by its serial or NAA reads every
// candidate's wwn/vpd_unit_serial), so the counts catch one. EXTENDED COPY
// between two devices reads the other device's serial by design (the copy
// names it); TestCopyTargetLookupIndependentOfDeviceCount holds that it
// reads only that one.

// scaleCommands is the mix: 4 KiB writes and reads, and the commands an
// initiator's path checker and SCSI layer send.
var scaleCommands = []struct {
	name    string
	cdb     []byte
	dataOut int
	dataIn  int
}{
	{"write10", cdb10(0x2a, 0, 8, 8), 4096, 0},
	{"read10", cdb10(0x28, 0, 8, 8), 0, 4096},
	{"read16", cdb16(0x88, 0, 64, 8), 0, 4096},
	{"test unit ready", []byte{0x00, 0, 0, 0, 0, 0}, 0, 0},
	{"inquiry", []byte{0x12, 0, 0, 0, 96, 0}, 0, 96},
	{"inquiry vpd 0x83", []byte{0x12, 1, 0x83, 0, 255, 0}, 0, 255},
	{"read capacity 16", []byte{0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, 0, 32},
	{"synchronize cache 10", cdb10(0x35, 0, 0, 0), 0, 0},
}

// countingKernel is a handler.Kernel over uiotest kernels that counts
// every call the Manager and the devices make into it.
type countingKernel struct {
	t      testing.TB
	mu     sync.Mutex
	devs   map[string]*uiotest.Kernel
	files  map[string]*countingFiles
	refs   []handler.DeviceRef
	kcalls atomic.Int64 // List, Files, Open, Reach
}

func (k *countingKernel) create(name string) (handler.DeviceRef, *uiotest.Kernel) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ref := handler.DeviceRef{UIOName: name, Minor: uint32(len(k.refs))}
	fk := uiotest.New(k.t, uiotest.Config{})
	k.devs[name] = fk
	k.files[name] = &countingFiles{serial: fmt.Sprintf("%08x-scale", len(k.refs))}
	k.refs = append(k.refs, ref)
	return ref, fk
}

func (k *countingKernel) Open(ref handler.DeviceRef) (handler.Port, error) {
	k.kcalls.Add(1)
	k.mu.Lock()
	defer k.mu.Unlock()
	if d, ok := k.devs[ref.UIOName]; ok {
		return d, nil
	}
	return nil, syscall.ENODEV
}

func (k *countingKernel) Files(ref handler.DeviceRef) (handler.DeviceFiles, error) {
	k.kcalls.Add(1)
	k.mu.Lock()
	defer k.mu.Unlock()
	if f, ok := k.files[ref.UIOName]; ok {
		return f, nil
	}
	return nil, syscall.ENODEV
}

func (k *countingKernel) List() ([]handler.DeviceRef, error) {
	k.kcalls.Add(1)
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.refs), nil
}

func (k *countingKernel) Reach() (handler.Reach, error) {
	k.kcalls.Add(1)
	return fakeReach{}, nil
}

// countingFiles is a device's configfs; calls counts every method call,
// serialReads the reads of its unit serial.
type countingFiles struct {
	mu          sync.Mutex
	serial      string
	calls       atomic.Int64
	serialReads atomic.Int64
}

func (f *countingFiles) UnitSerial() (string, error) {
	f.calls.Add(1)
	f.serialReads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.serial, nil
}

func (f *countingFiles) setSerial(s string) {
	f.mu.Lock()
	f.serial = s
	f.mu.Unlock()
}
func (f *countingFiles) PortGroups() ([]handler.PortGroup, error) {
	f.calls.Add(1)
	return nil, nil
}
func (f *countingFiles) SetPortGroupState(uint16, uint8) error {
	f.calls.Add(1)
	return syscall.EOPNOTSUPP
}
func (f *countingFiles) Attributes() (int64, uint32, uint32, bool, error) {
	f.calls.Add(1)
	return 64 << 20, 512, 128, true, nil
}
func (f *countingFiles) BlockDev(bool) error { f.calls.Add(1); return nil }
func (f *countingFiles) ResetRing() error    { f.calls.Add(1); return nil }

// perCommand is what one round of scaleCommands cost on the device under
// test, and what it cost everything else.
type perCommand struct {
	allocs     float64 // heap allocations per round, every goroutine's
	files      int64   // the device's configfs calls per round
	doorbells  int     // the device's doorbells per round
	kernel     int64   // calls into the Manager's kernel during the rounds
	otherFiles int64   // other devices' configfs calls during the rounds
	otherRings int     // commands completed or doorbells rung on other devices
}

const scaleRounds = 50

// countingManager is a Manager of mem devices over a countingKernel, shut
// down when the test ends.
func countingManager(t *testing.T) (*countingKernel, *handler.Manager) {
	k := &countingKernel{t: t, devs: map[string]*uiotest.Kernel{}, files: map[string]*countingFiles{}}
	m := handler.NewManager(zerolog.Nop(), k, []handler.Handler{mem.Handler()})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	return k, m
}

// measurePerCommand serves n mem devices from one Manager and runs the
// mix on the last one.
func measurePerCommand(t *testing.T, n int) perCommand {
	k, m := countingManager(t)
	var fks []*uiotest.Kernel
	for i := range n {
		ref, fk := k.create(fmt.Sprintf("tcm-user/1/lun%d/mem/scale%d", i, i))
		if err := m.Add(context.Background(), ref); err != nil {
			t.Fatalf("add device %d: %v", i, err)
		}
		fks = append(fks, fk)
	}
	target := fks[n-1]
	tfiles := k.files[k.refs[n-1].UIOName]
	out := make([]byte, 4096)
	round := func() {
		for _, c := range scaleCommands {
			req := uiotest.Request{CDB: c.cdb, DataInLen: c.dataIn}
			if c.dataOut > 0 {
				req.DataOut = out[:c.dataOut]
			}
			if _, err := target.Submit(req); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			select {
			case comp := <-target.Completions():
				if comp.Status != 0 {
					t.Fatalf("%s: status %#x sense %x", c.name, comp.Status, comp.Sense)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no completion within 10s", c.name)
			}
		}
	}
	// Warm up: first commands fill caches (the device's VPD pages, the
	// fake's pools) whatever the number of devices.
	for range 5 {
		round()
	}
	others := func() (files int64, rings int) {
		for i, ref := range k.refs[:n-1] {
			files += k.files[ref.UIOName].calls.Load()
			s := fks[i].Stats()
			rings += s.Completed + s.Doorbells
		}
		return files, rings
	}
	kernel0, files0, bells0 := k.kcalls.Load(), tfiles.calls.Load(), target.Stats().Doorbells
	ofiles0, orings0 := others()
	allocs := testing.AllocsPerRun(scaleRounds, round)
	// AllocsPerRun runs round once more than scaleRounds, to warm up.
	rounds := int64(scaleRounds + 1)
	ofiles1, orings1 := others()
	return perCommand{
		allocs:     allocs,
		files:      (tfiles.calls.Load() - files0) / rounds,
		doorbells:  (target.Stats().Doorbells - bells0) / int(rounds),
		kernel:     k.kcalls.Load() - kernel0,
		otherFiles: ofiles1 - ofiles0,
		otherRings: orings1 - orings0,
	}
}

func TestPerCommandCostIndependentOfDeviceCount(t *testing.T) {
	one := measurePerCommand(t, 1)
	many := measurePerCommand(t, 64)
	t.Logf("per round of %d commands: 1 device %+v; 64 devices %+v", len(scaleCommands), one, many)
	if many.kernel != 0 || one.kernel != 0 {
		t.Errorf("the command path called the Manager's kernel (List/Files/Open/Reach): %d times with 1 device, %d with 64", one.kernel, many.kernel)
	}
	if many.otherFiles != 0 || many.otherRings != 0 {
		t.Errorf("commands on one device touched the other 63: %d configfs calls, %d ring completions and doorbells", many.otherFiles, many.otherRings)
	}
	if many.files != one.files {
		t.Errorf("the device's configfs calls per round: %d with 64 devices, %d with 1", many.files, one.files)
	}
	if many.doorbells != one.doorbells {
		t.Errorf("doorbells per round: %d with 64 devices, %d with 1", many.doorbells, one.doorbells)
	}
	// Allocations are counted process-wide: the 63 idle devices' loops
	// sleep without allocating, so half an allocation a round is room
	// for a stray runtime allocation, not for one that grows with N.
	if many.allocs > one.allocs+0.5 {
		t.Errorf("allocations per round: %.1f with 64 devices, %.1f with 1", many.allocs, one.allocs)
	}
}

// serialReads is how many times any device's serial was read.
func (k *countingKernel) serialReads() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	var n int64
	for _, f := range k.files {
		n += f.serialReads.Load()
	}
	return n
}

// TestCopyTargetLookupIndependentOfDeviceCount: finding the device an
// EXTENDED COPY names (by NAA designator) reads one serial once the
// Manager has seen the devices, with 1 device or 64; a serial changed
// since, or a designator no device serves, walks them again.
func TestCopyTargetLookupIndependentOfDeviceCount(t *testing.T) {
	for _, n := range []int{1, 64} {
		t.Run(fmt.Sprintf("%d devices", n), func(t *testing.T) {
			k, m := countingManager(t)
			for i := range n {
				ref, _ := k.create(fmt.Sprintf("tcm-user/1/lun%d/mem/naa%d", i, i))
				if err := m.Add(context.Background(), ref); err != nil {
					t.Fatalf("add device %d: %v", i, err)
				}
			}
			last := k.files[k.refs[n-1].UIOName]
			lookup := func(serial string) (*handler.Device, int64) {
				before := k.serialReads()
				d := handler.LookupNAA(m, handler.NAADesignator(serial))
				return d, k.serialReads() - before
			}
			if d, reads := lookup(last.serial); d == nil || reads != int64(n) {
				t.Fatalf("first look-up: device %v after %d serial reads, want the device after %d (one walk)", d, reads, n)
			}
			for range 3 {
				if d, reads := lookup(last.serial); d == nil || reads != 1 {
					t.Fatalf("look-up again: device %v after %d serial reads, want the device after 1", d, reads)
				}
			}
			last.setSerial("changed-serial")
			if d, reads := lookup("changed-serial"); d == nil || reads != int64(n) {
				t.Errorf("after the serial changed: device %v after %d serial reads, want the device after %d (one walk)", d, reads, n)
			}
			if d, reads := lookup(fmt.Sprintf("%08x-scale", n-1)); d != nil || reads != int64(n) {
				t.Errorf("the old serial: device %v after %d serial reads, want none after %d", d, reads, n)
			}
			if d, reads := lookup("served-nowhere"); d != nil || reads != int64(n) {
				t.Errorf("a designator no device serves: device %v after %d serial reads, want none after %d", d, reads, n)
			}
		})
	}
}
