package handler_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/mem"
	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// The command loop's own cost: commands per second, CPU nanoseconds and
// allocations per command through a real Device (Run: drain, execute,
// complete, doorbell) over the fake kernel's region, with backends that
// do no work. Run them with
//
//	go test -run '^$' -bench CommandLoop -benchmem -count 10 ./handler | tee new.txt
//
// and compare runs with benchstat. The metrics:
//
//	ns/op       wall time per command (one op is one command)
//	cpu-ns/cmd  CPU time of the whole process per command: 1e9/cpu-ns/cmd
//	            is commands per second per core
//	allocs/op   heap allocations per command, every goroutine included
//
// Two kernels drive the loop. "lean" writes ring entries straight into the
// region the way queue_cmd_ring does and reclaims them from cmd_tail, with
// no bookkeeping of its own, so the figures are the handler's alone
// (TestCommandLoopAllocs holds them at zero allocations). "uiotest" goes
// through uiotest.Kernel, the full fake with its per-command bookkeeping
// (allocations included), at a steady queue depth.

// benchBlocks is the size of the benchmark device in 512-byte blocks.
const benchBlocks = 64 << 20 / 512

// nullBackend completes every IO inside Submit and touches no data, like
// the mem backend does with nothing to copy.
type nullBackend struct{}

func (nullBackend) Submit(io *handler.IO)  { io.Done(nil) }
func (nullBackend) Limits() handler.Limits { return handler.Limits{} }
func (nullBackend) Close() error           { return nil }

// asyncBackend completes every IO from one goroutine of its own, as the
// rbd backend's completion goroutine does.
type asyncBackend struct {
	q    chan *handler.IO
	done chan struct{}
}

func newAsyncBackend() *asyncBackend {
	b := &asyncBackend{q: make(chan *handler.IO, 1024), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for io := range b.q {
			io.Done(nil)
		}
	}()
	return b
}

func (b *asyncBackend) Submit(io *handler.IO)  { b.q <- io }
func (b *asyncBackend) Limits() handler.Limits { return handler.Limits{} }
func (b *asyncBackend) Close() error {
	close(b.q)
	<-b.done
	return nil
}

// polledBackend finishes every IO on a goroutine of its own, as librbd's
// thread does, and signals an eventfd; the device's polled loop delivers
// the completions (handler.Poller), as with the rbd backend.
type polledBackend struct {
	q        chan *handler.IO
	done     chan struct{}
	efd      int
	mu       sync.Mutex
	finished []*handler.IO
	spare    []*handler.IO
	// buf takes the eventfd's count: a field, since a local array
	// handed to a system call escapes in race builds.
	buf [8]byte
}

func newPolledBackend(tb testing.TB) *polledBackend {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		tb.Fatal(err)
	}
	b := &polledBackend{q: make(chan *handler.IO, 1024), done: make(chan struct{}), efd: efd,
		finished: make([]*handler.IO, 0, 1024), spare: make([]*handler.IO, 0, 1024)}
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	go func() {
		defer close(b.done)
		for io := range b.q {
			b.mu.Lock()
			b.finished = append(b.finished, io)
			b.mu.Unlock()
			unix.Write(efd, one)
		}
	}()
	return b
}

func (b *polledBackend) Submit(io *handler.IO)  { b.q <- io }
func (b *polledBackend) Limits() handler.Limits { return handler.Limits{} }
func (b *polledBackend) PollFD() int            { return b.efd }
func (b *polledBackend) SetPolled(bool)         {}
func (b *polledBackend) Poll() {
	unix.Read(b.efd, b.buf[:])
	b.mu.Lock()
	ios := b.finished
	b.finished, b.spare = b.spare[:0], ios
	b.mu.Unlock()
	for _, io := range ios {
		io.Done(nil)
	}
}
func (b *polledBackend) Close() error {
	close(b.q)
	<-b.done
	return unix.Close(b.efd)
}

type benchDeviceConfig struct{}

func (benchDeviceConfig) UnitSerial() (string, error)              { return "bench", nil }
func (benchDeviceConfig) PortGroups() ([]handler.PortGroup, error) { return nil, nil }
func (benchDeviceConfig) SetPortGroupState(uint16, uint8) error    { return syscall.EOPNOTSUPP }

// benchBackends are the backends the loop is measured with.
var benchBackends = []struct {
	name string
	open func(tb testing.TB) handler.Backend
}{
	{"null", func(testing.TB) handler.Backend { return nullBackend{} }},
	{"async", func(testing.TB) handler.Backend { return newAsyncBackend() }},
	{"polled", func(tb testing.TB) handler.Backend { return newPolledBackend(tb) }},
	{"mem", func(tb testing.TB) handler.Backend {
		be, err := mem.New(benchBlocks * 512)
		if err != nil {
			tb.Fatal(err)
		}
		return be
	}},
}

// benchCommand is one kind of command the benchmarks send.
type benchCommand struct {
	name string
	// cdb is the CDB; a 10-byte one gets the LBA in bytes 2-5.
	cdb []byte
	// out and in are the Data-Out and Data-In lengths.
	out, in int
}

var benchCommands = []benchCommand{
	{"tur", []byte{0, 0, 0, 0, 0, 0}, 0, 0},
	{"read4k", []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}, 0, 4096},
	{"write4k", []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0}, 4096, 0},
}

// setLBA writes lba into a 10-byte CDB.
func setLBA(cdb []byte, lba uint32) {
	if len(cdb) == 10 {
		binary.BigEndian.PutUint32(cdb[2:], lba)
	}
}

// Offsets in a ring entry the lean kernel writes, from
// include/uapi/linux/target_core_user.h (package uio keeps its own copy
// unexported; uio/layout_test.go checks them against the header).
const (
	leanCmdIDOff   = 4
	leanIovCntOff  = 8
	leanCdbOffOff  = 24
	leanStatusOff  = 8
	leanEntrySize  = 128 // a 112-byte tcmu_cmd_entry with one iovec + a CDB of up to 16 bytes
	leanMaxBatch   = 32
	leanCmdrOff    = uio.MailboxSize
	leanRingSize   = 64<<10 - leanCmdrOff
	leanMbTailOff  = 64
	leanMbHeadOff  = 12
	leanDataBlocks = leanMaxBatch
)

// leanKernel queues batches of commands into a region laid out by
// uiotest and waits until cmd_tail has caught up with cmd_head. It is the
// device's Waiter; its doorbell only counts and wakes the submitter.
type leanKernel struct {
	mem     []byte
	ring    *uio.Ring
	dataOff uint64
	head    uint32
	id      uint16
	// pos are the ring offsets of the entries of the last batch.
	pos []uint32

	events chan struct{}
	idle   chan struct{}
	// nfd is written with each batch, for WaitEvents (the polled loop);
	// watched is the fd Watch gave.
	nfd       int
	watched   int
	ep        int
	epRC      syscall.RawConn
	epollFn   func(uintptr) bool
	evs       [2]unix.EpollEvent
	nev       int
	buf       [8]byte // the batch eventfd's count (a field: no allocation in race builds)
	doorbells atomic.Uint64
	// published is head as the doorbell (another goroutine) sees it.
	published atomic.Uint32
}

func newLeanKernel(tb testing.TB) *leanKernel {
	k := uiotest.New(tb, uiotest.Config{RingSize: leanRingSize, DataSize: leanDataBlocks * 4096})
	lk := &leanKernel{
		mem:     k.Mem(),
		dataOff: uint64(k.DataOff()),
		events:  make(chan struct{}, 1),
		idle:    make(chan struct{}, 1),
		pos:     make([]uint32, 0, leanMaxBatch),
		watched: -1,
	}
	nfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		tb.Fatal(err)
	}
	lk.nfd = nfd
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, nfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0}); err != nil {
		tb.Fatal(err)
	}
	unix.SetNonblock(ep, true)
	epf := os.NewFile(uintptr(ep), "lean-epoll")
	rc, err := epf.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	lk.ep, lk.epRC = ep, rc
	lk.epollFn = lk.epollWait
	tb.Cleanup(func() { epf.Close(); unix.Close(nfd) })
	ring, err := uio.NewRing(lk.mem, lk.doorbell)
	if err != nil {
		tb.Fatal(err)
	}
	lk.ring = ring
	return lk
}

func (lk *leanKernel) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&lk.mem[off])) }

// Wait implements uio.Waiter with uio.Device's coalescing semantics.
func (lk *leanKernel) Wait(ctx context.Context) error {
	select {
	case <-lk.events:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Watch and WaitEvents implement handler.EventWaiter the way uio.Device
// does: an epoll fd over the batch eventfd and the watched fd, parked on
// in Go's netpoller — the system calls of the real loop, none of the
// fake's bookkeeping.
func (lk *leanKernel) Watch(fd int) error {
	if lk.watched >= 0 {
		unix.EpollCtl(lk.ep, unix.EPOLL_CTL_DEL, lk.watched, nil)
	}
	lk.watched = fd
	if fd < 0 {
		return nil
	}
	return unix.EpollCtl(lk.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 1})
}

func (lk *leanKernel) WaitEvents(ctx context.Context, timeout time.Duration, _ time.Time) (uio.Events, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		lk.nev = 0
		if err := lk.epRC.Read(lk.epollFn); err != nil {
			return 0, err
		}
		var ev uio.Events
		for _, e := range lk.evs[:lk.nev] {
			if e.Fd == 0 {
				unix.Read(lk.nfd, lk.buf[:])
				ev |= uio.EventRing
			} else {
				ev |= uio.EventWatched
			}
		}
		if ev != 0 {
			return ev, nil
		}
	}
}

func (lk *leanKernel) epollWait(fd uintptr) bool {
	n, err := unix.EpollWait(int(fd), lk.evs[:], 0)
	if err != nil || n == 0 {
		return false
	}
	lk.nev = n
	return true
}

func (lk *leanKernel) doorbell() error {
	lk.doorbells.Add(1)
	if atomic.LoadUint32(lk.u32(leanMbTailOff)) == lk.published.Load() {
		select {
		case lk.idle <- struct{}{}:
		default:
		}
	}
	return nil
}

// submit queues n commands made by cmd (command i at LBA 8i, on data block
// i), publishes cmd_head and raises one uio event.
func (lk *leanKernel) submit(cmd *benchCommand, n int) {
	le := binary.LittleEndian
	cmdr := lk.mem[leanCmdrOff : leanCmdrOff+leanRingSize]
	lk.pos = lk.pos[:0]
	for i := range n {
		if leanRingSize-lk.head < leanEntrySize {
			le.PutUint32(cmdr[lk.head:], (leanRingSize-lk.head)|uio.OpPad)
			lk.head = 0
		}
		e := cmdr[lk.head : lk.head+leanEntrySize]
		le.PutUint32(e, leanEntrySize|uio.OpCmd)
		lk.id = lk.id%0xffff + 1
		le.PutUint16(e[leanCmdIDOff:], lk.id)
		e[6], e[7] = 0, 0
		iovs := uint32(0)
		if cmd.out+cmd.in > 0 {
			iovs = 1
			le.PutUint64(e[uio.ReqIovOff:], lk.dataOff+uint64(i)*4096)
			le.PutUint64(e[uio.ReqIovOff+8:], uint64(cmd.out+cmd.in))
		}
		le.PutUint32(e[leanIovCntOff:], iovs)
		le.PutUint32(e[leanIovCntOff+4:], 0)
		le.PutUint64(e[leanCdbOffOff:], uint64(leanCmdrOff+lk.head+uio.CmdEntrySize))
		setLBA(e[uio.CmdEntrySize:uio.CmdEntrySize+copy(e[uio.CmdEntrySize:], cmd.cdb)], uint32(i)*8)
		lk.pos = append(lk.pos, lk.head)
		lk.head = (lk.head + leanEntrySize) % leanRingSize
	}
	lk.published.Store(lk.head)
	atomic.StoreUint32(lk.u32(leanMbHeadOff), lk.head)
	select {
	case lk.events <- struct{}{}:
	default:
	}
	unix.Write(lk.nfd, leanOne[:])
}

var leanOne = [8]byte{1}

// wait blocks until every queued command is completed and reports the
// first non-GOOD status of the batch.
func (lk *leanKernel) wait() (status uint8) {
	for atomic.LoadUint32(lk.u32(leanMbTailOff)) != lk.head {
		<-lk.idle
	}
	cmdr := lk.mem[leanCmdrOff:]
	for _, p := range lk.pos {
		if s := cmdr[p+leanStatusOff]; s != 0 {
			return s
		}
	}
	return 0
}

// startLean runs a Device over a lean kernel until the test ends.
func startLean(tb testing.TB, be handler.Backend) *leanKernel {
	tb.Helper()
	lk := newLeanKernel(tb)
	info := handler.DeviceInfo{Name: "bench", Size: benchBlocks * 512, BlockSize: 512, MaxSectors: 2048, WriteCache: true}
	d, err := handler.NewDevice(zerolog.Nop(), info, lk.ring, lk, be, benchDeviceConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.Run(ctx); err != nil {
			tb.Errorf("Run: %v", err)
		}
	}()
	tb.Cleanup(func() {
		cancel()
		unix.Write(lk.nfd, leanOne[:]) // wakes a polled loop to see ctx
		wg.Wait()
		if err := d.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return lk
}

// cpuTime is the CPU time this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// switches is the context switches of the whole process so far.
func switches(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Nvcsw + ru.Nivcsw
}

func reportPerCommand(b *testing.B, cpu0 time.Duration, sw0 int64, start time.Time) {
	elapsed := time.Since(start)
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/cmd")
	b.ReportMetric(float64(switches(b)-sw0)/float64(b.N), "switches/cmd")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cmds/s")
}

// BenchmarkCommandLoop measures one command through a Device: fetch,
// decode, dispatch, backend, complete, doorbell. batchN is how many
// commands the kernel queues per uio event (one doorbell answers them
// all); qdN keeps N commands queued at all times through uiotest.
func BenchmarkCommandLoop(b *testing.B) {
	for _, cmd := range benchCommands {
		for _, be := range benchBackends {
			if cmd.out+cmd.in == 0 && be.name != "null" {
				continue // no IO reaches the backend
			}
			for _, batch := range []int{1, leanMaxBatch} {
				b.Run(fmt.Sprintf("lean/%s/%s/batch%d", cmd.name, be.name, batch), func(b *testing.B) {
					benchLean(b, &cmd, be.open(b), batch)
				})
			}
		}
	}
	for _, cmd := range benchCommands {
		for _, qd := range []int{1, 32} {
			b.Run(fmt.Sprintf("uiotest/%s/mem/qd%d", cmd.name, qd), func(b *testing.B) {
				benchUiotest(b, &cmd, qd)
			})
		}
	}
}

func benchLean(b *testing.B, cmd *benchCommand, be handler.Backend, batch int) {
	lk := startLean(b, be)
	for range 4 { // warm up: the Cmd pool, the backend's first touch
		lk.submit(cmd, batch)
		if s := lk.wait(); s != 0 {
			b.Fatalf("%s: status %#x", cmd.name, s)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, sw0, start := cpuTime(b), switches(b), time.Now()
	for n := 0; n < b.N; n += batch {
		lk.submit(cmd, min(batch, b.N-n))
		if s := lk.wait(); s != 0 {
			b.Fatalf("%s: status %#x", cmd.name, s)
		}
	}
	b.StopTimer()
	reportPerCommand(b, cpu0, sw0, start)
	b.ReportMetric(float64(lk.doorbells.Load())/float64(b.N), "doorbells/cmd")
}

func benchUiotest(b *testing.B, cmd *benchCommand, qd int) {
	k := uiotest.New(b, uiotest.Config{DataSize: 64 * 4096})
	be, err := mem.New(benchBlocks * 512)
	if err != nil {
		b.Fatal(err)
	}
	info := handler.DeviceInfo{Name: "bench", Size: benchBlocks * 512, BlockSize: 512, MaxSectors: 2048, WriteCache: true}
	d, err := handler.NewDevice(zerolog.Nop(), info, k.Ring(), k, be, benchDeviceConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()
	out := make([]byte, cmd.out)
	submit := func(i int) {
		cdb := slices.Clone(cmd.cdb)
		setLBA(cdb, uint32(i%1024)*8)
		req := uiotest.Request{CDB: cdb, DataOut: out, DataInLen: cmd.in}
		if _, err := k.SubmitWait(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, sw0, start := cpuTime(b), switches(b), time.Now()
	issued := 0
	for ; issued < qd && issued < b.N; issued++ {
		submit(issued)
	}
	for range b.N {
		c := <-k.Completions()
		if c.Status != 0 {
			b.Fatalf("%s: status %#x, sense % x", cmd.name, c.Status, c.Sense)
		}
		if issued < b.N {
			submit(issued)
			issued++
		}
	}
	b.StopTimer()
	reportPerCommand(b, cpu0, sw0, start)
	b.ReportMetric(float64(k.Stats().Doorbells)/float64(b.N), "doorbells/cmd")
	cancel()
	if err := <-runErr; err != nil {
		b.Fatalf("Run: %v", err)
	}
	if err := d.Close(); err != nil {
		b.Fatalf("Close: %v", err)
	}
}

// TestCommandLoopAllocs holds the command loop at zero heap allocations
// per command in steady state, for every kind of command and backend the
// benchmark measures: fetch, dispatch, IO, completion and doorbell.
func TestCommandLoopAllocs(t *testing.T) {
	for _, cmd := range benchCommands {
		for _, be := range benchBackends {
			if cmd.out+cmd.in == 0 && be.name != "null" {
				continue
			}
			for _, batch := range []int{1, leanMaxBatch} {
				t.Run(fmt.Sprintf("%s/%s/batch%d", cmd.name, be.name, batch), func(t *testing.T) {
					lk := startLean(t, be.open(t))
					run := func() {
						lk.submit(&cmd, batch)
						if s := lk.wait(); s != 0 {
							t.Fatalf("%s: status %#x", cmd.name, s)
						}
					}
					for range 4 {
						run()
					}
					if got := testing.AllocsPerRun(100, run); got != 0 {
						t.Errorf("%v allocations per batch of %d, want 0", got, batch)
					}
				})
			}
		}
	}
}
