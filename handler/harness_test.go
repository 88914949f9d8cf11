package handler_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/mem"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// The device-level test harness: a real handler.Device, running its real
// command loop (Device.Run) over uiotest's fake kernel, with the mem
// backend underneath. Commands go in as CDBs and Data-Out bytes through
// the fake ring and come back as the kernel would see them: status, sense
// and the Data-In bytes the initiator receives. Nothing of the handler is
// bypassed, so what a test asserts is what an initiator gets.

// SCSI status and sense keys the tests compare with.
const (
	statusGood           = 0x00
	statusCheckCondition = 0x02

	keyNoSense        = 0x0
	keyMediumError    = 0x3
	keyIllegalRequest = 0x5
	keyCopyAborted    = 0xa
	keyMiscompare     = 0xe
)

// devConfig describes the device newDevice builds; zero fields take
// defaults.
type devConfig struct {
	blockSize  uint32 // 512
	blocks     int64  // 8192
	maxSectors uint32 // 1024
	writeCache bool
	serial     string
	// limits replaces the mem backend's (every operation native): with
	// an operation off, the handler emulates it, and the backend refuses
	// it if it is sent anyway.
	limits *handler.Limits
	// noStatus hides mem's LBAStatuser.
	noStatus bool
	// dataSize is the fake kernel's data area (8 MiB).
	dataSize int
	// spinWait is the device's spin-wait (Device.SetSpinWait).
	spinWait time.Duration
}

// device is one Device under test.
type device struct {
	t   testing.TB
	k   *uiotest.Kernel
	dev *handler.Device
	be  *testBackend
	bs  int
	n   int64 // blocks

	mu      sync.Mutex
	tags    int
	waiting map[int]chan uiotest.Completion
}

func newDevice(t testing.TB, cfg devConfig) *device {
	t.Helper()
	if cfg.blockSize == 0 {
		cfg.blockSize = 512
	}
	if cfg.blocks == 0 {
		cfg.blocks = 8192
	}
	if cfg.maxSectors == 0 {
		cfg.maxSectors = 1024
	}
	if cfg.dataSize == 0 {
		cfg.dataSize = 8 << 20
	}
	size := cfg.blocks * int64(cfg.blockSize)
	m, err := mem.New(size)
	if err != nil {
		t.Fatalf("mem.New: %v", err)
	}
	be := &testBackend{t: t, m: m, lim: m.Limits()}
	// Memory needs no FUA; the tests want to see the FUA the handler
	// would ask of a backend with a volatile cache.
	be.lim.StableWrites = false
	if cfg.limits != nil {
		be.lim = *cfg.limits
		be.refuse = true
	}
	var backend handler.Backend = be
	if !cfg.noStatus {
		backend = statusBackend{be}
	}
	k := uiotest.New(t, uiotest.Config{DataSize: cfg.dataSize})
	info := handler.DeviceInfo{
		Name:       t.Name(),
		Config:     "mem/test",
		Size:       size,
		BlockSize:  cfg.blockSize,
		MaxSectors: cfg.maxSectors,
		WriteCache: cfg.writeCache,
	}
	dev, err := handler.NewDevice(zerolog.Nop(), info, k.Ring(), k, backend, &staticConfig{serial: cfg.serial})
	if err != nil {
		t.Fatalf("NewDevice: %v", err)
	}
	dev.SetSpinWait(cfg.spinWait)
	d := &device{t: t, k: k, dev: dev, be: be, bs: int(cfg.blockSize), n: cfg.blocks, waiting: map[int]chan uiotest.Completion{}}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- dev.Run(ctx) }()
	stop, collected := make(chan struct{}), make(chan struct{})
	go d.collect(stop, collected)
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for dev.InFlight() != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if err := dev.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		close(stop)
		<-collected
	})
	return d
}

// collect hands each completion to whoever waits for it. Completions are
// matched by tag, not cmd_id: the kernel frees a cmd_id before the
// completion is delivered, and a new command may take it.
func (d *device) collect(stop, done chan struct{}) {
	defer close(done)
	for {
		select {
		case c := <-d.k.Completions():
			tag, _ := c.Tag.(int)
			d.mu.Lock()
			ch := d.waiting[tag]
			delete(d.waiting, tag)
			d.mu.Unlock()
			if ch == nil {
				d.t.Errorf("completion of cmd_id %d (tag %v) nobody submitted", c.ID, c.Tag)
				continue
			}
			ch <- c
		case <-stop:
			return
		}
	}
}

// start queues a command without waiting for it; wait returns its
// completion.
func (d *device) start(t testing.TB, cdb, out []byte, inLen int) (wait func() reply) {
	t.Helper()
	ch := make(chan uiotest.Completion, 1)
	d.mu.Lock()
	d.tags++
	tag := d.tags
	d.waiting[tag] = ch
	d.mu.Unlock()
	if _, err := d.k.Submit(uiotest.Request{CDB: cdb, DataOut: out, DataInLen: inLen, Tag: tag}); err != nil {
		t.Fatalf("submit CDB % x: %v", cdb, err)
	}
	return func() reply {
		t.Helper()
		select {
		case c := <-ch:
			return reply{c}
		case <-time.After(10 * time.Second):
			t.Fatalf("CDB % x: no completion within 10s", cdb)
			return reply{}
		}
	}
}

// run sends one command and returns what the initiator gets.
func (d *device) run(t testing.TB, cdb, out []byte, inLen int) reply {
	t.Helper()
	return d.start(t, cdb, out, inLen)()
}

// mustGood runs a command that must succeed and returns its Data-In.
func (d *device) mustGood(t testing.TB, cdb, out []byte, inLen int) []byte {
	t.Helper()
	r := d.run(t, cdb, out, inLen)
	if r.Status != statusGood {
		t.Fatalf("CDB % x: status %#x, sense %s; want GOOD", cdb, r.Status, r.senseString())
	}
	return r.DataIn
}

// write writes data (whole blocks) at lba with WRITE(16).
func (d *device) write(t testing.TB, lba uint64, data []byte) {
	t.Helper()
	d.mustGood(t, cdb16(0x8a, 0, lba, uint32(len(data)/d.bs)), data, 0)
}

// read reads n blocks at lba with READ(16).
func (d *device) read(t testing.TB, lba uint64, n int) []byte {
	t.Helper()
	return d.mustGood(t, cdb16(0x88, 0, lba, uint32(n)), nil, n*d.bs)
}

// reply is a completion with sense helpers.
type reply struct{ uiotest.Completion }

// senseData returns key, ASC<<8|ASCQ and the INFORMATION field (with its
// VALID bit) of fixed-format sense data.
func (r reply) senseData() (key uint8, ascq uint16, info uint32, valid bool) {
	s := r.Sense
	if len(s) < 18 {
		return 0, 0, 0, false
	}
	return s[2] & 0x0f, binary.BigEndian.Uint16(s[12:]), binary.BigEndian.Uint32(s[3:]), s[0]&0x80 != 0
}

// fieldPointer returns the sense-key specific field pointer (SKSV set).
func (r reply) fieldPointer() (cd bool, byteOff uint16, bit int, ok bool) {
	s := r.Sense
	if len(s) < 18 || s[15]&0x80 == 0 {
		return false, 0, 0, false
	}
	bit = -1
	if s[15]&0x08 != 0 {
		bit = int(s[15] & 0x07)
	}
	return s[15]&0x40 != 0, binary.BigEndian.Uint16(s[16:]), bit, true
}

func (r reply) senseString() string {
	if r.Status != statusCheckCondition {
		return "none"
	}
	key, ascq, info, valid := r.senseData()
	if !valid {
		return fmt.Sprintf("%x/%04x", key, ascq)
	}
	return fmt.Sprintf("%x/%04x info %d", key, ascq, info)
}

// want describes the answer a test expects: GOOD, or CHECK CONDITION with
// a sense key, ASC/ASCQ, optionally INFORMATION and a field pointer.
type want struct {
	key  uint8
	asc  uint16 // ASC<<8 | ASCQ; 0 with key 0 means GOOD
	info *uint32
	// field is the CDB (cd) or parameter list byte the field pointer
	// must name, with bit (-1: no bit pointer); nil: not checked.
	field *fieldPtr
}

type fieldPtr struct {
	cd   bool
	byte uint16
	bit  int
}

var good = want{}

func checkCond(key uint8, asc uint16) want { return want{key: key, asc: asc} }

func (w want) withInfo(info uint32) want { w.info = &info; return w }

func (w want) cdbField(b uint16, bit int) want {
	w.field = &fieldPtr{cd: true, byte: b, bit: bit}
	return w
}

func (w want) paramField(b uint16, bit int) want {
	w.field = &fieldPtr{cd: false, byte: b, bit: bit}
	return w
}

// Sense codes the tests expect.
const (
	ascParamListLength    = 0x1a00
	ascMiscompare         = 0x1d00
	ascInvalidOpcode      = 0x2000
	ascLBAOutOfRange      = 0x2100
	ascInvalidFieldCDB    = 0x2400
	ascInvalidFieldParam  = 0x2600
	ascTooManyTargets     = 0x2606
	ascUnsupportedTarget  = 0x2607
	ascTooManySegments    = 0x2608
	ascUnsupportedSegment = 0x2609
	ascInvalidFieldIU     = 0x0e03
	ascCopyUnreachable    = 0x0d02
	ascCopyTargetType     = 0x0d03
	ascUnrecoveredRead    = 0x1100
	ascWriteError         = 0x0c00
)

// check asserts that r is the answer w describes.
func (w want) check(t testing.TB, what string, r reply) {
	t.Helper()
	if w.key == 0 && w.asc == 0 {
		if r.Status != statusGood {
			t.Errorf("%s: status %#x sense %s, want GOOD", what, r.Status, r.senseString())
		}
		return
	}
	if r.Status != statusCheckCondition {
		t.Errorf("%s: status %#x, want CHECK CONDITION %x/%04x", what, r.Status, w.key, w.asc)
		return
	}
	key, ascq, info, valid := r.senseData()
	if key != w.key || ascq != w.asc {
		t.Errorf("%s: sense %x/%04x, want %x/%04x", what, key, ascq, w.key, w.asc)
	}
	if w.info != nil && (!valid || info != *w.info) {
		t.Errorf("%s: INFORMATION %d (valid %v), want %d", what, info, valid, *w.info)
	}
	if w.field != nil {
		cd, b, bit, ok := r.fieldPointer()
		if !ok || cd != w.field.cd || b != w.field.byte || bit != w.field.bit {
			t.Errorf("%s: field pointer cd=%v byte %d bit %d (sksv %v), want cd=%v byte %d bit %d",
				what, cd, b, bit, ok, w.field.cd, w.field.byte, w.field.bit)
		}
	}
}

// CDB builders: flags is byte 1.
func cdb6(op byte, lba uint32, n uint8) []byte {
	return []byte{op, byte(lba >> 16 & 0x1f), byte(lba >> 8), byte(lba), n, 0}
}

func cdb10(op, flags byte, lba uint32, n uint16) []byte {
	c := []byte{op, flags, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], n)
	return c
}

func cdb12(op, flags byte, lba, n uint32) []byte {
	c := make([]byte, 12)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint32(c[6:], n)
	return c
}

func cdb16(op, flags byte, lba uint64, n uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], n)
	return c
}

// pattern returns n bytes that differ from block to block and from any
// other seed's.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>9)
	}
	return b
}

// staticConfig is a DeviceConfig with a fixed unit serial and no ALUA.
type staticConfig struct{ serial string }

func (c *staticConfig) UnitSerial() (string, error)                 { return c.serial, nil }
func (c *staticConfig) PortGroups() ([]handler.PortGroup, error)    { return nil, nil }
func (c *staticConfig) SetPortGroupState(id uint16, st uint8) error { return errors.ErrUnsupported }

// ioRecord is one operation the backend saw.
type ioRecord struct {
	op       handler.Op
	off, len int64
	fua      bool
}

// testBackend wraps the mem backend: it reports the limits the test asks
// for, refuses operations those limits do not allow, records every
// operation, can fail operations and can hold them until released.
type testBackend struct {
	t      testing.TB
	m      *mem.Backend
	lim    handler.Limits
	refuse bool

	mu   sync.Mutex
	ops  []ioRecord
	fail func(io *handler.IO) error
	// mutate may change an operation (its Iov) before mem performs it.
	mutate func(io *handler.IO)
	hold   func(io *handler.IO) bool
	held   []*handler.IO
	// statusFail fails the call-th (from 0) LBAStatuser query when it
	// returns an error.
	statusFail  func(call int) error
	statusCalls int
}

// statusBackend adds mem's LBAStatuser.
type statusBackend struct{ *testBackend }

func (b statusBackend) Status(ctx context.Context, off, length int64) (bool, int64, error) {
	b.mu.Lock()
	fail, call := b.statusFail, b.statusCalls
	b.statusCalls++
	b.mu.Unlock()
	if fail != nil {
		if err := fail(call); err != nil {
			return false, 0, err
		}
	}
	return b.m.Status(ctx, off, length)
}

func (b *testBackend) Limits() handler.Limits { return b.lim }
func (b *testBackend) Close() error           { return b.m.Close() }

func (b *testBackend) Submit(io *handler.IO) {
	b.mu.Lock()
	b.ops = append(b.ops, ioRecord{io.Op, io.Off, io.Len, io.FUA})
	fail, mutate, hold := b.fail, b.mutate, b.hold
	if hold != nil && hold(io) {
		b.held = append(b.held, io)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	if b.refuse && !b.allowed(io.Op) {
		b.t.Errorf("backend got operation %d, which its limits do not allow", io.Op)
		io.Done(syscall.EOPNOTSUPP)
		return
	}
	if fail != nil {
		if err := fail(io); err != nil {
			io.Done(err)
			return
		}
	}
	if mutate != nil {
		mutate(io)
	}
	b.m.Submit(io)
}

func (b *testBackend) allowed(op handler.Op) bool {
	switch op {
	case handler.OpDiscard:
		return b.lim.Discard
	case handler.OpWriteSame:
		return b.lim.WriteSame
	case handler.OpCompareAndWrite:
		return b.lim.CompareAndWrite
	}
	return true
}

// release runs the held operations, in a goroutine as an asynchronous
// backend completes them.
func (b *testBackend) release() {
	b.mu.Lock()
	held := b.held
	b.held, b.hold = nil, nil
	b.mu.Unlock()
	go func() {
		for _, io := range held {
			b.m.Submit(io)
		}
	}()
}

// failStatus makes LBAStatuser queries fail as f says, counting calls from
// now.
func (b *testBackend) failStatus(f func(call int) error) {
	b.mu.Lock()
	b.statusFail, b.statusCalls = f, 0
	b.mu.Unlock()
}

// heldCount returns how many operations are being held.
func (b *testBackend) heldCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.held)
}

// recorded returns the operations seen since the last call, and forgets
// them.
func (b *testBackend) recorded() []ioRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	ops := slices.Clone(b.ops)
	b.ops = b.ops[:0]
	return ops
}

// opsOf returns the kinds of the recorded operations.
func opsOf(recs []ioRecord) []handler.Op {
	var ops []handler.Op
	for _, r := range recs {
		ops = append(ops, r.op)
	}
	return ops
}

// eventually waits for cond, failing the test after 5 seconds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
