package handler

// readCmd serves READ(6), READ(10), READ(12) and READ(16) (SBC-3 5.13-5.16)
// by handing the command's Data-In buffer, a slice of the mmapped data
// area, straight to the backend.
//
// The kernel hands TCMU the initiator's expected transfer length, not the
// CDB's (passthrough_parse_cdb does no size check), so the buffer may
// differ from the transfer. As LIO's target_cmd_size_check does for its
// own backstores: a larger buffer gets the CDB's blocks and the rest is
// reported as a residual (TCMU_UFLAG_READ_LEN); a smaller one gets what
// fits. The kernel cannot carry an overflow residual back from userspace,
// so that case completes GOOD with a full buffer and no residual.
func readCmd(c *Cmd) result {
	if c.CDB[0]>>5 != 0 {
		// DPO and FUA are accepted: there is no cache in the handler to
		// bypass, and the backend reads the medium (SBC-3 5.14).
		if r, ok := c.protectField(); !ok {
			return r
		}
	}
	s := c.settings()
	lba, n := blockAddr(c.CDB)
	if !s.inRange(lba, n) {
		return c.lbaOutOfRange()
	}
	size := n * uint64(s.blockSize)
	have := uint64(c.DataLen())
	if size == 0 || have == 0 {
		return c.noDataIn()
	}
	iov := c.Iov
	if have > size {
		iov = c.subIov(0, int(size))
		c.ReadLen, c.HasReadLen = uint32(size), true
	} else {
		size = have
	}
	return c.submit(OpRead, int64(lba*uint64(s.blockSize)), int64(size), iov, false, nil)
}

// writeCmd serves WRITE(6), WRITE(10), WRITE(12) and WRITE(16) (SBC-3
// 5.37-5.40), zero-copy from the Data-Out buffer. FUA, or a disabled write
// cache, asks the backend for a stable write (IO.FUA); DPO is accepted.
func writeCmd(c *Cmd) result {
	if c.CDB[0]>>5 != 0 {
		if r, ok := c.protectField(); !ok {
			return r
		}
	}
	s := c.settings()
	lba, n := blockAddr(c.CDB)
	if !s.inRange(lba, n) {
		return c.lbaOutOfRange()
	}
	bs := uint64(s.blockSize)
	if r, ok := c.dataCDBLength(n * bs); !ok {
		return r
	}
	if n == 0 {
		return c.good()
	}
	st := &c.sbc
	st.off, st.left, st.fua = int64(lba*bs), int64(n*bs), c.writeFUA(s)
	return c.lockWrite(lba, n, submitWrite)
}

// submitWrite writes the whole Data-Out buffer at sbc.off.
func submitWrite(c *Cmd) result {
	return c.submit(OpWrite, c.sbc.off, c.sbc.left, c.Iov, c.sbc.fua, nil)
}

// subIov returns the part [off, off+n) of the command's buffer, using the
// command's own iovec storage.
func (c *Cmd) subIov(off, n int) [][]byte {
	c.sbc.iov, _ = subIov(c.sbc.iov, c.Iov, off, n)
	return c.sbc.iov
}

// noDataIn completes a command that transfers no data with GOOD. The
// kernel ignores a READ_LEN of zero, so if the initiator supplied a
// buffer it would receive whatever the data area held; the buffer is
// cleared instead.
func (c *Cmd) noDataIn() result {
	for _, b := range c.Iov {
		clear(b)
	}
	return c.good()
}
