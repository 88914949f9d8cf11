package uio

/*
#include "cring.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Ring is the TCMU command ring of one device: the mailbox, the circular
// command area and the data area, all within one mapping.
//
// Refresh, Next and Reset are called by one goroutine at a time (the
// device's command loop). Complete, Release and Kick may be called from
// any goroutine, concurrently with Next and with each other, and a
// backend's C thread may answer a command through FastAnswer meanwhile.
//
// The completion side's state and its lock live in C memory (cring.h):
// the Go methods and a backend's C thread run the same functions on it.
type Ring struct {
	mem      []byte
	doorbell func() error

	cmdrOff  uint32
	cmdrSize uint32
	dataOff  uint64

	// OnTMR, if set, is called from Next for every TMR entry with the
	// task management function and the cmd_ids it affects. The ids slice
	// is only valid during the call.
	OnTMR func(tmrType uint8, ids []uint16)

	// Fetch side, owned by the goroutine calling Next.
	head   uint32 // cmd_head snapshot, loaded once per Refresh
	next   uint32 // offset of the next entry to fetch
	tmrIDs []uint16
	// Take-ahead: when Next meets a command and holds none taken, it
	// takes the cmd_ids of every command queued up to the snapshot (at
	// most len(ahead)) in one call into C; the next Nexts hand them out
	// in ring order, each checked against its slot.
	ahead    [batchMax]uint16
	nAhead   int // ids in ahead
	iAhead   int // the next one Next hands out
	aheadGen uint64
	// Responses CompleteLater keeps for Flush, owned by the goroutine
	// calling Next.
	later  [batchMax]C.gotcmu_answer
	nLater int

	// c is the completion side (cring.h's gotcmu_ring): our copy of the
	// tail, the generation bumped by Reset (completions of older commands
	// are dropped), the outstanding count, the fetch position published
	// for completions, the broken flag, the doorbell's coalescing flags,
	// and held, a bit per cmd_id fetched and not yet completed. The
	// kernel frees a cmd_id only after it has read the completion from
	// the ring, which it may do at any time once cmd_tail has moved past
	// it (our doorbell, block_dev, the unmap worker and command timeouts
	// all run tcmu_handle_completions), so an id is ours exactly until
	// it is completed. Meeting a held id again means the ring was
	// corrupted: serving it would make the kernel look the id up twice,
	// find it gone the second time and mark the ring broken.
	c  *C.gotcmu_ring
	rs raceSync
}

// NewRing validates the mailbox at the start of mem and returns the ring it
// describes. doorbell is called to tell the kernel that completions are
// ready (a 4-byte write to the uio fd).
func NewRing(mem []byte, doorbell func() error) (*Ring, error) {
	if len(mem) < MailboxSize {
		return nil, fmt.Errorf("map of %d bytes is smaller than the mailbox", len(mem))
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return nil, fmt.Errorf("map is not 8-byte aligned")
	}
	if v := binary.LittleEndian.Uint16(mem[mbVersionOff:]); v != MailboxVersion {
		return nil, fmt.Errorf("mailbox version %d, want %d", v, MailboxVersion)
	}
	off := binary.LittleEndian.Uint32(mem[mbCmdrOffOff:])
	size := binary.LittleEndian.Uint32(mem[mbCmdrSizeOff:])
	switch {
	case off < MailboxSize || off%opAlignment != 0:
		return nil, fmt.Errorf("cmdr_off %d is not a valid ring offset", off)
	case size < CmdEntrySize*2 || size%opAlignment != 0:
		return nil, fmt.Errorf("cmdr_size %d is not a valid ring size", size)
	case uint64(off)+uint64(size) > uint64(len(mem)):
		return nil, fmt.Errorf("ring [%d,+%d) outside the %d-byte map", off, size, len(mem))
	case uint64(off)+uint64(size) > math.MaxUint32:
		// Ring positions are computed in uint32 (cmdr_off + cmd_head).
		return nil, fmt.Errorf("ring [%d,+%d) ends beyond 4 GiB", off, size)
	}
	cr := C.gotcmu_ring_new((*C.uint8_t)(unsafe.Pointer(&mem[0])), C.uint32_t(off), C.uint32_t(size))
	if cr == nil {
		return nil, fmt.Errorf("allocate ring state: %w", syscall.ENOMEM)
	}
	// C keeps a pointer to mem: the kernel's mapping, or in tests Go
	// memory, which must then be pinned (pinning anything else is a no-op).
	pin := new(runtime.Pinner)
	pin.Pin(&mem[0])
	r := &Ring{mem: mem, doorbell: doorbell, cmdrOff: off, cmdrSize: size, dataOff: uint64(off) + uint64(size), c: cr}
	// Both freed when the Ring is gone: a C thread answers only commands
	// in flight, and the handler holds the Ring until none is.
	runtime.AddCleanup(r, func(h ringC) {
		C.gotcmu_ring_free(h.c)
		h.pin.Unpin()
	}, ringC{cr, pin})
	r.resync()
	return r, nil
}

// ringC is what a Ring's cleanup releases.
type ringC struct {
	c   *C.gotcmu_ring
	pin *runtime.Pinner
}

// SetDoorbellFD lets FastAnswer's C callers ring the doorbell themselves
// with a 4-byte write to fd (the uio fd); -1 leaves their kicks to Kick.
func (r *Ring) SetDoorbellFD(fd int) {
	atomic.StoreInt32((*int32)(unsafe.Pointer(&r.c.doorbell_fd)), int32(fd))
}

// FastAnswer names a command that a backend may answer GOOD from its own C
// thread, without entering Go: cring.h's gotcmu_ring_complete(Ring, ID,
// Gen, 0, GOOD, 0, NULL, 0) and then gotcmu_ring_kick(Ring). A command
// answered so must then be passed to Answered, never to Complete.
type FastAnswer struct {
	Ring unsafe.Pointer // *gotcmu_ring
	ID   uint16
	Gen  uint64
}

// FastAnswer returns what a backend's C thread needs to answer c.
func (r *Ring) FastAnswer(c *Command) FastAnswer {
	return FastAnswer{Ring: unsafe.Pointer(r.c), ID: c.ID, Gen: c.gen}
}

// Answered records that c was answered through its FastAnswer: it is no
// longer live, and completing it again does nothing.
func (r *Ring) Answered(c *Command) { c.live = false }

func (r *Ring) fetchedAt() *uint32  { return (*uint32)(unsafe.Pointer(&r.c.fetched)) }
func (r *Ring) brokenFlag() *uint32 { return (*uint32)(unsafe.Pointer(&r.c.broken)) }
func (r *Ring) isBroken() bool      { return atomic.LoadUint32(r.brokenFlag()) != 0 }

// Flags returns the mailbox capability flags (Cap*).
func (r *Ring) Flags() uint16 { return binary.LittleEndian.Uint16(r.mem[mbFlagsOff:]) }

// Size returns the size of the command ring in bytes.
func (r *Ring) Size() uint32 { return r.cmdrSize }

// DataArea returns the offset and length of the data area within the map.
func (r *Ring) DataArea() (off, length uint64) { return r.dataOff, uint64(len(r.mem)) - r.dataOff }

func (r *Ring) u32(off uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[off]))
}

// resync takes the shared tail as the starting point of both fetching and
// completing. Used at start (adopting a device) and after reset_ring.
func (r *Ring) resync() {
	t := atomic.LoadUint32(r.u32(mbCmdTailOff))
	if t >= r.cmdrSize || t%opAlignment != 0 {
		t = 0
	}
	r.rs.lock()
	C.gotcmu_ring_reset(r.c, C.uint32_t(t), 0)
	r.rs.unlock()
	r.next, r.head = t, t
	r.nAhead, r.iAhead, r.nLater = 0, 0, 0
}

// Reset forgets every outstanding command and starts again at ring offset
// 0, which is where action/reset_ring puts cmd_head, cmd_tail and the
// kernel's cmdr_last_cleaned. Completions of commands fetched before the
// reset are dropped from then on.
//
// Call Reset just BEFORE writing action/reset_ring (with the device blocked
// by action/block_dev=1), from the goroutine that calls Next, and fetch
// nothing until the write has returned. In that order no late completion
// can write a stale cmd_tail after the kernel zeroed it; in the other
// order one completion racing with the reset would make the kernel walk
// stale slots and mark the ring broken. If the reset_ring write fails the
// ring and the kernel disagree and the device must be closed.
func (r *Ring) Reset() {
	r.rs.lock()
	C.gotcmu_ring_reset(r.c, 0, 1)
	r.rs.unlock()
	r.next, r.head = 0, 0
	r.nAhead, r.iAhead, r.nLater = 0, 0, 0
}

// Outstanding returns how many fetched commands are not yet completed.
func (r *Ring) Outstanding() int {
	return int(C.gotcmu_ring_outstanding(r.c))
}

// Idle reports whether the kernel has nothing queued that is not yet
// completed: cmd_head equals cmd_tail.
func (r *Ring) Idle() bool {
	return atomic.LoadUint32(r.u32(mbCmdHeadOff)) == atomic.LoadUint32(r.u32(mbCmdTailOff))
}

// Queued reports whether the kernel has queued entries past what Next
// fetched: one acquire load of cmd_head, nothing validated (Refresh
// does that). Call it from the goroutine that calls Next.
func (r *Ring) Queued() bool {
	return atomic.LoadUint32(r.u32(mbCmdHeadOff)) != r.next
}

// Refresh loads cmd_head once, with acquire semantics, pairing with the
// kernel's smp_store_release in queue_cmd_ring (Go's atomics are
// sequentially consistent). Next then fetches up to that snapshot.
// It reports ErrBrokenRing if cmd_head is not a valid ring offset.
func (r *Ring) Refresh() error {
	h := atomic.LoadUint32(r.u32(mbCmdHeadOff))
	if h >= r.cmdrSize || h%opAlignment != 0 {
		return fmt.Errorf("cmd_head %d in a %d-byte ring: %w", h, r.cmdrSize, ErrBrokenRing)
	}
	if err := r.checkTail(); err != nil {
		return err
	}
	// Seen from cmd_tail, the kernel's head is never behind what we have
	// already fetched. If it is, the ring was reset behind our back (a
	// reset_ring not issued through Reset) and the slots between are
	// stale. Any cmd_tail value we may have stored lies between the old
	// tail and r.next, so the check holds whichever one we load.
	t := atomic.LoadUint32(r.u32(mbCmdTailOff))
	if t < r.cmdrSize && r.dist(t, h) < r.dist(t, r.next) {
		return fmt.Errorf("cmd_head %d moved behind fetched position %d (cmd_tail %d): %w",
			h, r.next, t, ErrBrokenRing)
	}
	r.head = h
	return nil
}

func (r *Ring) dist(from, to uint32) uint32 {
	if to >= from {
		return to - from
	}
	return r.cmdrSize - from + to
}

// batchMax bounds the commands taken in one call into C, and the responses
// CompleteLater keeps for one Flush.
const batchMax = 64

// Next fetches the next command up to the cmd_head snapshot taken by
// Refresh into c, and reports false when there is none. PAD entries are
// skipped, TMR entries are passed to OnTMR and consumed, and entries with
// an unknown opcode are completed at once with TCMU_UFLAG_UNKNOWN_OP. A
// CMD entry whose contents are malformed is still returned, with c.Err
// set. The error is ErrBrokenRing when the entry headers themselves cannot
// be trusted.
func (r *Ring) Next(c *Command) (bool, error) {
	if r.isBroken() {
		return false, fmt.Errorf("entry header changed after it was fetched: %w", ErrBrokenRing)
	}
	for r.next != r.head {
		pos := r.next
		lenOp := binary.LittleEndian.Uint32(r.mem[r.cmdrOff+pos:])
		length := lenOp &^ OpMask
		// The kernel never splits an entry across the end of the ring
		// (ring_insert_padding), so an entry that would is corrupt.
		if length == 0 || length > r.dist(pos, r.head) || length > r.cmdrSize-pos {
			return false, fmt.Errorf("entry at %d has length %d with %d bytes queued: %w",
				pos, length, r.dist(pos, r.head), ErrBrokenRing)
		}
		slot := r.mem[r.cmdrOff+pos : r.cmdrOff+pos+length : r.cmdrOff+pos+length]
		r.next = (pos + length) % r.cmdrSize
		atomic.StoreUint32(r.fetchedAt(), r.next)
		switch lenOp & OpMask {
		case OpPad:
			continue
		case OpTMR:
			r.decodeTMR(slot)
			continue
		case OpCmd:
			c.reset()
			if err := r.take(c, pos, slot); err != nil {
				return false, err
			}
			r.decodeCmd(c, slot)
			return true, nil
		default:
			// An opcode this handler does not know: the kernel looks
			// the slot up by cmd_id like any command and fails it with
			// LOGICAL UNIT COMMUNICATION FAILURE.
			c.reset()
			if err := r.take(c, pos, slot); err != nil {
				return false, err
			}
			c.unknownOp = true
			r.Complete(c)
		}
	}
	return false, nil
}

// take makes c the live command of the entry at pos (its slot), whose
// cmd_id must be one the kernel can have issued (1..65535) and does not
// hold already. Either failure means the ring was corrupted after the
// kernel wrote it: the ring is then broken, because no answer to such an
// entry can reach the right command (the kernel finds its commands by the
// cmd_id in the slot); action/reset_ring fails the real commands with BUSY
// instead. The ids come from takeAhead, one call into C for a batch; an
// entry whose cmd_id changed since is corrupt too.
func (r *Ring) take(c *Command, pos uint32, slot []byte) error {
	id := binary.LittleEndian.Uint16(slot[hdrCmdIDOff:])
	if r.iAhead == r.nAhead {
		if err := r.takeAhead(pos); err != nil {
			return err
		}
	}
	if want := r.ahead[r.iAhead]; id != want {
		atomic.StoreUint32(r.brokenFlag(), 1)
		return fmt.Errorf("cmd_id of the entry at %d changed from %d to %d after it was taken: %w",
			pos, want, id, ErrBrokenRing)
	}
	r.iAhead++
	c.ID = id
	c.gen = r.aheadGen
	c.live = true
	return nil
}

// takeAhead takes the cmd_ids of the commands queued from the entry at
// pos up to the cmd_head snapshot (at most batchMax; PAD and TMR entries
// have none), stopping early at an entry header Next will refuse.
func (r *Ring) takeAhead(pos uint32) error {
	n := 0
	for p := pos; p != r.head && n < batchMax; {
		lenOp := binary.LittleEndian.Uint32(r.mem[r.cmdrOff+p:])
		length := lenOp &^ OpMask
		if length == 0 || length > r.dist(p, r.head) || length > r.cmdrSize-p {
			break
		}
		if op := lenOp & OpMask; op != OpPad && op != OpTMR {
			if length < hdrCmdIDOff+2 {
				break
			}
			r.ahead[n] = binary.LittleEndian.Uint16(r.mem[r.cmdrOff+p+hdrCmdIDOff:])
			n++
		}
		p = (p + length) % r.cmdrSize
	}
	r.nAhead, r.iAhead = 0, 0
	if n == 0 {
		return fmt.Errorf("the entry at %d changed after it was fetched: %w", pos, ErrBrokenRing)
	}
	r.rs.lock()
	gen := C.gotcmu_ring_take_n(r.c, (*C.uint16_t)(unsafe.Pointer(&r.ahead[0])), C.uint32_t(n))
	r.rs.unlock()
	if gen < 0 {
		return fmt.Errorf("a cmd_id of the %d entries from %d is not one the kernel can have issued now: %w",
			n, pos, ErrBrokenRing)
	}
	r.nAhead, r.aheadGen = n, uint64(gen)
	return nil
}

// checkTail reports ErrBrokenRing if cmd_tail is not what this handler
// last stored. Only the handler writes cmd_tail, except action/reset_ring,
// which zeroes it together with cmd_head: a tail that changed behind the
// handler's back is a ring reset it did not make, and every position it
// holds (fetch position, tail) is stale.
func (r *Ring) checkTail() error {
	r.rs.lock()
	tails := uint64(C.gotcmu_ring_check_tail(r.c))
	r.rs.unlock()
	if found, ours := uint32(tails>>32), uint32(tails); found != ours {
		return fmt.Errorf("cmd_tail %d is not the %d this handler stored (reset_ring from elsewhere?): %w",
			found, ours, ErrBrokenRing)
	}
	return nil
}

func (r *Ring) decodeTMR(slot []byte) {
	if r.OnTMR == nil || len(slot) < TMREntrySize {
		return
	}
	n := binary.LittleEndian.Uint32(slot[tmrCmdCntOff:])
	if max := uint32(len(slot)-tmrCmdIDsOff) / 2; n > max {
		n = max
	}
	r.tmrIDs = r.tmrIDs[:0]
	for i := uint32(0); i < n; i++ {
		r.tmrIDs = append(r.tmrIDs, binary.LittleEndian.Uint16(slot[tmrCmdIDsOff+2*i:]))
	}
	r.OnTMR(slot[tmrTypeOff], r.tmrIDs)
}

// decodeCmd copies the CDB and iovecs of one CMD entry into c, checking
// each against the entry and the data area.
func (r *Ring) decodeCmd(c *Command, slot []byte) {
	c.ID = binary.LittleEndian.Uint16(slot[hdrCmdIDOff:])
	if len(slot) < CmdEntrySize {
		c.Err = ErrShortEntry
		return
	}
	iovCnt := uint64(binary.LittleEndian.Uint32(slot[reqIovCntOff:]))
	bidiCnt := uint64(binary.LittleEndian.Uint32(slot[reqIovBidiCntOff:]))
	if ReqIovOff+(iovCnt+bidiCnt)*IovecSize > uint64(len(slot)) {
		c.Err = ErrBadIovCnt
		return
	}
	// cdb_off is an offset from the start of the map; the kernel places
	// the CDB inside the entry, after the iovecs.
	slotStart := uint64(uintptr(unsafe.Pointer(&slot[0])) - uintptr(unsafe.Pointer(&r.mem[0])))
	cdbOff := binary.LittleEndian.Uint64(slot[reqCdbOffOff:])
	if cdbOff < slotStart+ReqIovOff || cdbOff >= slotStart+uint64(len(slot)) {
		c.Err = ErrBadCDB
		return
	}
	cdb := slot[cdbOff-slotStart:]
	var add byte
	if len(cdb) > 7 {
		add = cdb[7]
	}
	n := CDBLen(cdb[0], add)
	if n > len(cdb) {
		c.Err = ErrBadCDB
		return
	}
	c.CDB = c.cdbBuf[:copy(c.cdbBuf[:], cdb[:n])]

	iov := c.iovBuf[:0]
	for i := uint64(0); i < iovCnt+bidiCnt; i++ {
		e := slot[ReqIovOff+i*IovecSize:]
		base := binary.LittleEndian.Uint64(e)
		ln := binary.LittleEndian.Uint64(e[8:])
		if base < r.dataOff || ln > uint64(len(r.mem)) || base > uint64(len(r.mem))-ln {
			c.Err = ErrBadIovec
			c.iovBuf = iov
			return
		}
		iov = append(iov, r.mem[base:base+ln:base+ln])
	}
	c.iovBuf = iov
	c.Iov = iov[:iovCnt:iovCnt]
	c.BidiIov = iov[iovCnt:]
}

// Complete writes c's response into the oldest unanswered ring slot and
// advances cmd_tail past it (and past any PAD or TMR entries behind it),
// as tcmu_handle_completions expects: the slot's cmd_id is rewritten to
// c.ID, its len_op is left alone. Completions may come in any order. The
// kernel is not told until Kick. Completing a command fetched before a
// Reset, or completing a command twice, does nothing. The rules are
// cring.h's gotcmu_ring_complete; an entry header that changed after Next
// validated it, or an outstanding count that disagrees with the slots
// fetched, marks the ring broken instead of writing on, and Next then
// reports ErrBrokenRing so that the caller resets it.
func (r *Ring) Complete(c *Command) {
	if !c.live {
		return
	}
	c.live = false
	var sense *C.uint8_t
	if len(c.Sense) > 0 {
		sense = (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(c.Sense)))
	}
	r.rs.lock()
	C.gotcmu_ring_complete(r.c, C.uint16_t(c.ID), C.uint64_t(c.gen), C.uint8_t(c.uflags()), C.uint8_t(c.Status),
		C.uint32_t(c.ReadLen), sense, C.uint32_t(len(c.Sense)))
	r.rs.unlock()
}

// uflags is the response's TCMU_UFLAG_* bits.
func (c *Command) uflags() uint8 {
	switch {
	case c.unknownOp:
		return UFlagUnknownOp
	case c.HasReadLen:
		return UFlagReadLen
	}
	return 0
}

// CompleteLater is Complete for the goroutine that calls Next, for a
// command answered within the batch it is draining: the response is kept
// (c may be reused at once) and written with the batch's others by Flush,
// one call into C for the batch. The kernel is not told until Kick, after
// Flush.
func (r *Ring) CompleteLater(c *Command) {
	if !c.live {
		return
	}
	if r.nLater == len(r.later) {
		r.Flush()
	}
	c.live = false
	a := &r.later[r.nLater]
	r.nLater++
	a.gen = C.uint64_t(c.gen)
	a.id = C.uint16_t(c.ID)
	a.uflags = C.uint8_t(c.uflags())
	a.status = C.uint8_t(c.Status)
	a.read_len = C.uint32_t(c.ReadLen)
	n := copy(unsafe.Slice((*byte)(unsafe.Pointer(&a.sense[0])), len(a.sense)), c.Sense)
	a.sense_len = C.uint32_t(n)
}

// Flush writes the responses CompleteLater kept, then releases as Release
// does: the end of a drained batch, before Kick.
func (r *Ring) Flush() {
	r.rs.lock()
	C.gotcmu_ring_complete_n(r.c, &r.later[0], C.uint32_t(r.nLater))
	r.rs.unlock()
	r.nLater = 0
}

// Release advances cmd_tail past PAD and TMR entries with no command
// behind them waiting for an answer, so their ring space is reclaimed
// even when no command completes afterwards. The command loop calls it
// after draining a batch.
func (r *Ring) Release() {
	r.rs.lock()
	C.gotcmu_ring_release(r.c)
	r.rs.unlock()
}

// Kick rings the doorbell if anything was completed since the last kick.
// Concurrent callers are coalesced: while one goroutine is writing, the
// others only leave a note, and the writer goes round once more if it
// finds one. So each drained batch costs one 4-byte write.
func (r *Ring) Kick() error {
	pending := (*uint32)(unsafe.Pointer(&r.c.kick_pending))
	kicking := (*uint32)(unsafe.Pointer(&r.c.kicking))
	if atomic.LoadUint32(pending) == 0 {
		return nil
	}
	if !atomic.CompareAndSwapUint32(kicking, 0, 1) {
		return nil
	}
	var err error
	for {
		if atomic.SwapUint32(pending, 0) == 1 {
			r.rs.lock() // see raceSync
			if e := r.doorbell(); e != nil && err == nil {
				err = e
			}
			r.rs.unlock()
		}
		atomic.StoreUint32(kicking, 0)
		// A completion that arrived after our Swap saw kicking==1 and
		// left it to us: take it, unless another goroutine (or a C
		// thread, gotcmu_ring_kick) already has.
		if atomic.LoadUint32(pending) == 0 || !atomic.CompareAndSwapUint32(kicking, 0, 1) {
			return err
		}
	}
}
