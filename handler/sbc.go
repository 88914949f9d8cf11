package handler

import (
	"fmt"
	"runtime/debug"
	"syscall"
)

// sbcCommands are the block commands (SBC-3) this file family implements:
// medium access in readwrite.go, verify.go, unmap.go, caw.go, the
// provisioning status in lbastatus.go and the copy manager in xcopy.go.
//
// CDB usage data (SPC-4 6.35.3) marks the bits each command evaluates. The
// control byte is ctl as for every row of the table; the GROUP NUMBER is
// accepted and ignored (0x1f). DPO and FUA are always evaluated (0x18 in
// byte 1), so MODE SENSE must report DPOFUA=1 (SBC-3 6.4.1): FUA is honoured
// and DPO is accepted.
var sbcCommands = []opInfo{
	{name: "READ(6)", op: 0x08, usage: []byte{0x08, 0x1f, 0xff, 0xff, 0xff, ctl}, dir: dataIn, medium: mediumReads, flags: flagIO | flagBlockData, fn: readCmd},
	{name: "READ(10)", op: 0x28, usage: []byte{0x28, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, ctl}, dir: dataIn, medium: mediumReads, flags: flagIO | flagBlockData, fn: readCmd},
	{name: "READ(12)", op: 0xa8, usage: []byte{0xa8, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, ctl}, dir: dataIn, medium: mediumReads, flags: flagIO | flagBlockData, fn: readCmd},
	{name: "READ(16)", op: 0x88, usage: []byte{0x88, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, ctl}, dir: dataIn, medium: mediumReads, flags: flagIO | flagBlockData, fn: readCmd},
	{name: "WRITE(6)", op: 0x0a, usage: []byte{0x0a, 0x1f, 0xff, 0xff, 0xff, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO | flagBlockData, fn: writeCmd},
	{name: "WRITE(10)", op: 0x2a, usage: []byte{0x2a, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO | flagBlockData, fn: writeCmd},
	{name: "WRITE(12)", op: 0xaa, usage: []byte{0xaa, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO | flagBlockData, fn: writeCmd},
	{name: "WRITE(16)", op: 0x8a, usage: []byte{0x8a, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO | flagBlockData, fn: writeCmd},
	{name: "WRITE AND VERIFY(10)", op: 0x2e, usage: []byte{0x2e, 0xf2, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO | flagBlockData, fn: writeVerifyCmd},
	{name: "WRITE AND VERIFY(12)", op: 0xae, usage: []byte{0xae, 0xf2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO | flagBlockData, fn: writeVerifyCmd},
	{name: "WRITE AND VERIFY(16)", op: 0x8e, usage: []byte{0x8e, 0xf2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO | flagBlockData, fn: writeVerifyCmd},
	{name: "VERIFY(10)", op: 0x2f, usage: []byte{0x2f, 0xf6, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, ctl}, dir: dataOut, medium: mediumReads, flags: flagIO, fn: verifyCmd},
	{name: "VERIFY(12)", op: 0xaf, usage: []byte{0xaf, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, ctl}, dir: dataOut, medium: mediumReads, flags: flagIO, fn: verifyCmd},
	{name: "VERIFY(16)", op: 0x8f, usage: []byte{0x8f, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, ctl}, dir: dataOut, medium: mediumReads, flags: flagIO, fn: verifyCmd},
	{name: "PRE-FETCH(10)", op: 0x34, usage: []byte{0x34, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, ctl}, dir: dataNone, medium: mediumReads, fn: prefetchCmd},
	{name: "PRE-FETCH(16)", op: 0x90, usage: []byte{0x90, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, ctl}, dir: dataNone, medium: mediumReads, fn: prefetchCmd},
	{name: "SYNCHRONIZE CACHE(10)", op: 0x35, usage: []byte{0x35, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, ctl}, dir: dataNone, medium: mediumChanges, flags: flagIO, fn: syncCacheCmd},
	{name: "SYNCHRONIZE CACHE(16)", op: 0x91, usage: []byte{0x91, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, ctl}, dir: dataNone, medium: mediumChanges, flags: flagIO, fn: syncCacheCmd},
	{name: "UNMAP", op: 0x42, usage: []byte{0x42, 0x01, 0x00, 0x00, 0x00, 0x00, 0x1f, 0xff, 0xff, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO, fn: unmapCmd},
	{name: "WRITE SAME(10)", op: 0x41, usage: []byte{0x41, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO | flagBlockData, fn: writeSameCmd},
	{name: "WRITE SAME(16)", op: 0x93, usage: []byte{0x93, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO | flagBlockData, fn: writeSameCmd},
	{name: "COMPARE AND WRITE", op: 0x89, usage: []byte{0x89, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0xff, 0x1f, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO | flagBlockData, fn: compareAndWriteCmd},
	{name: "GET LBA STATUS", op: 0x9e, sa: 0x12, hasSA: true, usage: []byte{0x9e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, ctl}, dir: dataIn, medium: mediumReads, fn: getLBAStatusCmd},
	{name: "EXTENDED COPY(LID1)", op: 0x83, sa: 0x00, hasSA: true, usage: []byte{0x83, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, ctl}, dir: dataOut, medium: mediumChanges, flags: flagIO, fn: extendedCopyCmd},
	{name: "RECEIVE COPY RESULTS(COPY STATUS)", op: 0x84, sa: 0x00, hasSA: true, usage: []byte{0x84, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, ctl}, dir: dataIn, medium: mediumNone, fn: receiveCopyStatusCmd},
	{name: "RECEIVE COPY RESULTS(OPERATING PARAMETERS)", op: 0x84, sa: 0x03, hasSA: true, usage: []byte{0x84, 0x03, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, ctl}, dir: dataIn, medium: mediumNone, fn: receiveCopyResultsCmd},
}

// Additional sense codes used only by the block commands.
const (
	// ascInvalidFieldInCommandIU: the Data-Out buffer of a data CDB does
	// not match its transfer length (SAM-5 5.4; what LIO's
	// target_cmd_size_check answers since Linux 5.11).
	ascInvalidFieldInCommandIU asc = 0x0e03
)

// blockLimits is what the device server enforces and what the Block Limits
// VPD page (SBC-3 6.5.3) must advertise: the page is built from this so the
// two cannot disagree. Lengths are in logical blocks.
type blockLimits struct {
	// maxTransfer is hw_max_sectors, advertised as MAXIMUM and OPTIMAL
	// TRANSFER LENGTH. Like LIO's own backstores, the handler does not
	// reject longer transfers: the kernel has already sized the data
	// area for them, and initiators (libiscsi's tests among them) send
	// them.
	maxTransfer uint32
	// maxCompareAndWrite is MAXIMUM COMPARE AND WRITE LENGTH.
	maxCompareAndWrite uint8
	// maxUnmapLBAs (MAXIMUM UNMAP LBA COUNT) bounds the sum of the
	// blocks of one UNMAP command; maxUnmapDescriptors its descriptors.
	// Both are 0 when the backend cannot discard.
	maxUnmapLBAs        uint32
	maxUnmapDescriptors uint32
	// unmapGranularity and unmapAlignment (OPTIMAL UNMAP GRANULARITY,
	// UNMAP GRANULARITY ALIGNMENT with UGAVALID) come from the backend.
	unmapGranularity uint32
	unmapAlignment   uint32
	unmapAlignValid  bool
	// maxWriteSame is MAXIMUM WRITE SAME LENGTH. WSNZ is always 1: a
	// WRITE SAME of zero blocks is refused (see writeSameCmd).
	maxWriteSame uint64
}

const (
	// defaultMaxUnmapLBAs bounds the blocks of one UNMAP: 1 Mi blocks,
	// 512 MiB of 512-byte blocks, enough for any initiator to reclaim
	// quickly while keeping one command short. libiscsi's
	// Inquiry.BlockLimits takes anything above 1024*1024 (other than
	// "no limit", FFFFFFFFh) for a broken target. Limits.MaxDiscardBytes
	// does not lower it: the handler splits discards to that size.
	defaultMaxUnmapLBAs = 1 << 20
	// maxUnmapDescriptors is the largest count an UNMAP parameter list
	// can carry ((65535-8)/16); the real bound is maxUnmapLBAs.
	maxUnmapDescriptors = 4095
	// maxWriteSameBlocks is MAXIMUM WRITE SAME LENGTH, with or without
	// the UNMAP bit; pieces follow Limits.MaxWriteSameBytes and
	// MaxDiscardBytes.
	maxWriteSameBlocks = 1 << 22
)

// blockLimits returns the limits for the current settings.
func (d *Device) blockLimits() blockLimits {
	s := d.set.Load()
	bs := uint64(s.blockSize)
	l := blockLimits{
		maxTransfer:        s.maxSectors,
		maxCompareAndWrite: 1,
		maxWriteSame:       maxWriteSameBlocks,
	}
	if d.lim.Discard {
		l.maxUnmapLBAs = defaultMaxUnmapLBAs
		l.maxUnmapDescriptors = maxUnmapDescriptors
		if g := uint64(d.lim.DiscardGranularity) / bs; g > 0 {
			l.unmapGranularity = uint32(g)
			l.unmapAlignment = uint32(uint64(d.lim.DiscardAlignment) / bs % g)
			l.unmapAlignValid = true
		}
	}
	return l
}

// blockAddr decodes the LOGICAL BLOCK ADDRESS and TRANSFER LENGTH of a
// READ, WRITE, WRITE AND VERIFY or VERIFY CDB by its size group
// (SBC-3 5.x): 6-byte CDBs carry a 21-bit LBA and an 8-bit length where 0
// means 256 blocks (SBC-3 5.13, 5.37).
func blockAddr(cdb []byte) (lba uint64, n uint64) {
	switch cdb[0] >> 5 {
	case 0:
		lba = uint64(be24(cdb[1:]) & 0x1fffff)
		n = uint64(cdb[4])
		if n == 0 {
			n = 256
		}
	case 1, 2:
		lba, n = uint64(be32(cdb[2:])), uint64(be16(cdb[7:]))
	case 5:
		lba, n = uint64(be32(cdb[2:])), uint64(be32(cdb[6:]))
	default:
		lba, n = be64(cdb[2:]), uint64(be32(cdb[10:]))
	}
	return lba, n
}

// inRange reports whether n blocks from lba lie within the medium,
// without overflowing for any 64-bit LBA (SBC-3 4.5: LBA plus length
// beyond the capacity is LOGICAL BLOCK ADDRESS OUT OF RANGE).
func (s *settings) inRange(lba, n uint64) bool {
	return lba <= s.numLBAs && n <= s.numLBAs-lba
}

// protectField checks RDPROTECT, WRPROTECT or VRPROTECT (bits 7-5 of byte
// 1): gotcmu's media carry no protection information, so any nonzero
// value is INVALID FIELD IN CDB (SBC-3 5.13, table 60 footnote).
func (c *Cmd) protectField() (result, bool) {
	if c.CDB[1]&0xe0 != 0 {
		return c.invalidCDBField(1, 7), false
	}
	return done, true
}

// dataCDBLength checks the Data-Out buffer of a data CDB (WRITE, WRITE AND
// VERIFY, COMPARE AND WRITE) against the length its CDB implies. The
// kernel passes the initiator's expected transfer length without checking
// it for TCMU (passthrough_parse_cdb); LIO's own backstores reject any
// mismatch for these commands (target_cmd_size_check), and so does gotcmu:
// writing part of what the initiator meant, or padding it, would corrupt
// data silently.
func (c *Cmd) dataCDBLength(want uint64) (result, bool) {
	if uint64(c.DataLen()) != want {
		return c.check(keyIllegalRequest, ascInvalidFieldInCommandIU), false
	}
	return done, true
}

// writeFUA tells whether a write must be stable before it completes: the
// CDB's FUA bit, or a disabled write cache (WCE=0 in the Caching mode page
// means every write completes only once on the medium, SBC-3 6.4.5).
// WRITE(6) has no FUA bit.
func (c *Cmd) writeFUA(s *settings) bool {
	if c.CDB[0]>>5 == 0 {
		return c.dev.needFUA(!s.writeCache)
	}
	return c.dev.needFUA(c.CDB[1]&0x08 != 0 || !s.writeCache)
}

// needFUA is whether a write that must be stable when it completes needs
// IO.FUA: not from a backend whose writes are stable when they complete.
func (d *Device) needFUA(stable bool) bool {
	return stable && !d.lim.StableWrites
}

// sbcDevice is the per-device state of the block commands.
type sbcDevice struct {
	// writes makes emulated COMPARE AND WRITE atomic (rangelock.go).
	writes rangeLock
	// scratch supplies non-Go-heap buffers for emulation (scratch.go).
	scratch scratchPool
	// copyUsers counts copies from other devices using this one's
	// backend; Close waits for them (xcopy.go).
	copyUsers copyUsers
	// copies holds the status of finished EXTENDED COPYs for RECEIVE
	// COPY RESULTS (xcopy.go).
	copies heldCopies
}

// close releases the block commands' resources: it waits for copies from
// other devices to finish with this backend and unmaps scratch buffers.
func (s *sbcDevice) close() {
	s.copyUsers.close()
	s.scratch.close()
}

// sbcCmd is the state a multi-step block command keeps between its IOs.
// It lives in the pooled Cmd, so continuations (Cmd.then) stay top-level
// functions and steady state does not allocate.
type sbcCmd struct {
	// off and left are the byte offset on the medium of the next step and
	// the bytes still to do; done is the bytes already done (an offset
	// into the Data-Out buffer or the verified range).
	off, left, done int64
	// fua is the FUA of writes the command issues.
	fua bool
	// bytchk is the BYTCHK of VERIFY and WRITE AND VERIFY.
	bytchk byte
	// mis is the offset of the first miscompare a comparison found, or
	// -1.
	mis int64
	// iov is storage for sub-iovecs handed to the backend.
	iov [][]byte
	// idx and count walk the descriptors of UNMAP; lba and n are the
	// range being processed.
	idx, count int
	lba, n     uint64
	// hold is the command's place in the device's range lock.
	hold rangeHold
	// xcopy is the state of an EXTENDED COPY.
	xcopy xcopyState
}

// releaseSBC returns what a block command borrowed from its device; the
// device calls it when it recycles the command.
func (c *Cmd) releaseSBC() {
	st := &c.sbc
	if st.hold.rl != nil {
		st.hold.rl.release(c)
	}
	if c.scratch != nil {
		c.dev.sbc.scratch.put(c.scratch)
		c.scratch = nil
	}
	st.xcopy.release(c.dev)
	iov := st.iov[:0]
	clear(iov[:cap(iov)])
	*st = sbcCmd{iov: iov}
}

// scratchBuf returns the command's scratch buffer, taking one from the
// device pool the first time.
func (c *Cmd) scratchBuf() ([]byte, error) {
	if c.scratch == nil {
		b, err := c.dev.sbc.scratch.get()
		if err != nil {
			return nil, err
		}
		c.scratch = b
	}
	return c.scratch, nil
}

// guarded runs fn, which reads or writes the command's Data-Out or Data-In
// buffer outside the command loop (in a backend's completion goroutine).
// Those buffers are data-area pages; if the kernel has reclaimed one (a
// ring reset under the command), touching it raises SIGBUS, and uio's
// package doc asks every goroutine that touches them to turn the fault
// into a panic. guarded does so for the call and reports a fault as an
// error instead of crashing the daemon. Other panics propagate.
func (c *Cmd) guarded(fn func(*Cmd)) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if p := recover(); p != nil {
			if _, fault := p.(interface{ Addr() uintptr }); !fault {
				panic(p)
			}
			err = fmt.Errorf("touch data area: %v: %w", p, syscall.EFAULT)
		}
	}()
	fn(c)
	return nil
}
