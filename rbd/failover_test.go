//go:build !nautilus

package rbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cephrbd "github.com/ceph/go-ceph/rbd"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// Several gateways on one image, each a handler.Device over its own rbd
// backend (its own handler, so its own RADOS client) and its own fake
// kernel: the lock gate of handler/lockgate against a real cluster.

// SCSI status and sense the failover tests look for.
const (
	scsiGood       = 0x00
	scsiCheck      = 0x02
	scsiBusy       = 0x08
	senseNotReady  = 0x02
	blockSize      = 512
	failoverObject = 4 << 20 // image object size (order 22)
)

// gateway is one gotcmu instance serving the image: a device loop over a
// fake kernel, and a goroutine handing each completion to its submitter.
type gateway struct {
	name string
	im   *Image
	dev  *handler.Device
	k    *uiotest.Kernel
}

func startGateway(t *testing.T, name, config string, size int64, hold time.Duration, cfg handler.DeviceConfig) *gateway {
	t.Helper()
	h := Handler(Options{Host: name})
	log := testLogger(t).With().Str("gw", name).Logger()
	info := handler.DeviceInfo{Name: name, Config: config, Size: size, BlockSize: blockSize, MaxSectors: 1024}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	be, err := h.Open(ctx, info, log)
	cancel()
	if err != nil {
		t.Fatalf("open %s on %s: %v", config, name, err)
	}
	// The doorbell fd lets librbd's thread answer as with a real ring.
	k := uiotest.New(t, uiotest.Config{DataSize: 4 << 20, DoorbellFD: true})
	dev, err := handler.NewDevice(log, info, k.Ring(), k, be, cfg)
	if err != nil {
		be.Close()
		t.Fatal(err)
	}
	if _, ok := dev.LockStatus(); !ok {
		t.Fatalf("the rbd backend got no lock gate")
	}
	dev.SetLockHoldDown(hold)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dev.Run(runCtx) }()
	go func() {
		for c := range k.Completions() {
			c.Tag.(chan uiotest.Completion) <- c
		}
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("%s: Run: %v", name, err)
		}
		for dev.InFlight() > 0 {
			time.Sleep(time.Millisecond)
		}
		if err := dev.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	})
	return &gateway{name: name, im: be.(*Image), dev: dev, k: k}
}

// exec sends one command through the gateway's ring and waits for its
// completion.
func (g *gateway) exec(ctx context.Context, cdb, out []byte, inLen int) (uiotest.Completion, error) {
	ch := make(chan uiotest.Completion, 1)
	if _, err := g.k.SubmitWait(ctx, uiotest.Request{CDB: cdb, DataOut: out, DataInLen: inLen, Tag: ch}); err != nil {
		return uiotest.Completion{}, err
	}
	select {
	case c := <-ch:
		return c, nil
	case <-time.After(2 * time.Minute):
		return uiotest.Completion{}, fmt.Errorf("%s: command %#02x not completed within 2 minutes", g.name, cdb[0])
	}
}

func (g *gateway) lock(t *testing.T) handler.LockStatus {
	t.Helper()
	s, _ := g.dev.LockStatus()
	return s
}

func rw10(op byte, off int64, n int) []byte {
	cdb := make([]byte, 10)
	cdb[0] = op
	binary.BigEndian.PutUint32(cdb[2:], uint32(off/blockSize))
	binary.BigEndian.PutUint16(cdb[7:], uint16(n/blockSize))
	return cdb
}

func write10(off int64, data []byte) []byte { return rw10(0x2a, off, len(data)) }

// outcome classifies a completion.
func outcome(c uiotest.Completion) string {
	switch {
	case c.Status == scsiGood:
		return "GOOD"
	case c.Status == scsiBusy:
		return "BUSY"
	case c.Status == scsiCheck && len(c.Sense) > 13 && c.Sense[2]&0xf == senseNotReady && c.Sense[12] == 0x04 && c.Sense[13] == 0x0b:
		return "STANDBY"
	case c.Status == scsiCheck && len(c.Sense) > 13:
		return fmt.Sprintf("CHECK %x/%02x/%02x", c.Sense[2]&0xf, c.Sense[12], c.Sense[13])
	}
	return fmt.Sprintf("status %#x", c.Status)
}

// writeRetryingBusy writes as the SCSI midlayer does with BUSY: the same
// command again on the same path until it is answered otherwise.
func (g *gateway) writeRetryingBusy(ctx context.Context, off int64, data []byte) (uiotest.Completion, int, error) {
	for busy := 0; ; busy++ {
		c, err := g.exec(ctx, write10(off, data), data, 0)
		if err != nil || c.Status != scsiBusy {
			return c, busy, err
		}
		select {
		case <-ctx.Done():
			return c, busy, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// pattern is a block-sized stamp, repeated: who wrote it and a sequence
// number, so that the image shows which write landed last.
func pattern(n int, who byte, seq uint64) []byte {
	b := make([]byte, n)
	for off := 0; off < n; off += 16 {
		b[off] = who
		binary.BigEndian.PutUint64(b[off+8:], seq)
	}
	return b
}

func stampAt(b []byte) (byte, uint64) { return b[0], binary.BigEndian.Uint64(b[8:]) }

// readImage reads the image with a client of its own, as a third party.
func readImage(t *testing.T, name string, off int64, n int) []byte {
	t.Helper()
	ioctx, err := needCeph(t).OpenIOContext("rbd")
	if err != nil {
		t.Fatal(err)
	}
	defer ioctx.Destroy()
	img, err := cephrbd.OpenImageReadOnly(ioctx, name, cephrbd.NoSnapshot)
	if err != nil {
		t.Fatalf("open %s read-only: %v", name, err)
	}
	defer img.Close()
	buf := make([]byte, n)
	if _, err := img.ReadAt(buf, off); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return buf
}

// sentWrite is one write gateway A sent after B started taking over.
type sentWrite struct {
	slot     int
	seq      uint64
	sent     time.Time
	answered time.Time
	outcome  string
}

// TestFailoverFencing: writes go through A; I/O arrives at B and B takes
// the lock. Every write A had in flight or sends later must fail, and none
// may land after B's first write: B's first write covers every block A
// writes, within one RADOS object (so one OSD operation), and the image
// must hold B's data there afterwards although A keeps writing distinct
// stamps. A's later writes are answered BUSY, then refused as at a
// standby port during the hold-down; A takes the lock back only through
// the same protocol, which fences B in turn.
// TestReadsAndWritesAnsweredOnLibrbdThread: with the lock held, every
// plain read and write a gateway serves is answered GOOD on librbd's
// callback thread (aio.h), each with its data, and the device drains.
func TestReadsAndWritesAnsweredOnLibrbdThread(t *testing.T) {
	needCeph(t)
	const size = 4 << 20
	name := newImage(t, "rbd", size, 22)
	g := startGateway(t, "gwc", "rbd/"+name, size, time.Second, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if c, _, err := g.writeRetryingBusy(ctx, 0, pattern(4096, 'C', 0)); err != nil || c.Status != scsiGood {
		t.Fatalf("first write: %s, %v", outcome(c), err)
	}
	if err := g.dev.WaitIdle(ctx); err != nil { // its answer settled
		t.Fatal(err)
	}
	before := g.im.answeredC.Load()
	const n = 32
	for i := range n {
		data := pattern(8192, 'C', uint64(i))
		off := int64(i) * 8192
		if c, err := g.exec(ctx, write10(off, data), data, 0); err != nil || c.Status != scsiGood {
			t.Fatalf("write %d: %s, %v", i, outcome(c), err)
		}
		c, err := g.exec(ctx, rw10(0x28, off, len(data)), nil, len(data))
		if err != nil || c.Status != scsiGood || !bytes.Equal(c.DataIn, data) {
			t.Fatalf("read %d: %s, %v, data as written: %v", i, outcome(c), err, bytes.Equal(c.DataIn, data))
		}
	}
	if err := g.dev.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := g.im.answeredC.Load() - before; got != 2*n {
		t.Errorf("%d of %d reads and writes answered on librbd's thread", got, 2*n)
	}
}

func TestFailoverFencing(t *testing.T) {
	needCeph(t)
	const (
		size    = 2 * failoverObject
		region  = 256 << 10 // A's blocks and B's first write: object 0
		slotLen = 4096
		slots   = region / slotLen
		hold    = 3 * time.Second
	)
	name := newImage(t, "rbd", size, 22)
	config := "rbd/" + name
	a := startGateway(t, "gwa", config, size, hold, nil)
	b := startGateway(t, "gwb", config, size, hold, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The first write at A is BUSY while A takes the lock.
	c, busy, err := a.writeRetryingBusy(ctx, 0, pattern(slotLen, 'A', 0))
	if err != nil || c.Status != scsiGood {
		t.Fatalf("first write at A: %s, %v", outcome(c), err)
	}
	if busy == 0 {
		t.Error("the first write at a gateway without the lock was not BUSY")
	}
	if s := a.lock(t); s.State != "locked" || s.Acquisitions != 1 {
		t.Fatalf("A after its first write: %+v", s)
	}

	// A writes continuously, 16 at a time, a new stamp each time.
	var (
		mu        sync.Mutex
		sent      []sentWrite
		seq       atomic.Uint64
		stopA     = make(chan struct{})
		writersWG sync.WaitGroup
	)
	for w := range 16 {
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			for i := 0; ; i++ {
				select {
				case <-stopA:
					return
				default:
				}
				slot := (w + 16*i) % slots
				s := seq.Add(1)
				data := pattern(slotLen, 'A', s)
				sw := sentWrite{slot: slot, seq: s, sent: time.Now()}
				c, err := a.exec(ctx, write10(int64(slot*slotLen), data), data, 0)
				if err != nil {
					t.Error(err)
					return
				}
				sw.answered, sw.outcome = time.Now(), outcome(c)
				mu.Lock()
				sent = append(sent, sw)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)

	// I/O arrives at B: B takes over with a write of the whole region.
	bStart := time.Now()
	c, busy, err = b.writeRetryingBusy(ctx, 0, pattern(region, 'B', 1))
	bFirst := time.Now()
	if err != nil || c.Status != scsiGood {
		t.Fatalf("first write at B: %s, %v", outcome(c), err)
	}
	t.Logf("B took the lock in %v (%d BUSY answers)", bFirst.Sub(bStart).Round(time.Millisecond), busy)
	// A keeps sending for a second after B's first write, inside the
	// hold-down.
	time.Sleep(time.Second)
	close(stopA)
	writersWG.Wait()

	// Content: every block of the region holds B's stamp.
	img := readImage(t, name, 0, region)
	for off := 0; off < region; off += blockSize {
		if who, s := stampAt(img[off:]); who != 'B' || s != 1 {
			t.Errorf("block at %d holds %c#%d after B's first write, want B#1", off, who, s)
		}
	}

	// Answers: nothing A sent after B's first write succeeded; what A had
	// in flight when B started either landed before (and B overwrote it)
	// or failed.
	counts := map[string]map[string]int{"in flight at takeover": {}, "sent after B's first write": {}}
	for _, w := range sent {
		switch {
		case !w.sent.Before(bFirst):
			counts["sent after B's first write"][w.outcome]++
			if w.outcome == "GOOD" {
				t.Errorf("A's write %d sent %v after B's first write succeeded", w.seq, w.sent.Sub(bFirst))
			}
		case w.answered.After(bStart):
			counts["in flight at takeover"][w.outcome]++
		}
	}
	t.Logf("A's writes by outcome: %v", counts)
	after := counts["sent after B's first write"]
	if after["BUSY"]+after["STANDBY"] == 0 {
		t.Error("A sent no write after B's first write, or none was refused: the test proves nothing")
	}
	for o := range after {
		if o != "BUSY" && o != "STANDBY" {
			t.Errorf("A's late writes answered %s, want only BUSY or standby", o)
		}
	}
	if after["STANDBY"] == 0 {
		t.Error("no write at A was refused during the hold-down")
	}
	if s := a.lock(t); s.Losses != 1 || s.Acquisitions != 1 {
		t.Errorf("A's lock after the takeover: %+v", s)
	}

	// A takes the lock back only through the same protocol: refused
	// during the hold-down, then BUSY while it breaks B's lock, then
	// served; B is fenced in turn.
	var refused, busyBack int
	deadline := time.Now().Add(hold + time.Minute)
	for {
		c, err := a.exec(ctx, write10(0, pattern(slotLen, 'C', 2)), pattern(slotLen, 'C', 2), 0)
		if err != nil {
			t.Fatal(err)
		}
		if o := outcome(c); o == "GOOD" {
			break
		} else if o == "STANDBY" {
			refused++
		} else if o == "BUSY" {
			busyBack++
		} else {
			t.Fatalf("write at A after the hold-down: %s", o)
		}
		if time.Now().After(deadline) {
			t.Fatal("A did not get the lock back within the hold-down and a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if busyBack == 0 {
		t.Error("A got the lock back without a BUSY answer: not through the protocol")
	}
	if s := a.lock(t); s.State != "locked" || s.Acquisitions != 2 {
		t.Errorf("A after taking the lock back: %+v", s)
	}
	c, err = b.exec(ctx, write10(slotLen, pattern(slotLen, 'D', 3)), pattern(slotLen, 'D', 3), 0)
	if err != nil || c.Status != scsiBusy {
		t.Errorf("B's write after A took the lock back: %s, %v; want BUSY", outcome(c), err)
	}
	img = readImage(t, name, 0, 2*slotLen)
	if who, s := stampAt(img); who != 'C' || s != 2 {
		t.Errorf("block 0 holds %c#%d, want A's last write C#2", who, s)
	}
	if who, s := stampAt(img[slotLen:]); who != 'B' || s != 1 {
		t.Errorf("block at %d holds %c#%d, want B#1: B's write after it was fenced landed", slotLen, who, s)
	}
	t.Logf("A took the lock back after %d standby and %d BUSY answers; A %+v; B %+v", refused, busyBack, a.lock(t), b.lock(t))
}

// multipath is an initiator with one path per gateway, as dm-multipath
// with path_grouping_policy multibus (the misconfiguration that sends I/O
// to both gateways) over Linux SCSI: every write goes to the next usable
// path; BUSY is retried on the same path (the midlayer requeues it); a
// NOT READY answer is a path error (BLK_STS_IOERR, or BLK_STS_TRANSPORT
// for 04/0A), so the path is failed and the write requeued on another
// one; the path checker (TUR, which the gate never refuses) reinstates a
// failed path after recheck; with no usable path the write is queued
// (no_path_retry queue).
type multipath struct {
	paths   []*gateway
	recheck time.Duration
	next    atomic.Uint64
	failed  []atomic.Int64 // unix nanoseconds until which a path is failed

	good, busy, refused []atomic.Uint64 // per path
}

func newMultipath(recheck time.Duration, paths ...*gateway) *multipath {
	n := len(paths)
	return &multipath{paths: paths, recheck: recheck, failed: make([]atomic.Int64, n),
		good: make([]atomic.Uint64, n), busy: make([]atomic.Uint64, n), refused: make([]atomic.Uint64, n)}
}

// pick returns the next usable path, waiting while there is none.
func (m *multipath) pick(ctx context.Context) (int, error) {
	for {
		now := time.Now().UnixNano()
		for range m.paths {
			i := int(m.next.Add(1) % uint64(len(m.paths)))
			if m.failed[i].Load() <= now {
				return i, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// hangAfter bounds one write through the multipath device: far beyond a
// lock move, so a write still unanswered then is a hang.
const hangAfter = time.Minute

func (m *multipath) write(ctx context.Context, off int64, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, hangAfter)
	defer cancel()
	err := m.writeOnce(ctx, off, data)
	if err != nil && ctx.Err() != nil {
		for _, g := range m.paths {
			s, _ := g.dev.LockStatus()
			err = fmt.Errorf("%w; %s: lock %+v, %d IO in flight", err, g.name, s, g.dev.InFlight())
		}
	}
	return err
}

func (m *multipath) writeOnce(ctx context.Context, off int64, data []byte) error {
	for {
		i, err := m.pick(ctx)
		if err != nil {
			return err
		}
		for {
			c, err := m.paths[i].exec(ctx, write10(off, data), data, 0)
			if err != nil {
				return err
			}
			switch o := outcome(c); o {
			case "GOOD":
				m.good[i].Add(1)
				return nil
			case "BUSY":
				m.busy[i].Add(1)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
				continue
			case "STANDBY":
				m.refused[i].Add(1)
				m.failed[i].Store(time.Now().Add(m.recheck).UnixNano())
			default:
				return fmt.Errorf("write at %s: %s", m.paths[i].name, o)
			}
			break
		}
	}
}

// load runs writers through m for d: each writer owns slots of its own
// and writes them in turn with new stamps, so the image must end up
// holding, in every slot, the last stamp acknowledged for it. It returns
// how many writes were acknowledged.
func load(t *testing.T, m *multipath, name string, d time.Duration, writers, slotsPer, slotLen int) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+3*time.Minute)
	defer cancel()
	last := make([]uint64, writers*slotsPer)
	var acked atomic.Uint64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				slot := w*slotsPer + i%slotsPer
				s := uint64(w)<<40 | uint64(i+1)
				if err := m.write(ctx, int64(slot*slotLen), pattern(slotLen, 'W', s)); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				last[slot] = s
				acked.Add(1)
			}
		}()
	}
	wg.Wait()
	img := readImage(t, name, 0, len(last)*slotLen)
	for slot, want := range last {
		if want == 0 {
			continue
		}
		if who, s := stampAt(img[slot*slotLen:]); who != 'W' || s != want {
			t.Errorf("slot %d holds %c#%#x, want the last acknowledged write #%#x", slot, who, s, want)
		}
	}
	return acked.Load()
}

func acquisitions(t *testing.T, gws ...*gateway) uint64 {
	var n uint64
	for _, g := range gws {
		n += g.lock(t).Acquisitions
	}
	return n
}

// TestFailoverNoPingPong: an initiator sends writes to both gateways at
// once for a fixed run. With the hold-down, the lock moves at most once
// per hold-down period; throughput stays within a stated fraction of one
// path's. The same load without hold-down (tcmu-runner's behaviour) is
// measured for comparison.
func TestFailoverNoPingPong(t *testing.T) {
	needCeph(t)
	const (
		size     = failoverObject
		writers  = 8
		slotsPer = 16
		slotLen  = 4096
		recheck  = time.Second // dm-multipath polling_interval, scaled down from 5 s
		// hold is the hold-down, scaled down from DefaultHoldDown's 30 s
		// so that the run sees the lock move several times.
		hold = 10 * time.Second
		// minFraction is the throughput of I/O to both gateways that the
		// hold-down must keep, as a fraction of one path's: each move of
		// the lock stalls I/O for about the time Ceph takes to blocklist
		// the owner (a Paxos round, about a second on this machine), at
		// most once per hold-down.
		minFraction = 0.6
	)
	run, single := 30*time.Second, 5*time.Second

	// One path, before and after: the throughput to compare with, on a
	// machine whose load varies.
	name := newImage(t, "rbd", size, 22)
	a := startGateway(t, "gwa", "rbd/"+name, size, hold, nil)
	onePath := func() float64 {
		return float64(load(t, newMultipath(recheck, a), name, single, writers, slotsPer, slotLen)) / single.Seconds()
	}
	base1 := onePath()
	if acquisitions(t, a) != 1 {
		t.Errorf("one path took the lock %d times, want 1", acquisitions(t, a))
	}

	// Both paths, with the hold-down.
	b := startGateway(t, "gwb", "rbd/"+name, size, hold, nil)
	before := acquisitions(t, a, b)
	m := newMultipath(recheck, a, b)
	both := float64(load(t, m, name, run, writers, slotsPer, slotLen)) / run.Seconds()
	moves := acquisitions(t, a, b) - before
	// From here on without hold-down, as tcmu-runner behaves: first one
	// path again, then both.
	a.dev.SetLockHoldDown(0)
	b.dev.SetLockHoldDown(0)
	base := (base1 + onePath()) / 2
	// Moves of the lock are at least a hold-down apart: a gateway that
	// lost the lock refuses writes for the hold-down after noticing, so
	// the one after it can take the lock only that much later.
	bound := uint64(1 + run/hold)
	frac := both / base
	t.Logf("one path: %.0f writes/s; both paths with a %v hold-down for %v: %.0f writes/s (%.2f of one path), "+
		"%d lock moves (bound %d); per path good/busy/refused: A %d/%d/%d, B %d/%d/%d",
		base, hold, run, both, frac, moves, bound,
		m.good[0].Load(), m.busy[0].Load(), m.refused[0].Load(), m.good[1].Load(), m.busy[1].Load(), m.refused[1].Load())
	if moves > bound {
		t.Errorf("the lock moved %d times in %v with a %v hold-down, bound %d", moves, run, hold, bound)
	}
	if frac < minFraction {
		t.Errorf("throughput to both gateways is %.2f of one path's, want at least %.2f", frac, minFraction)
	}

	before = acquisitions(t, a, b)
	m0 := newMultipath(recheck, a, b)
	noHold := float64(load(t, m0, name, single, writers, slotsPer, slotLen)) / single.Seconds()
	moves0 := acquisitions(t, a, b) - before
	t.Logf("both paths without hold-down for %v: %.0f writes/s (%.2f of one path), %d lock moves",
		single, noHold, noHold/base, moves0)
}

// explicitGroups is a gateway's configfs ALUA view for explicit ALUA, in
// memory: group 1 holds gateway A's port, group 2 gateway B's; local says
// which one is this gateway's (enabled). SetPortGroupState changes it as
// configfs would.
type explicitGroups struct {
	mu     sync.Mutex
	groups []handler.PortGroup
}

func newExplicitGroups(local uint16) *explicitGroups {
	const sup = 0x80 | 0x04 | 0x02 | 0x01 // T, S, ANO, AO
	g := &explicitGroups{}
	for id := uint16(1); id <= 2; id++ {
		g.groups = append(g.groups, handler.PortGroup{
			Name: fmt.Sprintf("gw%d", id), ID: id, State: 2, Supported: sup, Explicit: true,
			Ports: []handler.TargetPort{{RelativeID: id, ProtocolID: 5, TargetName: "iqn.2026-01.test:explicit", TPGT: id, Enabled: id == local}},
		})
	}
	return g
}

func (g *explicitGroups) UnitSerial() (string, error) { return "explicit", nil }

func (g *explicitGroups) PortGroups() ([]handler.PortGroup, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]handler.PortGroup, len(g.groups))
	copy(out, g.groups)
	return out, nil
}

func (g *explicitGroups) SetPortGroupState(id uint16, state uint8) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.groups {
		if g.groups[i].ID == id {
			g.groups[i].State = state
		}
	}
	return nil
}

// stpg is SET TARGET PORT GROUPS making group ao active/optimized and
// group sb standby.
func stpg(ao, sb uint16) (cdb, list []byte) {
	list = []byte{0, 0, 0, 0, 0, 0, byte(ao >> 8), byte(ao), 2, 0, byte(sb >> 8), byte(sb)}
	cdb = []byte{0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, byte(len(list)), 0, 0}
	return cdb, list
}

// TestFailoverExplicitTransition: with explicit ALUA, SET TARGET PORT
// GROUPS that makes a gateway's group active/optimized completes once
// that gateway holds the image's lock, so the previous owner is fenced
// before the initiator sends its first write to the new one.
func TestFailoverExplicitTransition(t *testing.T) {
	needCeph(t)
	const size = failoverObject
	name := newImage(t, "rbd", size, 22)
	a := startGateway(t, "gwa", "rbd/"+name, size, time.Second, newExplicitGroups(1))
	b := startGateway(t, "gwb", "rbd/"+name, size, time.Second, newExplicitGroups(2))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cdb, list := stpg(1, 2)
	if c, err := a.exec(ctx, cdb, list, 0); err != nil || c.Status != scsiGood {
		t.Fatalf("SET TARGET PORT GROUPS at A: %s, %v", outcome(c), err)
	}
	if s := a.lock(t); s.State != "locked" {
		t.Fatalf("A after its group became active/optimized: %+v", s)
	}
	// No BUSY: the lock was taken before the command completed.
	if c, err := a.exec(ctx, write10(0, pattern(4096, 'A', 1)), pattern(4096, 'A', 1), 0); err != nil || c.Status != scsiGood {
		t.Fatalf("first write at A: %s, %v", outcome(c), err)
	}

	cdb, list = stpg(2, 1)
	if c, err := b.exec(ctx, cdb, list, 0); err != nil || c.Status != scsiGood {
		t.Fatalf("SET TARGET PORT GROUPS at B: %s, %v", outcome(c), err)
	}
	if s := b.lock(t); s.State != "locked" {
		t.Fatalf("B after its group became active/optimized: %+v", s)
	}
	if c, err := b.exec(ctx, write10(0, pattern(4096, 'B', 2)), pattern(4096, 'B', 2), 0); err != nil || c.Status != scsiGood {
		t.Fatalf("first write at B: %s, %v", outcome(c), err)
	}
	// A was fenced by the transition: its write fails and does not land.
	if c, err := a.exec(ctx, write10(0, pattern(4096, 'X', 3)), pattern(4096, 'X', 3), 0); err != nil || c.Status == scsiGood {
		t.Fatalf("write at A after B's transition: %s, %v; want it refused", outcome(c), err)
	}
	if who, s := stampAt(readImage(t, name, 0, 4096)); who != 'B' || s != 2 {
		t.Fatalf("block 0 holds %c#%d, want B#2", who, s)
	}
}
