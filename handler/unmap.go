package handler

import (
	"encoding/binary"
	"math"
)

const (
	unmapHeaderLen     = 8  // UNMAP parameter list header (SBC-3 5.28.2)
	unmapDescriptorLen = 16 // UNMAP block descriptor
	// writeSameChunk is the most one emulated WRITE SAME write covers: the
	// scratch buffer, filled with the pattern, repeated in the iovec.
	writeSameChunk = 16 * scratchSize
)

// unmapCmd serves UNMAP (SBC-3 5.28). Only a thin-provisioned device
// (Limits.Discard: LBPME and LBPU set) supports it; elsewhere it is an
// INVALID COMMAND OPERATION CODE, as for LIO with emulate_tpu off.
//
// The parameter list is checked as SBC-3 asks before anything is
// deallocated: a PARAMETER LIST LENGTH of zero is no error; one shorter
// than the header is PARAMETER LIST LENGTH ERROR; a Data-Out buffer
// shorter than the list is INVALID FIELD IN CDB (as LIO answers a short
// Data-Out, target_cmd_size_check). The UNMAP BLOCK DESCRIPTOR DATA LENGTH
// is cut to the list, and an incomplete last descriptor is ignored. More
// descriptors than MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT, or more blocks in
// total than MAXIMUM UNMAP LBA COUNT, is INVALID FIELD IN PARAMETER LIST;
// a descriptor beyond the capacity is LOGICAL BLOCK ADDRESS OUT OF RANGE.
// Descriptors of zero blocks are no error.
func unmapCmd(c *Cmd) result {
	if !c.dev.lim.Discard {
		return c.check(keyIllegalRequest, ascInvalidCommandOperationCode)
	}
	if c.CDB[1]&0x01 != 0 {
		// ANCHOR, and ANC_SUP is zero.
		return c.invalidCDBField(1, 0)
	}
	pll := int(be16(c.CDB[7:]))
	switch {
	case pll == 0:
		return c.good()
	case pll < unmapHeaderLen:
		return c.check(keyIllegalRequest, ascParameterListLengthError)
	case c.DataLen() < pll:
		return c.invalidCDBField(7, -1)
	}
	var hdr [unmapHeaderLen]byte
	c.dataOut(hdr[:])
	count := min(int(be16(hdr[2:])), pll-unmapHeaderLen) / unmapDescriptorLen
	lim := c.dev.blockLimits()
	if count > int(lim.maxUnmapDescriptors) {
		return c.invalidParamField(2, -1)
	}
	if count == 0 {
		return c.good()
	}
	// The descriptors are copied out of the data area now, on the command
	// loop: the steps that deallocate them run in backend goroutines.
	buf, err := c.scratchBuf()
	if err != nil {
		return c.fail(err)
	}
	list := buf[:count*unmapDescriptorLen]
	copyFromIov(list, c.Iov, unmapHeaderLen)
	s := c.settings()
	var total uint64
	lo, hi := uint64(math.MaxUint64), uint64(0)
	for i := range count {
		d := list[i*unmapDescriptorLen:]
		lba, n := be64(d), uint64(be32(d[8:]))
		total += n
		if total > uint64(lim.maxUnmapLBAs) {
			return c.invalidParamField(unmapHeaderLen+i*unmapDescriptorLen+8, -1)
		}
		if !s.inRange(lba, n) {
			return c.lbaOutOfRange()
		}
		if n > 0 {
			lo, hi = min(lo, lba), max(hi, lba+n)
		}
	}
	if total == 0 {
		return c.good()
	}
	st := &c.sbc
	st.idx, st.count = 0, coalesceDescriptors(list)
	// One hold covers the span of every descriptor: it only matters
	// while an emulated COMPARE AND WRITE runs.
	return c.lockWrite(lo, hi-lo, discardNext)
}

// coalesceDescriptors rewrites the checked descriptors in list as the
// fewest ranges that deallocate the same blocks, and returns how many
// there are: descriptors of zero blocks dropped, the rest in ascending
// LBA order, overlapping and adjacent ones joined. SBC-3 5.28 asks that
// every block a descriptor names be deallocated, in no order, and lets
// descriptors overlap; which backend operations do it is the device
// server's choice, as when it splits a range by Limits.MaxDiscardBytes.
//
// Without it every descriptor was one backend operation, each waiting for
// the last: libiscsi's SCSI.Unmap.Simple sends UNMAPs of 1 to 256
// one-block descriptors of consecutive LBAs, 32896 descriptors in all,
// which took 14 s through librbd on a host's micro cluster and 581 s in
// the test VM; joined, they are 256 discards.
//
// A joined range is no longer than the sum of its descriptors' blocks,
// which unmapCmd has checked against MAXIMUM UNMAP LBA COUNT, so its
// length still fits the descriptor's 32 bits.
func coalesceDescriptors(list []byte) int {
	desc := func(i int) []byte { return list[i*unmapDescriptorLen : (i+1)*unmapDescriptorLen] }
	n, sorted := 0, true
	for i := range len(list) / unmapDescriptorLen {
		d := desc(i)
		if be32(d[8:]) == 0 {
			continue
		}
		if n > 0 && be64(d) < be64(desc(n-1)) {
			sorted = false
		}
		if n != i {
			copy(desc(n), d)
		}
		n++
	}
	if !sorted {
		sortDescriptors(list[:n*unmapDescriptorLen])
	}
	out := 0
	for i := range n {
		d := desc(i)
		lba, end := be64(d), be64(d)+uint64(be32(d[8:]))
		if out > 0 {
			last := desc(out - 1)
			lastLBA := be64(last)
			if lastEnd := lastLBA + uint64(be32(last[8:])); lba <= lastEnd {
				binary.BigEndian.PutUint32(last[8:], uint32(max(lastEnd, end)-lastLBA))
				continue
			}
		}
		if out != i {
			copy(desc(out), d)
		}
		out++
	}
	return out
}

// sortDescriptors sorts UNMAP block descriptors by LBA in place, without
// allocating (heapsort: a list holds up to maxUnmapDescriptors).
func sortDescriptors(list []byte) {
	n := len(list) / unmapDescriptorLen
	key := func(i int) uint64 { return be64(list[i*unmapDescriptorLen:]) }
	swap := func(i, j int) {
		a := list[i*unmapDescriptorLen : (i+1)*unmapDescriptorLen]
		b := list[j*unmapDescriptorLen : (j+1)*unmapDescriptorLen]
		var t [unmapDescriptorLen]byte
		copy(t[:], a)
		copy(a, b)
		copy(b, t[:])
	}
	down := func(root, end int) {
		for {
			child := 2*root + 1
			if child >= end {
				return
			}
			if child+1 < end && key(child+1) > key(child) {
				child++
			}
			if key(root) >= key(child) {
				return
			}
			swap(root, child)
			root = child
		}
	}
	for i := n/2 - 1; i >= 0; i-- {
		down(i, n)
	}
	for end := n - 1; end > 0; end-- {
		swap(0, end)
		down(0, end)
	}
}

// discardNext deallocates sbc.n blocks from sbc.lba, in pieces of at most
// Limits.MaxDiscardBytes, then the ranges of the UNMAP descriptors not yet
// done (sbc.idx of sbc.count, copied into the scratch buffer and
// coalesced).
func discardNext(c *Cmd) result {
	st := &c.sbc
	for st.n == 0 {
		if st.idx >= st.count {
			return c.good()
		}
		d := c.scratch[st.idx*unmapDescriptorLen:]
		st.lba, st.n = be64(d), uint64(be32(d[8:]))
		st.idx++
	}
	bs := uint64(c.settings().blockSize)
	k := min(st.n, pieceBlocks(c.dev.lim.MaxDiscardBytes, bs))
	return c.submit(OpDiscard, int64(st.lba*bs), int64(k*bs), nil, false, discarded)
}

func discarded(c *Cmd, err error) result {
	if err != nil {
		return c.fail(err)
	}
	st := &c.sbc
	k := uint64(c.io.Len) / uint64(c.settings().blockSize)
	st.lba, st.n = st.lba+k, st.n-k
	return discardNext(c)
}

// pieceBlocks is how many blocks one backend operation bounded to limit
// bytes (0: unbounded) may cover: at least one.
func pieceBlocks(limit, bs uint64) uint64 {
	if limit == 0 {
		return math.MaxUint64
	}
	return max(limit/bs, 1)
}

// writeSameCmd serves WRITE SAME(10) and WRITE SAME(16) (SBC-3 5.42,
// 5.43): one block from the Data-Out buffer (zeros with NDOB, WRITE SAME
// (16) only) for every block of the range.
//
// With the UNMAP bit the blocks are deallocated instead, but only when
// that is indistinguishable from writing them, as SBC-3 requires ("the
// device server writes, i.e. subsequent read operations behave as if the
// device server wrote the single block"): the backend discards and
// deallocated blocks read as zeros (LBPRZ), and the block is all zeros.
// Otherwise the blocks are written, which is always correct.
//
// Writes go to the backend's native WRITE SAME when it has one, in pieces
// of at most Limits.MaxWriteSameBytes; otherwise they are emulated with
// plain writes of a scratch buffer filled with the pattern, repeated in
// the iovec up to writeSameChunk bytes per write.
//
// WSNZ is one (blockLimits): zero blocks is INVALID FIELD IN CDB, as are
// more than MAXIMUM WRITE SAME LENGTH, ANCHOR (ANC_SUP is zero), and
// PBDATA or LBDATA (no physical or logical block data pattern). A Data-Out
// buffer other than one block (none with NDOB) is INVALID FIELD IN CDB.
func writeSameCmd(c *Cmd) result {
	cdb := c.CDB
	if r, ok := c.protectField(); !ok {
		return r
	}
	switch {
	case cdb[1]&0x10 != 0:
		return c.invalidCDBField(1, 4)
	case cdb[1]&0x04 != 0:
		return c.invalidCDBField(1, 2)
	case cdb[1]&0x02 != 0:
		return c.invalidCDBField(1, 1)
	}
	ndob := cdb[0] == 0x93 && cdb[1]&0x01 != 0
	lba, n, nField := uint64(be32(cdb[2:])), uint64(be16(cdb[7:])), 7
	if cdb[0] == 0x93 {
		lba, n, nField = be64(cdb[2:]), uint64(be32(cdb[10:])), 10
	}
	if n == 0 || n > c.dev.blockLimits().maxWriteSame {
		return c.invalidCDBField(nField, -1)
	}
	s := c.settings()
	if !s.inRange(lba, n) {
		return c.lbaOutOfRange()
	}
	bs := int(s.blockSize)
	want := bs
	if ndob {
		want = 0
	}
	if c.DataLen() != want {
		return c.check(keyIllegalRequest, ascInvalidFieldInCDB)
	}
	zero := ndob || c.leadingZeros(bs)
	st := &c.sbc
	// WRITE SAME has no FUA bit (bit 3 is UNMAP): only a disabled
	// write cache asks for stable writes.
	st.lba, st.n, st.fua = lba, n, c.dev.needFUA(!s.writeCache)
	lim := c.dev.lim
	if cdb[1]&0x08 != 0 && lim.Discard && lim.DiscardZeroes && zero {
		return c.lockWrite(lba, n, discardNext)
	}
	if lim.WriteSame && !ndob {
		c.subIov(0, bs)
		return c.lockWrite(lba, n, writeSameNative)
	}
	buf, err := c.scratchBuf()
	if err != nil {
		return c.fail(err)
	}
	if zero {
		clear(buf)
	} else {
		copyFromIov(buf[:bs], c.Iov, 0)
		for i := bs; i < len(buf); i *= 2 {
			copy(buf[i:], buf[:i])
		}
	}
	if lim.WriteSame {
		st.iov = append(st.iov[:0], buf[:bs])
		return c.lockWrite(lba, n, writeSameNative)
	}
	return c.lockWrite(lba, n, writeSameEmulated)
}

// writeSameNative hands the next piece of [sbc.lba, sbc.lba+sbc.n) and the
// block in sbc.iov to the backend's WRITE SAME.
func writeSameNative(c *Cmd) result {
	st := &c.sbc
	bs := uint64(c.settings().blockSize)
	k := min(st.n, pieceBlocks(c.dev.lim.MaxWriteSameBytes, bs))
	return c.submit(OpWriteSame, int64(st.lba*bs), int64(k*bs), st.iov, st.fua, wroteSame)
}

// writeSameEmulated writes the next piece of [sbc.lba, sbc.lba+sbc.n)
// from the pattern in the scratch buffer.
func writeSameEmulated(c *Cmd) result {
	st := &c.sbc
	bs := uint64(c.settings().blockSize)
	k := min(st.n*bs, writeSameChunk)
	st.iov = st.iov[:0]
	for left := k; left > 0; {
		p := min(left, uint64(len(c.scratch)))
		st.iov = append(st.iov, c.scratch[:p])
		left -= p
	}
	return c.submit(OpWrite, int64(st.lba*bs), int64(k), st.iov, st.fua, wroteSame)
}

func wroteSame(c *Cmd, err error) result {
	if err != nil {
		return c.fail(err)
	}
	st := &c.sbc
	k := uint64(c.io.Len) / uint64(c.settings().blockSize)
	st.lba, st.n = st.lba+k, st.n-k
	if st.n == 0 {
		return c.good()
	}
	if c.dev.lim.WriteSame {
		return writeSameNative(c)
	}
	return writeSameEmulated(c)
}

// leadingZeros reports whether the first n bytes of the command's buffer
// are zero.
func (c *Cmd) leadingZeros(n int) bool {
	for _, b := range c.Iov {
		if n == 0 {
			break
		}
		b = b[:min(len(b), n)]
		for _, x := range b {
			if x != 0 {
				return false
			}
		}
		n -= len(b)
	}
	return true
}
