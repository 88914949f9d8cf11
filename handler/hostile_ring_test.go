package handler_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/mem"
	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// Offsets into a CMD ring entry (include/uapi/linux/target_core_user.h,
// checked against the header in uio/layout_test.go).
const (
	entryCmdID      = 4
	entryIovCnt     = 8
	entryIovBidiCnt = 12
	entryCdbOff     = 24
	entryIov0Base   = 48
	entryIov0Len    = 56
)

// gate holds a gated backend's IOs while closed, so that commands stay in
// flight in the handler for as long as a test needs.
type gate struct{ ch atomic.Pointer[chan struct{}] }

func (g *gate) hold() { ch := make(chan struct{}); g.ch.Store(&ch) }

func (g *gate) release() {
	if ch := g.ch.Swap(nil); ch != nil {
		close(*ch)
	}
}

type gatedBackend struct {
	handler.Backend
	g *gate
}

func (b gatedBackend) Submit(io *handler.IO) {
	ch := b.g.ch.Load()
	if ch == nil {
		b.Backend.Submit(io)
		return
	}
	go func() {
		<-*ch
		b.Backend.Submit(io)
	}()
}

// gatedHandler serves "gated/<label>" devices from RAM through g.
func gatedHandler(g *gate) handler.Handler {
	return handler.Handler{
		Subtype:     "gated",
		CheckConfig: func(context.Context, string) error { return nil },
		Open: func(_ context.Context, info handler.DeviceInfo, _ zerolog.Logger) (handler.Backend, error) {
			be, err := mem.New(info.Size)
			if err != nil {
				return nil, err
			}
			return gatedBackend{Backend: be, g: g}, nil
		},
	}
}

// lun drives one fake device as an initiator would.
type lun struct {
	t  *testing.T
	fk *uiotest.Kernel
}

// 4 KiB blocks of 512-byte sectors, the fake's block size.
func rw10(op byte, blk uint32) []byte {
	c := []byte{op, 0, 0, 0, 0, 0, 0, 0, 8, 0}
	binary.BigEndian.PutUint32(c[2:], blk*8)
	return c
}

func blockData(blk uint32, gen int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("blk %6d gen %8d|", blk, gen)), 4096/24+1)[:4096]
}

// submit queues req, waiting for ring space as the kernel's qfull queue does.
func (l lun) submit(req uiotest.Request) uint16 {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := l.fk.SubmitWait(ctx, req)
	if err != nil {
		l.t.Fatalf("submit %x: %v", req.CDB, err)
	}
	return id
}

func (l lun) next() uiotest.Completion {
	l.t.Helper()
	select {
	case c := <-l.fk.Completions():
		return c
	case <-time.After(10 * time.Second):
		l.t.Fatal("no completion within 10s")
		return uiotest.Completion{}
	}
}

func (l lun) do(req uiotest.Request) uiotest.Completion {
	l.t.Helper()
	l.submit(req)
	return l.next()
}

// doRetry is do with the retries an initiator makes on BUSY (what a reset
// ring answers).
func (l lun) doRetry(req uiotest.Request) uiotest.Completion {
	l.t.Helper()
	for range 10 {
		if c := l.do(req); c.Status != 0x08 {
			return c
		}
	}
	l.t.Fatalf("%x still BUSY after 10 tries", req.CDB)
	return uiotest.Completion{}
}

func (l lun) write(blk uint32, data []byte) {
	l.t.Helper()
	if c := l.doRetry(uiotest.Request{CDB: rw10(0x2a, blk), DataOut: data}); c.Status != 0 {
		l.t.Fatalf("WRITE block %d: status %#x sense %x", blk, c.Status, c.Sense)
	}
}

func (l lun) read(blk uint32) []byte {
	l.t.Helper()
	c := l.doRetry(uiotest.Request{CDB: rw10(0x28, blk), DataInLen: 4096})
	if c.Status != 0 {
		l.t.Fatalf("READ block %d: status %#x sense %x", blk, c.Status, c.Sense)
	}
	return c.DataIn
}

// hostileSetup is a Manager serving a device that will be fed a hostile
// ring (through a gated backend) and a second, well-behaved one.
func hostileSetup(t *testing.T) (m *handler.Manager, hostile, victim lun, g *gate, files *fakeFiles) {
	k := newFakeKernel(t)
	g = &gate{}
	m = handler.NewManager(zerolog.Nop(), k, []handler.Handler{mem.Handler(), gatedHandler(g)})
	t.Cleanup(func() {
		g.release()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	refA, fa := k.create("tcm-user/1/hostile/gated/a", 1<<20)
	refB, fb := k.create("tcm-user/1/victim/mem/b", 1<<20)
	for _, ref := range []handler.DeviceRef{refA, refB} {
		if err := m.Add(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
	}
	return m, lun{t, fa}, lun{t, fb}, g, k.files[refA.UIOName]
}

// loadVictim writes and reads back the victim's blocks until stop is
// closed, and reports how many round trips it made. Every command must
// succeed and every read return what was last written.
func loadVictim(t *testing.T, v lun, blocks uint32, stop <-chan struct{}) (rounds chan int) {
	rounds = make(chan int, 1)
	go func() {
		n := 0
		defer func() { rounds <- n }()
		for gen := 1; ; gen++ {
			for blk := range blocks {
				select {
				case <-stop:
					return
				default:
				}
				want := blockData(blk, gen)
				if c := v.do(uiotest.Request{CDB: rw10(0x2a, blk), DataOut: want}); c.Status != 0 {
					t.Errorf("victim WRITE block %d: status %#x sense %x", blk, c.Status, c.Sense)
					return
				}
				c := v.do(uiotest.Request{CDB: rw10(0x28, blk), DataInLen: 4096})
				if c.Status != 0 || !bytes.Equal(c.DataIn, want) {
					t.Errorf("victim READ block %d: status %#x, data intact %v", blk, c.Status, bytes.Equal(c.DataIn, want))
					return
				}
				n++
			}
		}
	}()
	return rounds
}

// TestHostileRing feeds one device of a Manager hostile ring entries while
// a second device of the same Manager serves a verifying load. Each
// hostile command fails (CHECK CONDITION, or BUSY when the ring itself had
// to be reset), touches no data, and the device goes on serving; the
// second device never sees an error.
func TestHostileRing(t *testing.T) {
	le := binary.LittleEndian
	m, a, b, g, files := hostileSetup(t)
	const blocks = 16
	for blk := range uint32(blocks) {
		a.write(blk, blockData(blk, 0))
	}
	stop := make(chan struct{})
	rounds := loadVictim(t, b, blocks, stop)

	// Entries whose contents are malformed: the command alone fails with
	// HARDWARE ERROR / INTERNAL TARGET FAILURE and nothing it points at is
	// read or written.
	entryCases := []struct {
		name    string
		read    bool // a READ: its Data-In iovec would be written to
		corrupt func(e []byte)
	}{
		{"cdb_off before the entry", false, func(e []byte) { le.PutUint64(e[entryCdbOff:], 0) }},
		{"cdb_off in the data area", false, func(e []byte) { le.PutUint64(e[entryCdbOff:], uint64(a.fk.DataOff())) }},
		{"cdb_off near 2^64", false, func(e []byte) { le.PutUint64(e[entryCdbOff:], math.MaxUint64-3) }},
		{"iovec outside the map", false, func(e []byte) { le.PutUint64(e[entryIov0Base:], uint64(len(a.fk.Mem()))) }},
		{"iovec in the command ring", true, func(e []byte) { le.PutUint64(e[entryIov0Base:], 128) }},
		{"iovec over the mailbox", true, func(e []byte) { le.PutUint64(e[entryIov0Base:], 0) }},
		{"iovec length past the map", true, func(e []byte) { le.PutUint64(e[entryIov0Len:], uint64(len(a.fk.Mem()))) }},
		{"iovec length wrapping around", false, func(e []byte) { le.PutUint64(e[entryIov0Len:], math.MaxUint64) }},
		{"huge iov_cnt", false, func(e []byte) { le.PutUint32(e[entryIovCnt:], math.MaxUint32) }},
		{"huge iov_bidi_cnt", true, func(e []byte) { le.PutUint32(e[entryIovBidiCnt:], math.MaxUint32) }},
	}
	for i, tc := range entryCases {
		blk := uint32(i % blocks)
		req := uiotest.Request{CDB: rw10(0x2a, blk), DataOut: blockData(blk, 99), Corrupt: tc.corrupt}
		if tc.read {
			req = uiotest.Request{CDB: rw10(0x28, blk), DataInLen: 4096, Corrupt: tc.corrupt}
		}
		c := a.do(req)
		if c.Status != 0x02 || len(c.Sense) < 14 || c.Sense[2]&0xf != 0x4 || c.Sense[12] != 0x44 {
			t.Errorf("%s: status %#x sense %x, want CHECK CONDITION, HARDWARE ERROR 44/00", tc.name, c.Status, c.Sense)
		}
		if got := a.read(blk); !bytes.Equal(got, blockData(blk, 0)) {
			t.Errorf("%s: block %d changed", tc.name, blk)
		}
	}

	// A cmd_id the handler still holds: X is in flight in the backend when
	// Y arrives with X's id. The kernel frees an id only once it has read
	// the completion from the ring, so it cannot have issued X's id again:
	// the ring was corrupted. Answering Y would break the kernel's ring;
	// the daemon resets it instead (once X's write has left the backend),
	// which fails Y with BUSY. (An id whose completion is already in the
	// ring may legitimately come back before our doorbell: see uio's
	// TestCmdIDReusedBeforeDoorbell.)
	g.hold()
	x := a.submit(uiotest.Request{CDB: rw10(0x2a, 1), DataOut: blockData(1, 1)})
	waitInFlight(t, m, "hostile", 1)
	blocks0 := countBlocks(files)
	a.submit(uiotest.Request{CDB: rw10(0x2a, 2), DataOut: blockData(2, 99), Corrupt: func(e []byte) { le.PutUint16(e[entryCmdID:], x) }})
	// Release X only once Y was fetched and broke the ring (the repair
	// blocks the device first): completed earlier, X's id would be free
	// and Y indistinguishable from a command the kernel gave it to.
	for deadline := time.Now().Add(10 * time.Second); countBlocks(files) == blocks0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the ring never broke on the reused cmd_id")
		}
	}
	g.release()
	for range 2 {
		switch c := a.next(); {
		case c.ID == x && (c.Status == 0 || c.Reset && c.Status == 0x08):
		case c.ID != x && c.Reset && c.Status == 0x08:
		default:
			t.Errorf("reused cmd_id: completion %+v, want the other BUSY by a ring reset", c)
		}
	}
	if got := a.read(2); !bytes.Equal(got, blockData(2, 0)) {
		t.Error("reused cmd_id: the command with the reused id was executed")
	}

	// An entry header the ring cannot walk past (length 0): the ring is
	// reset and the command retried.
	c := a.do(uiotest.Request{CDB: rw10(0x28, 3), DataInLen: 4096, Corrupt: func(e []byte) { le.PutUint32(e, uio.OpCmd) }})
	if !c.Reset || c.Status != 0x08 {
		t.Errorf("zero-length entry: completion %+v, want BUSY by a ring reset", c)
	}

	// reset_ring written by someone else while writes are in flight in
	// the backend: the kernel fails them BUSY; their late answers must
	// not land in slots that now hold new commands.
	g.hold()
	for blk := uint32(4); blk < 8; blk++ {
		a.submit(uiotest.Request{CDB: rw10(0x2a, blk), DataOut: blockData(blk, 2)})
	}
	waitInFlight(t, m, "hostile", 4)
	if err := a.fk.ResetRing(uio.ResetBusy); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if c := a.next(); !c.Reset || c.Status != 0x08 {
			t.Errorf("write in flight across reset_ring: %+v, want BUSY by the reset", c)
		}
	}
	g.release()
	waitInFlight(t, m, "hostile", 0)
	for blk := uint32(4); blk < 8; blk++ {
		a.write(blk, blockData(blk, 3)) // the initiator's retry, newer data
	}
	for blk := range uint32(blocks) {
		want := blockData(blk, 0)
		switch {
		case blk == 1:
			want = blockData(blk, 1)
		case blk >= 4 && blk < 8:
			want = blockData(blk, 3)
		}
		if got := a.read(blk); !bytes.Equal(got, want) {
			t.Errorf("hostile device block %d: %.24q, want %.24q", blk, got, want)
		}
	}
	if a.fk.Broken() {
		t.Error("the fake kernel found the hostile device's ring broken")
	}

	close(stop)
	n := <-rounds
	if n == 0 {
		t.Error("the victim device served nothing meanwhile")
	}
	if b.fk.Broken() || b.fk.Outstanding() != 0 {
		t.Errorf("victim ring: broken %v, %d commands left", b.fk.Broken(), b.fk.Outstanding())
	}
	if st := m.Status(); len(st) != 2 {
		t.Errorf("devices served: %+v, want both", st)
	}
	t.Logf("%d hostile entries refused, 3 ring resets, victim served %d verified write+read rounds meanwhile", len(entryCases), n)
}

// TestRingBrokenOverAndOver: a ring corrupted again after every repair is
// given up after a few resets (its commands then wait for the retry after
// a backoff, TestRingGivenUpIsRetried, or the kernel's timeout), and the
// daemon and the other device carry on.
func TestRingBrokenOverAndOver(t *testing.T) {
	_, a, b, _, _ := hostileSetup(t)
	zeroLen := func(e []byte) { binary.LittleEndian.PutUint32(e, uio.OpCmd) }
	resets := 0
	for range 10 {
		a.submit(uiotest.Request{CDB: rw10(0x28, 0), DataInLen: 4096, Corrupt: zeroLen})
		select {
		case c := <-a.fk.Completions():
			if !c.Reset {
				t.Fatalf("corrupt entry answered %+v, want a ring reset", c)
			}
			resets++
			continue
		case <-time.After(time.Second):
		}
		break
	}
	if resets == 0 || resets >= 10 {
		t.Fatalf("%d ring resets before giving up, want a few", resets)
	}
	b.write(0, blockData(0, 1))
	if got := b.read(0); !bytes.Equal(got, blockData(0, 1)) {
		t.Error("other device: data differs")
	}
	t.Logf("gave up after %d ring resets", resets)
}

// waitInFlight waits until the named device has n backend IOs in flight.
func waitInFlight(t *testing.T, m *handler.Manager, name string, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, st := range m.Status() {
			if st.Name == name && st.InFlight == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never had %d IOs in flight: %+v", name, n, m.Status())
		}
		time.Sleep(time.Millisecond)
	}
}

// countBlocks counts the block_dev=1 writes made so far.
func countBlocks(f *fakeFiles) int {
	n := 0
	for _, a := range f.took() {
		if a == "block" {
			n++
		}
	}
	return n
}

// retryTimers stands in for the timers of a command loop that gave up:
// each give-up asks for one, and the test fires it.
type retryTimers chan retryTimer

type retryTimer struct {
	delay time.Duration
	fire  chan time.Time
}

func (r retryTimers) after(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	r <- retryTimer{d, ch}
	return ch
}

// next waits for the loop to give up and returns its timer.
func (r retryTimers) next(t *testing.T) retryTimer {
	t.Helper()
	select {
	case tm := <-r:
		return tm
	case <-time.After(10 * time.Second):
		t.Fatal("the command loop did not give up")
		return retryTimer{}
	}
}

// givenUp checks the status of a device whose loop gave up.
func givenUp(t *testing.T, m *handler.Manager, name string, giveUps uint64, next time.Duration) {
	t.Helper()
	st := state(m, name)
	if st.State != "given-up" || st.GiveUps != giveUps || !strings.Contains(st.Reason, "next retry in "+next.String()) {
		t.Fatalf("status %+v, want given-up %d times, next retry in %v", st, giveUps, next)
	}
	for _, s := range m.Stats() {
		if s.Name == name && (s.State != "given-up" || s.GiveUps != giveUps) {
			t.Errorf("stats: state %q, give-ups %d", s.State, s.GiveUps)
		}
	}
}

// TestRingGivenUpIsRetried: a device whose ring broke too often is
// retried after a backoff; while the ring keeps breaking it gives up
// again at once with twice the backoff, and once the ring is healthy the
// retry serves it again, data intact, with the other device serving all
// along.
func TestRingGivenUpIsRetried(t *testing.T) {
	m, a, b, _, _ := hostileSetup(t)
	timers := make(retryTimers, 16)
	m.SetGiveUpBackoff(time.Minute, 4*time.Minute, timers.after)
	a.write(0, blockData(0, 1))
	zeroLen := uiotest.Request{CDB: rw10(0x28, 0), DataInLen: 4096, Corrupt: func(e []byte) { binary.LittleEndian.PutUint32(e, uio.OpCmd) }}
	for i := range 5 {
		if c := a.do(zeroLen); !c.Reset || c.Status != 0x08 {
			t.Fatalf("corrupt entry %d: %+v, want BUSY by a ring reset", i, c)
		}
	}
	a.submit(zeroLen)
	tm := timers.next(t)
	if tm.delay != time.Minute {
		t.Errorf("first retry after %v, want the minimum", tm.delay)
	}
	givenUp(t, m, "hostile", 1, time.Minute)
	b.write(0, blockData(0, 1))

	// Still hostile: the retry resets the ring (the corrupt command goes
	// back BUSY) and the next corrupt entry gives up again, at once.
	tm.fire <- time.Now()
	if c := a.next(); !c.Reset || c.Status != 0x08 {
		t.Fatalf("the retry's reset: %+v, want BUSY", c)
	}
	a.submit(zeroLen)
	tm = timers.next(t)
	if tm.delay != 2*time.Minute {
		t.Errorf("second retry after %v, want twice the first", tm.delay)
	}
	givenUp(t, m, "hostile", 2, 2*time.Minute)

	// Healthy again: the retry serves.
	tm.fire <- time.Now()
	if c := a.next(); !c.Reset || c.Status != 0x08 {
		t.Fatalf("the retry's reset: %+v, want BUSY", c)
	}
	if got := a.read(0); !bytes.Equal(got, blockData(0, 1)) {
		t.Error("block 0 changed")
	}
	a.write(1, blockData(1, 2))
	if got := a.read(1); !bytes.Equal(got, blockData(1, 2)) {
		t.Error("block 1 not as written after the retry")
	}
	if st := state(m, "hostile"); st.State != "running" || st.GiveUps != 2 || st.Reason != "" {
		t.Errorf("status after the retry: %+v", st)
	}
	if got := b.read(0); !bytes.Equal(got, blockData(0, 1)) {
		t.Error("other device: data differs")
	}
	select {
	case tm := <-timers:
		t.Errorf("another give-up after the ring healed: %+v", tm)
	default:
	}
}

// TestLoopFaultIsRetried: a fault the command loop recovered from (a
// panic serving a command) gives the loop up; it is retried after the
// backoff and serves again.
func TestLoopFaultIsRetried(t *testing.T) {
	m, a, _, _, files := hostileSetup(t)
	timers := make(retryTimers, 16)
	m.SetGiveUpBackoff(time.Second, time.Minute, timers.after)
	a.write(0, blockData(0, 1))
	files.panicSerial.Store(true)
	// INQUIRY, unit serial number page.
	a.submit(uiotest.Request{CDB: []byte{0x12, 1, 0x80, 0, 255, 0}, DataInLen: 255})
	tm := timers.next(t)
	givenUp(t, m, "hostile", 1, time.Second)
	if st := state(m, "hostile"); !strings.Contains(st.Reason, "fault") {
		t.Errorf("reason %q does not name the fault", st.Reason)
	}
	files.panicSerial.Store(false)
	tm.fire <- time.Now()
	if c := a.next(); !c.Reset || c.Status != 0x08 {
		t.Fatalf("the command that faulted: %+v, want BUSY by the retry's reset", c)
	}
	if got := a.read(0); !bytes.Equal(got, blockData(0, 1)) {
		t.Error("block 0 changed")
	}
	if st := state(m, "hostile"); st.State != "running" {
		t.Errorf("status after the retry: %+v", st)
	}
	select {
	case tm := <-timers:
		t.Errorf("another give-up after the retry: %+v", tm)
	default:
	}
}
