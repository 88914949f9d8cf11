package handler

import "bytes"

// compareAndWriteCmd serves COMPARE AND WRITE (SBC-3 5.2): the Data-Out
// buffer holds the blocks to compare and then the blocks to write; the
// write happens only if the medium equals the first half. A mismatch is
// MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION with INFORMATION set to
// the offset of the first differing byte from the start of the Data-Out
// buffer.
//
// A backend with a native COMPARE AND WRITE (Limits.CompareAndWrite, e.g.
// rbd_aio_compare_and_write) gets the whole buffer. Otherwise the handler
// reads, compares and writes itself while holding the blocks exclusively
// in the device's range lock, so no other write to them can interleave.
func compareAndWriteCmd(c *Cmd) result {
	if r, ok := c.protectField(); !ok {
		return r
	}
	n := uint64(c.CDB[13])
	if n > 1 {
		// MAXIMUM COMPARE AND WRITE LENGTH is 1 (blockLimits).
		return c.invalidCDBField(13, -1)
	}
	s := c.settings()
	lba := be64(c.CDB[2:])
	if !s.inRange(lba, n) {
		return c.lbaOutOfRange()
	}
	bs := uint64(s.blockSize)
	if r, ok := c.dataCDBLength(2 * n * bs); !ok {
		return r
	}
	if n == 0 {
		// "A NUMBER OF LOGICAL BLOCKS field set to zero specifies that
		// no read operations shall be performed, no logical block data
		// shall be transferred ... This condition shall not be
		// considered an error."
		return c.good()
	}
	st := &c.sbc
	st.off, st.left, st.fua = int64(lba*bs), int64(n*bs), c.writeFUA(s)
	if c.dev.lim.CompareAndWrite {
		return c.submit(OpCompareAndWrite, st.off, st.left, c.Iov, st.fua, nil)
	}
	return c.lockRange(c.dev, lba, n, true, cawRead)
}

// cawRead reads the blocks to compare into a scratch buffer.
func cawRead(c *Cmd) result {
	buf, err := c.scratchBuf()
	if err != nil {
		return c.fail(err)
	}
	st := &c.sbc
	st.iov = append(st.iov[:0], buf[:st.left])
	return c.submit(OpRead, st.off, st.left, st.iov, false, cawCompare)
}

// cawCompare compares what was read with the first half of the Data-Out
// buffer and, when they are equal, writes the second half.
func cawCompare(c *Cmd, err error) result {
	if err != nil {
		return c.fail(err)
	}
	if err := c.guarded(compareHalf); err != nil {
		return c.fail(err)
	}
	st := &c.sbc
	if st.mis >= 0 {
		return c.checkInfo(keyMiscompare, ascMiscompareDuringVerify, uint64(st.mis))
	}
	return c.submit(OpWrite, st.off, st.left, c.subIov(int(st.left), int(st.left)), st.fua, nil)
}

// compareHalf sets sbc.mis to the first byte where the scratch buffer
// differs from the first half of the Data-Out buffer, or -1.
func compareHalf(c *Cmd) {
	st := &c.sbc
	st.mis = firstDiffIov(c.scratch[:st.left], c.Iov, 0)
}

// firstDiffIov returns the index of the first byte of b that differs from
// iov read from byte off, or -1 if they are equal over len(b) (iov being
// at least that long).
func firstDiffIov(b []byte, iov [][]byte, off int) int64 {
	n := 0
	for _, v := range iov {
		if n == len(b) {
			break
		}
		if off >= len(v) {
			off -= len(v)
			continue
		}
		v = v[off:]
		off = 0
		k := min(len(v), len(b)-n)
		if i := firstDiff(b[n:n+k], v[:k]); i >= 0 {
			return int64(n + i)
		}
		n += k
	}
	if n < len(b) {
		return int64(n)
	}
	return -1
}

// firstDiff returns the first index where a and b (of equal length)
// differ, or -1.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
