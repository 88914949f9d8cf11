package uio

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Ring is the TCMU command ring of one device: the mailbox, the circular
// command area and the data area, all within one mapping.
//
// Refresh, Next and Reset are called by one goroutine at a time (the
// device's command loop). Complete, Release and Kick may be called from
// any goroutine, concurrently with Next and with each other.
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
	head    uint32 // cmd_head snapshot, loaded once per Refresh
	next    uint32 // offset of the next entry to fetch
	tmrIDs  []uint16
	fetched atomic.Uint32 // last fetch position, published for Complete

	// Completion side.
	mu          sync.Mutex
	tail        uint32 // our copy of mb->cmd_tail
	gen         uint64 // bumped by Reset; completions of older commands are dropped
	outstanding int

	// held has a bit set for every cmd_id fetched and not yet completed.
	// The kernel frees a cmd_id only after it has read the completion from
	// the ring, which it may do at any time once cmd_tail has moved past it
	// (our doorbell, block_dev, the unmap worker and command timeouts all
	// run tcmu_handle_completions), so an id is ours exactly until
	// Complete. Meeting a held id again means the ring was corrupted:
	// serving it would make the kernel look the id up twice, find it gone
	// the second time and mark the ring broken.
	held [1 << 16 / 64]uint64

	kickPending atomic.Uint32
	kicking     atomic.Uint32

	// broken is set when the completion side finds an entry header that
	// changed under it; Next then reports ErrBrokenRing until Reset.
	broken atomic.Bool
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
	r := &Ring{mem: mem, doorbell: doorbell, cmdrOff: off, cmdrSize: size, dataOff: uint64(off) + uint64(size)}
	r.resync()
	return r, nil
}

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
	r.tail, r.next, r.head = t, t, t
	r.fetched.Store(t)
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
	r.mu.Lock()
	r.gen++
	r.outstanding = 0
	r.tail, r.next, r.head = 0, 0, 0
	r.fetched.Store(0)
	r.broken.Store(false)
	r.held = [len(r.held)]uint64{}
	r.mu.Unlock()
}

// Outstanding returns how many fetched commands are not yet completed.
func (r *Ring) Outstanding() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outstanding
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

// Next fetches the next command up to the cmd_head snapshot taken by
// Refresh into c, and reports false when there is none. PAD entries are
// skipped, TMR entries are passed to OnTMR and consumed, and entries with
// an unknown opcode are completed at once with TCMU_UFLAG_UNKNOWN_OP. A
// CMD entry whose contents are malformed is still returned, with c.Err
// set. The error is ErrBrokenRing when the entry headers themselves cannot
// be trusted.
func (r *Ring) Next(c *Command) (bool, error) {
	if r.broken.Load() {
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
		r.fetched.Store(r.next)
		switch lenOp & OpMask {
		case OpPad:
			continue
		case OpTMR:
			r.decodeTMR(slot)
			continue
		case OpCmd:
			c.reset()
			if err := r.take(c, slot); err != nil {
				return false, err
			}
			r.decodeCmd(c, slot)
			return true, nil
		default:
			// An opcode this handler does not know: the kernel looks
			// the slot up by cmd_id like any command and fails it with
			// LOGICAL UNIT COMMUNICATION FAILURE.
			c.reset()
			if err := r.take(c, slot); err != nil {
				return false, err
			}
			c.unknownOp = true
			r.Complete(c)
		}
	}
	return false, nil
}

// take makes c the live command of the entry in slot, whose cmd_id must
// be one the kernel can have issued (1..65535) and does not hold already.
// Either failure means the ring was corrupted after the kernel wrote it:
// the ring is then broken, because no answer to such an entry can reach
// the right command (the kernel finds its commands by the cmd_id in the
// slot); action/reset_ring fails the real commands with BUSY instead.
func (r *Ring) take(c *Command, slot []byte) error {
	id := binary.LittleEndian.Uint16(slot[hdrCmdIDOff:])
	r.mu.Lock()
	defer r.mu.Unlock()
	w, bit := id/64, uint64(1)<<(id%64)
	if id == 0 || r.held[w]&bit != 0 {
		r.broken.Store(true)
		return fmt.Errorf("cmd_id %d of the entry at %d is not one the kernel can have issued now: %w",
			id, r.next, ErrBrokenRing)
	}
	r.held[w] |= bit
	c.ID = id
	c.gen = r.gen
	c.live = true
	r.outstanding++
	return nil
}

// checkTail reports ErrBrokenRing if cmd_tail is not what this handler
// last stored. Only the handler writes cmd_tail, except action/reset_ring,
// which zeroes it together with cmd_head: a tail that changed behind the
// handler's back is a ring reset it did not make, and every position it
// holds (fetch position, tail) is stale.
func (r *Ring) checkTail() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := atomic.LoadUint32(r.u32(mbCmdTailOff)); t != r.tail {
		r.broken.Store(true)
		return fmt.Errorf("cmd_tail %d is not the %d this handler stored (reset_ring from elsewhere?): %w",
			t, r.tail, ErrBrokenRing)
	}
	return nil
}

// resetBehind reports, with r.mu held, whether the ring was reset behind
// the handler's back (see checkTail): cmd_tail is not what the handler
// stored, or cmd_head is behind what it fetched. The second catches a
// reset while the tail was at 0; it misses one after which new commands
// already reach past the fetch position, a window of the time it takes
// the kernel to queue them. That window is why a handler resets its ring
// itself, with the device blocked (Ring.Reset), and nobody else should.
func (r *Ring) resetBehind(fetched uint32) bool {
	t := atomic.LoadUint32(r.u32(mbCmdTailOff))
	h := atomic.LoadUint32(r.u32(mbCmdHeadOff))
	return t != r.tail || h >= r.cmdrSize || r.dist(t, h) < r.dist(t, fetched)
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
// Reset, or completing a command twice, does nothing.
func (r *Ring) Complete(c *Command) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !c.live || c.gen != r.gen || r.outstanding == 0 {
		return
	}
	c.live = false
	r.outstanding--
	fetched := r.fetched.Load()
	if r.resetBehind(fetched) {
		// The slot at our tail may hold a newer command by now.
		r.broken.Store(true)
		return
	}
	if !r.skipNoReply(fetched) || r.tail == fetched {
		// Either an entry header changed after Next validated it, or
		// the outstanding count disagrees with the CMD slots fetched.
		// Writing on would corrupt the ring; stop and let Next report
		// ErrBrokenRing so the caller resets it.
		r.broken.Store(true)
		return
	}
	length, _, ok := r.entryAt(r.tail, fetched)
	if !ok {
		r.broken.Store(true)
		return
	}
	slot := r.mem[r.cmdrOff+r.tail : r.cmdrOff+r.tail+length : r.cmdrOff+r.tail+length]
	binary.LittleEndian.PutUint16(slot[hdrCmdIDOff:], c.ID)
	uflags := byte(0)
	switch {
	case c.unknownOp:
		uflags = UFlagUnknownOp
	case c.HasReadLen:
		uflags = UFlagReadLen
	}
	slot[hdrUFlagsOff] = uflags
	if len(slot) > rspStatusOff {
		slot[rspStatusOff] = c.Status
	}
	if c.HasReadLen && len(slot) >= rspReadLenOff+4 {
		binary.LittleEndian.PutUint32(slot[rspReadLenOff:], c.ReadLen)
	}
	if len(slot) > rspSenseOff {
		// The kernel copies all TCMU_SENSE_BUFFERSIZE bytes to the
		// initiator (transport_copy_sense_to_cmd); clear what c.Sense
		// does not cover, which still holds the stolen slot's iovecs.
		sense := slot[rspSenseOff:min(len(slot), rspSenseOff+SenseBufferSize)]
		clear(sense[copy(sense, c.Sense):])
	}
	r.tail = (r.tail + length) % r.cmdrSize
	r.skipNoReply(fetched)
	// Release: the response above is visible before the new tail.
	atomic.StoreUint32(r.u32(mbCmdTailOff), r.tail)
	r.held[c.ID/64] &^= 1 << (c.ID % 64)
	r.kickPending.Store(1)
}

// entryAt re-reads the header of the entry at pos, which Next validated
// when it fetched it, and checks it again: the kernel never rewrites a
// fetched entry, but the region is shared and a corrupted header must not
// send the tail past what was fetched.
func (r *Ring) entryAt(pos, fetched uint32) (length, op uint32, ok bool) {
	lenOp := binary.LittleEndian.Uint32(r.mem[r.cmdrOff+pos:])
	length = lenOp &^ OpMask
	ok = length != 0 && length <= r.cmdrSize-pos && length <= r.dist(pos, fetched)
	return length, lenOp & OpMask, ok
}

// skipNoReply moves the tail past PAD and TMR entries, which need no
// response, but never past what has been fetched. It reports false if an
// entry header is no longer valid.
func (r *Ring) skipNoReply(fetched uint32) bool {
	for r.tail != fetched {
		length, op, ok := r.entryAt(r.tail, fetched)
		if !ok {
			r.broken.Store(true)
			return false
		}
		if op != OpPad && op != OpTMR {
			return true
		}
		r.tail = (r.tail + length) % r.cmdrSize
	}
	return true
}

// Release advances cmd_tail past PAD and TMR entries with no command
// behind them waiting for an answer, so their ring space is reclaimed
// even when no command completes afterwards. The command loop calls it
// after draining a batch.
func (r *Ring) Release() {
	r.mu.Lock()
	t := r.tail
	fetched := r.fetched.Load()
	if r.resetBehind(fetched) {
		r.broken.Store(true)
		r.mu.Unlock()
		return
	}
	r.skipNoReply(fetched)
	if r.tail != t {
		atomic.StoreUint32(r.u32(mbCmdTailOff), r.tail)
		r.kickPending.Store(1)
	}
	r.mu.Unlock()
}

// Kick rings the doorbell if anything was completed since the last kick.
// Concurrent callers are coalesced: while one goroutine is writing, the
// others only leave a note, and the writer goes round once more if it
// finds one. So each drained batch costs one 4-byte write.
func (r *Ring) Kick() error {
	if r.kickPending.Load() == 0 {
		return nil
	}
	if !r.kicking.CompareAndSwap(0, 1) {
		return nil
	}
	var err error
	for {
		if r.kickPending.Swap(0) == 1 {
			if e := r.doorbell(); e != nil && err == nil {
				err = e
			}
		}
		r.kicking.Store(0)
		// A completion that arrived after our Swap saw kicking==1 and
		// left it to us: take it, unless another goroutine already has.
		if r.kickPending.Load() == 0 || !r.kicking.CompareAndSwap(0, 1) {
			return err
		}
	}
}
