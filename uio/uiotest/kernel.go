package uiotest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/uio"
)

// Region layout, transcribed from include/uapi/linux/target_core_user.h a
// second time, independently of package uio: a mistake in either copy
// shows up as a failing round trip.
const (
	mbVersionOff  = 0
	mbFlagsOff    = 2
	mbCmdrOffOff  = 4
	mbCmdrSizeOff = 8
	mbCmdHeadOff  = 12
	mbCmdTailOff  = 64
	cmdrOff       = 128 // CMDR_OFF = sizeof(struct tcmu_mailbox)
	mailboxFlags  = 0x0f

	hdrCmdIDOff  = 4
	hdrKFlagsOff = 6
	hdrUFlagsOff = 7

	reqIovCntOff     = 8
	reqIovBidiCntOff = 12
	reqCdbOffOff     = 24
	reqIovOff        = 48
	iovecSize        = 16
	cmdEntrySize     = 112

	rspStatusOff  = 8
	rspReadLenOff = 12
	rspSenseOff   = 16
	senseSize     = 96

	tmrTypeOff   = 8
	tmrCmdCntOff = 12
	tmrCmdIDsOff = 32
	tmrEntrySize = 32

	opAlign = 8 // TCMU_OP_ALIGN_SIZE

	statusCheckCondition = 0x02 // SAM_STAT_CHECK_CONDITION
	statusBusy           = 0x08 // SAM_STAT_BUSY
)

// Defaults for a zero Config: a small ring so tests wrap around it often
// (the kernel's cmdr_size is likewise a round size minus the mailbox, not
// a power of two), a 1 MiB data area of 4 KiB blocks.
const (
	DefaultRingSize  = 64<<10 - cmdrOff
	DefaultDataSize  = 1 << 20
	DefaultBlockSize = 4096
)

// PoisonByte fills every Data-In buffer when its command is queued.
const PoisonByte = 0xdb

// Config sizes the region. Zero fields take the defaults.
type Config struct {
	// RingSize is cmdr_size: a multiple of 8, at least 224 bytes.
	RingSize uint32
	// DataSize is the size of the data area, a multiple of BlockSize.
	DataSize int
	// BlockSize is the data block size (data_pages_per_blk pages).
	BlockSize int
	// Region, if not nil, is the memory the region is laid out in: at
	// least as long as the region, 8-byte aligned. Give it mapped memory
	// (an anonymous mmap) when a backend hands data-area pointers to C, as
	// the rbd backend does with the kernel's mapping; nil allocates the
	// region on the Go heap.
	Region []byte
	// NoDataIn leaves Data-In buffers unpoisoned and delivers completions
	// without DataIn: for benchmarks, where filling and copying out every
	// read buffer would be the fake's cost, not the handler's.
	NoDataIn bool
	// DoorbellFD gives the ring a doorbell fd (uio.Ring.SetDoorbellFD),
	// the write end of a pipe whose 4-byte writes run the fake's
	// completion handling, as the uio fd runs the kernel's: for backends
	// that answer and ring the doorbell from C (uio.FastAnswer).
	DoorbellFD bool
}

// Request is one SCSI command to queue.
type Request struct {
	// CDB must hold at least as many bytes as scsi_command_size gives
	// its opcode (uio.CDBLen); exactly that many are copied.
	CDB []byte
	// DataOut is the Data-Out buffer (a write's data), copied into the
	// data area.
	DataOut []byte
	// DataInLen is the length of the Data-In buffer (a read's). With
	// DataOut as well the command is bidirectional: iov_cnt covers
	// Data-Out and iov_bidi_cnt Data-In.
	DataInLen int
	// Tag is handed back in the command's Completion.
	Tag any
	// Corrupt, if set, may rewrite the laid-out entry (the ring slot)
	// before cmd_head is published: the way to test hostile entries. It
	// runs with the Kernel locked and must not call the Kernel.
	Corrupt func(entry []byte)
}

// Completion is what the kernel made of one command's completion.
type Completion struct {
	ID  uint16
	Tag any
	// Status is the SCSI status the initiator gets. With
	// TCMU_UFLAG_UNKNOWN_OP the kernel turns it into CHECK CONDITION
	// without sense.
	Status uint8
	// Sense is rsp.sense_buffer (96 bytes) for a CHECK CONDITION the
	// handler answered, nil otherwise.
	Sense []byte
	// UFlags are the uflags the handler wrote (uio.UFlag*).
	UFlags uint8
	// ReadLen is rsp.read_len when UFlags has uio.UFlagReadLen.
	ReadLen uint32
	// DataIn is what the kernel copies back to the initiator from the
	// Data-In buffer: all of it, or read_len bytes with READ_LEN, or
	// nothing for a CHECK CONDITION without READ_LEN.
	DataIn []byte
	// Reset is set when ResetRing completed the command, not the handler.
	Reset bool
}

// Stats counts what happened to a Kernel.
type Stats struct {
	Submitted     int // CMD entries queued
	TMRs          int // TMR entries queued
	Pads          int // PAD entries inserted at the end of the ring
	Completed     int // completions delivered, including by ResetRing
	Notifications int // uio events raised (Wait wake-ups, before coalescing)
	Doorbells     int // 4-byte writes by the handler
}

// Reasons Submit does not queue a command. The kernel would put it on its
// qfull queue (the first three) or fail it (the last two).
var (
	ErrRingFull = errors.New("uiotest: command ring full")
	ErrDataFull = errors.New("uiotest: data area full")
	ErrNoCmdID  = errors.New("uiotest: all cmd_ids in use")
	ErrTooBig   = errors.New("uiotest: command too big for the ring or the data area")
	ErrBroken   = errors.New("uiotest: ring broken")
)

// Kernel is a fake target_core_user device. Its methods are safe for
// concurrent use.
type Kernel struct {
	tb        testing.TB
	mem       []byte
	ring      *uio.Ring
	cmdrSize  uint32
	dataOff   int
	blockSize int
	noDataIn  bool

	mu          sync.Mutex
	head        uint32 // the kernel's cmd_head
	lastCleaned uint32 // cmdr_last_cleaned
	entries     map[uint32]entry
	cmds        [1 << 16]*pending // by cmd_id, as udev->commands
	lowFree     int
	blocks      []bool // data_bitmap
	freeBlocks  int
	broken      bool
	plugged     bool
	plugNotify  bool
	stats       Stats
	space       chan struct{} // closed when space may have been freed

	events    chan struct{} // one pending uio event, coalesced
	watched   atomic.Int64  // the fd Watch gave, or -1
	waits     atomic.Int64  // WaitEvents calls
	nfd       int           // eventfd each notification writes, for WaitEvents
	pfds      [2]unix.PollFd
	primed    atomic.Bool
	closed    chan struct{}
	closeOnce sync.Once
	gone      chan struct{}
	goneOnce  sync.Once

	qmu   sync.Mutex
	queue []Completion
	qsig  chan struct{}
	out   chan Completion
	stop  chan struct{}
	wg    sync.WaitGroup
}

// entry is what the fake wrote at a ring offset, to walk the ring by its
// own record and to notice a handler rewriting len_op.
type entry struct {
	size  uint32
	op    uint32
	lenOp uint32 // as in the slot once the entry was published
}

type pending struct {
	tag       any
	blocks    []int // Data-Out blocks, then Data-In blocks
	outBlocks int
	inLen     int
	bidi      bool
}

// New returns a fake kernel with its region laid out and its uio.Ring
// made. Protocol breaches are reported with tb.Errorf; New stops the
// Kernel when the test ends.
func New(tb testing.TB, cfg Config) *Kernel {
	tb.Helper()
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if cfg.DataSize == 0 {
		cfg.DataSize = DefaultDataSize
	}
	switch {
	case cfg.RingSize%opAlign != 0 || cfg.RingSize < 2*cmdEntrySize:
		tb.Fatalf("uiotest: ring size %d is not a multiple of 8 of at least %d", cfg.RingSize, 2*cmdEntrySize)
	case cfg.BlockSize <= 0 || cfg.DataSize < 0 || cfg.DataSize%cfg.BlockSize != 0:
		tb.Fatalf("uiotest: data area %d is not a multiple of block size %d", cfg.DataSize, cfg.BlockSize)
	}
	total := cmdrOff + int(cfg.RingSize) + cfg.DataSize
	var mem []byte
	switch {
	case cfg.Region == nil:
		words := make([]uint64, (total+7)/8) // 8-byte aligned, as the kernel's vmalloc area
		mem = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), total)
	case len(cfg.Region) < total || uintptr(unsafe.Pointer(unsafe.SliceData(cfg.Region)))%8 != 0:
		tb.Fatalf("uiotest: region of %d bytes is shorter than %d or not 8-byte aligned", len(cfg.Region), total)
	default:
		mem = cfg.Region[:total:total]
		clear(mem)
	}

	le := binary.LittleEndian
	le.PutUint16(mem[mbVersionOff:], uio.MailboxVersion)
	le.PutUint16(mem[mbFlagsOff:], mailboxFlags)
	le.PutUint32(mem[mbCmdrOffOff:], cmdrOff)
	le.PutUint32(mem[mbCmdrSizeOff:], cfg.RingSize)

	k := &Kernel{
		tb:         tb,
		mem:        mem,
		cmdrSize:   cfg.RingSize,
		dataOff:    cmdrOff + int(cfg.RingSize),
		blockSize:  cfg.BlockSize,
		noDataIn:   cfg.NoDataIn,
		entries:    map[uint32]entry{},
		blocks:     make([]bool, cfg.DataSize/cfg.BlockSize),
		freeBlocks: cfg.DataSize / cfg.BlockSize,
		space:      make(chan struct{}),
		events:     make(chan struct{}, 1),
		closed:     make(chan struct{}),
		gone:       make(chan struct{}),
		qsig:       make(chan struct{}, 1),
		out:        make(chan Completion),
		stop:       make(chan struct{}),
	}
	ring, err := uio.NewRing(mem, k.doorbell)
	if err != nil {
		tb.Fatalf("uiotest: uio.NewRing over the fake region: %v", err)
	}
	k.ring = ring
	if cfg.DoorbellFD {
		k.pipeDoorbell(tb)
	}
	k.watched.Store(-1)
	nfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		tb.Fatalf("uiotest: eventfd: %v", err)
	}
	k.nfd = nfd
	tb.Cleanup(func() { unix.Close(nfd) })
	k.wg.Add(1)
	go k.forward()
	tb.Cleanup(func() {
		k.Close()
		close(k.stop)
		k.wg.Wait()
	})
	return k
}

// pipeDoorbell makes a pipe the ring's doorbell fd (Config.DoorbellFD):
// every 4 bytes read from it ring the fake's doorbell.
func (k *Kernel) pipeDoorbell(tb testing.TB) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		tb.Fatalf("uiotest: pipe: %v", err)
	}
	k.ring.SetDoorbellFD(p[1])
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer unix.Close(p[0])
		var b [4]byte
		for {
			n, err := unix.Read(p[0], b[:])
			if err == unix.EINTR {
				continue
			}
			if n <= 0 {
				return // the write end is closed
			}
			cMu.Lock() // see cMu
			k.doorbell()
			cMu.Unlock()
		}
	}()
	tb.Cleanup(func() {
		k.ring.SetDoorbellFD(-1)
		unix.Close(p[1])
		<-done
	})
}

// Ring returns the uio.Ring over the fake region, whose doorbell runs the
// fake's completion handling.
func (k *Kernel) Ring() *uio.Ring { return k.ring }

// Mem returns the whole region, for tests that poke at it directly.
func (k *Kernel) Mem() []byte { return k.mem }

// DataOff returns the offset of the data area in the region.
func (k *Kernel) DataOff() int { return k.dataOff }

// RingSize returns cmdr_size.
func (k *Kernel) RingSize() uint32 { return k.cmdrSize }

// Completions delivers every completion in the order the kernel processed
// it. The Kernel queues them without bound, so nothing blocks when a test
// reads them late.
func (k *Kernel) Completions() <-chan Completion { return k.out }

// Stats returns the counters so far.
func (k *Kernel) Stats() Stats {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stats
}

// Outstanding returns how many commands are queued and not yet completed.
func (k *Kernel) Outstanding() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, p := range &k.cmds {
		if p != nil {
			n++
		}
	}
	return n
}

// Broken reports whether the fake found the ring broken (and failed the
// test saying why). Only ResetRing repairs it.
func (k *Kernel) Broken() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.broken
}

// SetHead writes cmd_head in the mailbox without queueing anything, as a
// hostile or buggy kernel might. The fake's own head is unchanged.
func (k *Kernel) SetHead(head uint32) {
	atomic.StoreUint32(k.u32(mbCmdHeadOff), head)
}

func (k *Kernel) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&k.mem[off])) }

// state reports a closed or removed device the way uio.Device does.
func (k *Kernel) state(verb string) error {
	if err := k.removed(verb); err != nil {
		return err
	}
	select {
	case <-k.closed:
		return fmt.Errorf("%s fake uio: %w", verb, os.ErrClosed)
	default:
	}
	return nil
}

func (k *Kernel) removed(verb string) error {
	select {
	case <-k.gone:
		return fmt.Errorf("%s fake uio: %w: %w", verb, uio.ErrDeviceGone, syscall.EIO)
	default:
		return nil
	}
}

// Wait implements uio.Waiter with uio.Device's semantics: the first call
// returns at once, later calls once a notification arrived since the
// previous return, several notifications coalescing.
func (k *Kernel) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := k.state("wait for"); err != nil {
		return err
	}
	if k.primed.CompareAndSwap(false, true) {
		return nil
	}
	select {
	case <-k.events:
		return nil
	case <-k.closed:
	case <-k.gone:
	case <-ctx.Done():
		return ctx.Err()
	}
	return k.state("wait for")
}

// Watch implements handler.EventWaiter: WaitEvents also reports fd
// readable (level-triggered); -1 stops watching.
func (k *Kernel) Watch(fd int) error {
	k.watched.Store(int64(fd))
	return nil
}

// WaitEvents implements handler.EventWaiter with uio.Device's semantics:
// it sleeps in poll(2) on an eventfd the fake's notifications write and
// on the watched fd, so a benchmark over the fake pays what the real
// device's loop pays; it looks at ctx, Close and Remove at least every
// 10ms.
func (k *Kernel) WaitEvents(ctx context.Context, timeout time.Duration, _ time.Time) (uio.Events, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := k.state("wait for"); err != nil {
		return 0, err
	}
	k.waits.Add(1)
	if k.primed.CompareAndSwap(false, true) {
		return uio.EventRing, nil
	}
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		ms := 10
		if !deadline.IsZero() {
			ms = min(ms, max(int((time.Until(deadline)+time.Millisecond-1)/time.Millisecond), 0))
		}
		fds := k.pfds[:1]
		fds[0] = unix.PollFd{Fd: int32(k.nfd), Events: unix.POLLIN}
		if w := k.watched.Load(); w >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(w), Events: unix.POLLIN})
		}
		if _, err := unix.Poll(fds, ms); err != nil && err != unix.EINTR {
			return 0, fmt.Errorf("uiotest: poll: %w", err)
		}
		var ev uio.Events
		if fds[0].Revents != 0 {
			var b [8]byte
			unix.Read(k.nfd, b[:])
			select {
			case <-k.events:
			default:
			}
			ev |= uio.EventRing
		}
		if len(fds) > 1 && fds[1].Revents != 0 {
			ev |= uio.EventWatched
		}
		if ev != 0 {
			return ev, nil
		}
		select {
		case <-k.closed:
			return 0, k.state("wait for")
		case <-k.gone:
			return 0, k.state("wait for")
		case <-ctx.Done():
			return 0, ctx.Err()
		default:
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return 0, nil
		}
	}
}

// one is what an eventfd write adds.
var one = [8]byte{1}

// Waits counts WaitEvents calls: the wake-ups of a polled command loop.
func (k *Kernel) Waits() int { return int(k.waits.Load()) }

// Notify raises a uio event (uio_event_notify) without queueing anything.
func (k *Kernel) Notify() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.notifyLocked()
}

func (k *Kernel) notifyLocked() {
	if k.plugged {
		k.plugNotify = true
		return
	}
	k.stats.Notifications++
	select {
	case k.events <- struct{}{}:
	default:
	}
	unix.Write(k.nfd, one[:])
}

// Plug defers notifications for commands queued from now on until Unplug,
// as the kernel does while the target core plugs the device; many
// commands then arrive with one wake-up.
func (k *Kernel) Plug() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.plugged = true
}

// Unplug raises the deferred notification (tcmu_unplug_device).
func (k *Kernel) Unplug() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.plugged = false
	if k.plugNotify {
		k.plugNotify = false
		k.notifyLocked()
	}
}

// Close is the handler closing its fd: Wait and the doorbell fail with
// os.ErrClosed from now on. Commands in the ring stay queued.
func (k *Kernel) Close() error {
	k.closeOnce.Do(func() { close(k.closed) })
	return nil
}

// Remove is the device being deleted: Wait and the doorbell fail with
// uio.ErrDeviceGone and EIO, as on a uio fd after uio_unregister_device.
func (k *Kernel) Remove() {
	k.goneOnce.Do(func() { close(k.gone) })
}

// Submit queues one command exactly as queue_cmd_ring does and notifies
// the handler. It does not wait: a full ring, data area or cmd_id space
// is reported as ErrRingFull, ErrDataFull or ErrNoCmdID. A closed Kernel
// still queues (the kernel does not care whether the fd is open); a
// removed one fails with EIO.
func (k *Kernel) Submit(req Request) (uint16, error) {
	if err := k.removed("submit to"); err != nil {
		return 0, err
	}
	if len(req.CDB) == 0 {
		return 0, errors.New("uiotest: empty CDB")
	}
	var b7 byte
	if len(req.CDB) > 7 {
		b7 = req.CDB[7]
	}
	cdbLen := uio.CDBLen(req.CDB[0], b7)
	if len(req.CDB) < cdbLen {
		return 0, fmt.Errorf("uiotest: CDB of %d bytes, opcode %#02x needs %d", len(req.CDB), req.CDB[0], cdbLen)
	}
	if req.DataInLen < 0 {
		return 0, fmt.Errorf("uiotest: negative Data-In length %d", req.DataInLen)
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	if k.broken {
		return 0, ErrBroken
	}
	outBlocks := k.blocksFor(len(req.DataOut))
	inBlocks := k.blocksFor(req.DataInLen)
	if outBlocks+inBlocks > len(k.blocks) {
		return 0, ErrTooBig
	}
	if outBlocks+inBlocks > k.freeBlocks {
		return 0, ErrDataFull
	}
	blocks := k.allocBlocks(outBlocks + inBlocks)
	outIov := k.iovecs(blocks[:outBlocks], len(req.DataOut))
	inIov := k.iovecs(blocks[outBlocks:], req.DataInLen)
	bidi := outBlocks > 0 && inBlocks > 0

	// tcmu_cmd_get_base_cmd_size and tcmu_cmd_get_cmd_size.
	nIov := len(outIov) + len(inIov)
	base := max(uint32(reqIovOff+iovecSize*nIov), cmdEntrySize)
	size := base + roundUp(uint32(cdbLen), opAlign)
	if size > k.cmdrSize/2 {
		k.freeBlockList(blocks)
		return 0, ErrTooBig
	}
	if !k.ringSpace(size) {
		k.freeBlockList(blocks)
		return 0, ErrRingFull
	}
	id := k.allocID()
	if id == 0 {
		k.freeBlockList(blocks)
		return 0, ErrNoCmdID
	}

	head := k.insertPad(size)
	slot := k.mem[cmdrOff+head : cmdrOff+head+size]
	clear(slot)
	le := binary.LittleEndian
	le.PutUint32(slot, size|uio.OpCmd)
	le.PutUint16(slot[hdrCmdIDOff:], id)
	iov := slot[reqIovOff:]
	for _, v := range append(outIov, inIov...) {
		le.PutUint64(iov, v[0])
		le.PutUint64(iov[8:], v[1])
		iov = iov[iovecSize:]
	}
	if bidi {
		le.PutUint32(slot[reqIovCntOff:], uint32(len(outIov)))
		le.PutUint32(slot[reqIovBidiCntOff:], uint32(len(inIov)))
	} else {
		le.PutUint32(slot[reqIovCntOff:], uint32(nIov))
	}
	// "All offsets relative to mb_addr, not start of entry!"
	le.PutUint64(slot[reqCdbOffOff:], uint64(cmdrOff+head+base))
	copy(slot[base:], req.CDB[:cdbLen])

	k.scatter(blocks[:outBlocks], req.DataOut)
	for _, b := range blocks[outBlocks:] {
		if !k.noDataIn {
			blk := k.block(b)
			for i := range blk {
				blk[i] = PoisonByte
			}
		}
	}
	if req.Corrupt != nil {
		req.Corrupt(slot)
	}
	k.entries[head] = entry{size: size, op: uio.OpCmd, lenOp: le.Uint32(slot)}
	k.cmds[id] = &pending{tag: req.Tag, blocks: blocks, outBlocks: outBlocks, inLen: req.DataInLen, bidi: bidi}
	k.stats.Submitted++
	k.publishHead((head + size) % k.cmdrSize)
	k.notifyLocked()
	return id, nil
}

// SubmitWait is Submit that waits for ring, data or cmd_id space, as a
// command waits on the kernel's qfull queue, until ctx is done.
func (k *Kernel) SubmitWait(ctx context.Context, req Request) (uint16, error) {
	for {
		k.mu.Lock()
		space := k.space
		k.mu.Unlock()
		id, err := k.Submit(req)
		if !errors.Is(err, ErrRingFull) && !errors.Is(err, ErrDataFull) && !errors.Is(err, ErrNoCmdID) {
			return id, err
		}
		select {
		case <-space:
		case <-k.gone:
			return 0, k.removed("submit to")
		case <-ctx.Done():
			return 0, fmt.Errorf("uiotest: wait for space: %w (%w)", ctx.Err(), err)
		}
	}
}

// SubmitTMR queues a TMR entry as queue_tmr_ring does, listing the cmd_ids
// the task management function affects, and notifies the handler. The
// commands stay queued: the kernel still waits for their completions.
func (k *Kernel) SubmitTMR(tmrType uint8, ids []uint16) error {
	if err := k.removed("submit to"); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.broken {
		return ErrBroken
	}
	size := roundUp(uint32(tmrEntrySize+2*len(ids)), opAlign)
	if !k.ringSpace(size) {
		return ErrRingFull
	}
	head := k.insertPad(size)
	slot := k.mem[cmdrOff+head : cmdrOff+head+size]
	clear(slot)
	le := binary.LittleEndian
	le.PutUint32(slot, size|uio.OpTMR)
	slot[tmrTypeOff] = tmrType
	le.PutUint32(slot[tmrCmdCntOff:], uint32(len(ids)))
	for i, id := range ids {
		le.PutUint16(slot[tmrCmdIDsOff+2*i:], id)
	}
	k.entries[head] = entry{size: size, op: uio.OpTMR, lenOp: le.Uint32(slot)}
	k.stats.TMRs++
	k.publishHead((head + size) % k.cmdrSize)
	// queue_tmr_ring notifies whether or not the device is plugged.
	k.stats.Notifications++
	select {
	case k.events <- struct{}{}:
	default:
	}
	unix.Write(k.nfd, one[:])
	return nil
}

// ResetRing does what writing mode to action/reset_ring does
// (tcmu_reset_ring): every queued command is completed with BUSY
// (uio.ResetBusy) or CHECK CONDITION (uio.ResetCheckCondition), its
// Completion marked Reset; cmd_head, cmd_tail and the last-cleaned
// position go to 0 and a broken ring is repaired.
func (k *Kernel) ResetRing(mode uio.ResetMode) error {
	status := uint8(statusBusy)
	switch mode {
	case uio.ResetBusy:
	case uio.ResetCheckCondition:
		status = statusCheckCondition
	default:
		return fmt.Errorf("uiotest: reset ring mode %d: %w", mode, syscall.EINVAL)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, p := range &k.cmds {
		if p == nil {
			continue
		}
		k.emit(Completion{ID: uint16(id), Tag: p.tag, Status: status, Reset: true})
		k.freeBlockList(p.blocks)
		k.freeID(uint16(id))
	}
	k.lastCleaned = 0
	atomic.StoreUint32(k.u32(mbCmdTailOff), 0)
	k.publishHead(0)
	clear(k.entries)
	k.broken = false
	k.signalSpace()
	return nil
}

// doorbell is the 4-byte write: tcmu_irqcontrol.
func (k *Kernel) doorbell() error {
	if err := k.state("ring doorbell of"); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stats.Doorbells++
	if k.handleCompletions() {
		k.signalSpace()
	}
	return nil
}

// handleCompletions is tcmu_handle_completions: it reports whether it
// freed ring space.
func (k *Kernel) handleCompletions() bool {
	if k.broken {
		return false
	}
	tail := atomic.LoadUint32(k.u32(mbCmdTailOff))
	if _, ok := k.entries[tail]; tail != k.head && !ok {
		k.fail("cmd_tail %d is not the start of a queued entry (last cleaned %d, head %d)", tail, k.lastCleaned, k.head)
		return false
	}
	freed := false
	le := binary.LittleEndian
	for k.lastCleaned != tail {
		pos := k.lastCleaned
		e, ok := k.entries[pos]
		if !ok {
			k.fail("cmd_tail %d is past cmd_head %d", tail, k.head)
			return freed
		}
		slot := k.mem[cmdrOff+pos : cmdrOff+pos+e.size]
		if got := le.Uint32(slot); got != e.lenOp {
			k.fail("len_op of the entry at %d rewritten from %#x to %#x", pos, e.lenOp, got)
			return freed
		}
		freed = true
		if e.op == uio.OpCmd {
			id := le.Uint16(slot[hdrCmdIDOff:])
			p := k.cmds[id]
			if p == nil {
				k.fail("cmd_id %d in the slot at %d not found, ring is broken", id, pos)
				return freed
			}
			if slot[hdrUFlagsOff]&uio.UFlagKeepBuf != 0 {
				k.fail("cmd_id %d completed with KEEP_BUF, which gotcmu never uses", id)
				return freed
			}
			k.emit(k.completion(id, p, slot))
			k.freeBlockList(p.blocks)
			k.freeID(id)
		}
		delete(k.entries, pos)
		k.lastCleaned = (pos + e.size) % k.cmdrSize
	}
	return freed
}

// completion is tcmu_handle_completion for one command.
func (k *Kernel) completion(id uint16, p *pending, slot []byte) Completion {
	c := Completion{ID: id, Tag: p.tag, UFlags: slot[hdrUFlagsOff], Status: slot[rspStatusOff]}
	if c.UFlags&uio.UFlagUnknownOp != 0 {
		c.Status = statusCheckCondition
		return c
	}
	readLen := p.inLen
	readLenValid := false
	if c.UFlags&uio.UFlagReadLen != 0 {
		c.ReadLen = binary.LittleEndian.Uint32(slot[rspReadLenOff:])
		if !p.bidi && p.inLen > 0 && c.ReadLen != 0 {
			readLenValid = true
			readLen = min(readLen, int(c.ReadLen))
		}
	}
	if c.Status == statusCheckCondition {
		c.Sense = append([]byte(nil), slot[rspSenseOff:rspSenseOff+senseSize]...)
		if !readLenValid {
			return c
		}
	}
	if p.inLen > 0 && !k.noDataIn {
		c.DataIn = k.gather(p.blocks[p.outBlocks:], readLen)
	}
	return c
}

func (k *Kernel) fail(format string, args ...any) {
	k.broken = true
	k.tb.Errorf("uiotest: "+format, args...)
}

func (k *Kernel) signalSpace() {
	close(k.space)
	k.space = make(chan struct{})
}

func (k *Kernel) publishHead(h uint32) {
	k.head = h
	// UPDATE_HEAD: smp_store_release, after the entry is written.
	atomic.StoreUint32(k.u32(mbCmdHeadOff), h)
}

// ringSpace is is_ring_space_avail: free space is counted from the
// last-cleaned position, one byte kept unused so full differs from empty,
// and an entry that does not fit before the end needs the PAD too.
func (k *Kernel) ringSpace(size uint32) bool {
	used := (k.head + k.cmdrSize - k.lastCleaned) % k.cmdrSize
	free := k.cmdrSize - used - 1
	needed := size
	if toEnd := k.cmdrSize - k.head; toEnd < size {
		needed += toEnd
	}
	return free >= needed
}

// insertPad is ring_insert_padding: it returns where the entry goes.
func (k *Kernel) insertPad(size uint32) uint32 {
	toEnd := k.cmdrSize - k.head
	if toEnd >= size {
		return k.head
	}
	hdr := k.mem[cmdrOff+k.head : cmdrOff+k.head+opAlign]
	binary.LittleEndian.PutUint32(hdr, toEnd|uio.OpPad)
	binary.LittleEndian.PutUint16(hdr[hdrCmdIDOff:], 0)
	hdr[hdrKFlagsOff], hdr[hdrUFlagsOff] = 0, 0
	k.entries[k.head] = entry{size: toEnd, op: uio.OpPad, lenOp: toEnd | uio.OpPad}
	k.stats.Pads++
	k.publishHead(0)
	return 0
}

// allocID is xa_alloc over 1..0xffff: the lowest free id. No id below
// lowFree is free.
func (k *Kernel) allocID() uint16 {
	for id := max(k.lowFree, 1); id < len(k.cmds); id++ {
		if k.cmds[id] == nil {
			k.lowFree = id + 1
			return uint16(id)
		}
	}
	k.lowFree = len(k.cmds)
	return 0
}

func (k *Kernel) freeID(id uint16) {
	k.cmds[id] = nil
	k.lowFree = min(k.lowFree, int(id))
}

func (k *Kernel) blocksFor(n int) int { return (n + k.blockSize - 1) / k.blockSize }

// allocBlocks takes the lowest free blocks one at a time, as
// tcmu_get_empty_block does with find_first_zero_bit.
func (k *Kernel) allocBlocks(n int) []int {
	blocks := make([]int, 0, n)
	for i := 0; len(blocks) < n; i++ {
		if !k.blocks[i] {
			k.blocks[i] = true
			blocks = append(blocks, i)
		}
	}
	k.freeBlocks -= n
	return blocks
}

func (k *Kernel) freeBlockList(blocks []int) {
	for _, b := range blocks {
		k.blocks[b] = false
	}
	k.freeBlocks += len(blocks)
}

// iovecs maps length bytes over blocks as new_block_to_iov does: adjacent
// blocks share one iovec; iov_base is an offset from the start of the map.
func (k *Kernel) iovecs(blocks []int, length int) [][2]uint64 {
	var iov [][2]uint64
	for i, b := range blocks {
		n := uint64(min(length, k.blockSize))
		length -= int(n)
		if i > 0 && b == blocks[i-1]+1 {
			iov[len(iov)-1][1] += n
			continue
		}
		iov = append(iov, [2]uint64{uint64(k.dataOff + b*k.blockSize), n})
	}
	return iov
}

func (k *Kernel) block(b int) []byte {
	off := k.dataOff + b*k.blockSize
	return k.mem[off : off+k.blockSize]
}

func (k *Kernel) scatter(blocks []int, data []byte) {
	for _, b := range blocks {
		data = data[copy(k.block(b), data):]
	}
}

func (k *Kernel) gather(blocks []int, n int) []byte {
	out := make([]byte, 0, n)
	for _, b := range blocks {
		if len(out) == n {
			break
		}
		out = append(out, k.block(b)[:min(k.blockSize, n-len(out))]...)
	}
	return out
}

func roundUp(n, to uint32) uint32 { return (n + to - 1) / to * to }

// emit queues a completion for delivery; the forwarder hands it on, so
// the doorbell never waits for the test to read.
func (k *Kernel) emit(c Completion) {
	k.stats.Completed++
	k.qmu.Lock()
	k.queue = append(k.queue, c)
	k.qmu.Unlock()
	select {
	case k.qsig <- struct{}{}:
	default:
	}
}

func (k *Kernel) forward() {
	defer k.wg.Done()
	for {
		k.qmu.Lock()
		if len(k.queue) == 0 {
			k.qmu.Unlock()
			select {
			case <-k.qsig:
				continue
			case <-k.stop:
				return
			}
		}
		c := k.queue[0]
		k.queue[0] = Completion{}
		k.queue = k.queue[1:]
		k.qmu.Unlock()
		select {
		case k.out <- c:
		case <-k.stop:
			return
		}
	}
}
