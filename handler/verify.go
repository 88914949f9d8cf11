package handler

// verifyCmd serves VERIFY(10), VERIFY(12) and VERIFY(16) (SBC-3
// 5.33-5.35). The blocks are read back from the backend through a
// scratch buffer, one chunk at a time:
//   - BYTCHK 00b: medium verification only; a read error fails the
//     command (MEDIUM ERROR);
//   - BYTCHK 01b: the Data-Out buffer holds the blocks, compared byte by
//     byte;
//   - BYTCHK 11b: the Data-Out buffer holds one block, compared with every
//     block (SBC-3r36 5.33);
//   - BYTCHK 10b is reserved: INVALID FIELD IN CDB.
//
// A difference is MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION with
// INFORMATION set to the offset of the first differing byte from the start
// of the verified range (for BYTCHK 01b also the offset in the Data-Out
// buffer). A VERIFICATION LENGTH of zero verifies nothing, which is not an
// error.
func verifyCmd(c *Cmd) result {
	if r, ok := c.protectField(); !ok {
		return r
	}
	bytchk := c.CDB[1] >> 1 & 0x03
	if bytchk == 2 {
		return c.invalidCDBField(1, 2)
	}
	s := c.settings()
	lba, n := blockAddr(c.CDB)
	if !s.inRange(lba, n) {
		return c.lbaOutOfRange()
	}
	if n == 0 {
		return c.good()
	}
	bs := uint64(s.blockSize)
	want := uint64(0)
	switch bytchk {
	case 1:
		want = n * bs
	case 3:
		want = bs
	}
	if uint64(c.DataLen()) < want {
		// Less data than the command compares with: as LIO answers an
		// overflowing Data-Out for a command that is not a write
		// (target_cmd_size_check).
		return c.check(keyIllegalRequest, ascInvalidFieldInCDB)
	}
	st := &c.sbc
	st.off, st.left, st.bytchk = int64(lba*bs), int64(n*bs), bytchk
	return verifyStep(c)
}

// writeVerifyCmd serves WRITE AND VERIFY(10), (12) and (16) (SBC-3
// 5.41-5.43): the Data-Out buffer is written with FUA (unless the backend's
// writes are stable anyway), so that the verify reads the medium rather
// than a cache, then read back and, with BYTCHK
// 01b, compared. The written blocks stay held in the range lock until the
// verify ends, so an emulated COMPARE AND WRITE cannot change them in
// between. A difference is reported as for VERIFY.
func writeVerifyCmd(c *Cmd) result {
	if r, ok := c.protectField(); !ok {
		return r
	}
	bytchk := c.CDB[1] >> 1 & 0x03
	if bytchk > 1 {
		return c.invalidCDBField(1, 2)
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
	st.off, st.left, st.bytchk = int64(lba*bs), int64(n*bs), bytchk
	return c.lockWrite(lba, n, writeThenVerify)
}

func writeThenVerify(c *Cmd) result {
	return c.submit(OpWrite, c.sbc.off, c.sbc.left, c.Iov, c.dev.needFUA(true), writtenVerify)
}

func writtenVerify(c *Cmd, err error) result {
	if err != nil {
		return c.fail(err)
	}
	return verifyStep(c)
}

// verifyStep reads the next chunk of [sbc.off, sbc.off+sbc.left).
func verifyStep(c *Cmd) result {
	buf, err := c.scratchBuf()
	if err != nil {
		return c.fail(err)
	}
	st := &c.sbc
	k := min(st.left, int64(len(buf)))
	st.iov = append(st.iov[:0], buf[:k])
	return c.submit(OpRead, st.off, k, st.iov, false, verifyChunk)
}

// verifyChunk checks a chunk read by verifyStep and goes on to the next.
func verifyChunk(c *Cmd, err error) result {
	if err != nil {
		return c.fail(err)
	}
	st := &c.sbc
	if st.bytchk != 0 {
		if err := c.guarded(compareChunk); err != nil {
			return c.fail(err)
		}
		if st.mis >= 0 {
			return c.checkInfo(keyMiscompare, ascMiscompareDuringVerify, uint64(st.done+st.mis))
		}
	}
	k := c.io.Len
	st.off, st.done, st.left = st.off+k, st.done+k, st.left-k
	if st.left == 0 {
		return c.good()
	}
	return verifyStep(c)
}

// compareChunk sets sbc.mis to the first byte of the chunk just read that
// differs from the Data-Out buffer, relative to the chunk, or -1.
func compareChunk(c *Cmd) {
	st := &c.sbc
	got := c.scratch[:c.io.Len]
	if st.bytchk != 3 {
		st.mis = firstDiffIov(got, c.Iov, int(st.done))
		return
	}
	bs := int(c.settings().blockSize)
	st.mis = -1
	for i := 0; i < len(got); i += bs {
		if m := firstDiffIov(got[i:i+bs], c.Iov, 0); m >= 0 {
			st.mis = int64(i) + m
			return
		}
	}
}

// cacheRange checks the LOGICAL BLOCK ADDRESS and NUMBER OF LOGICAL BLOCKS
// (PREFETCH LENGTH) of SYNCHRONIZE CACHE and PRE-FETCH, where zero blocks
// means every block from the LBA to the end of the medium (SBC-3 5.10,
// 5.22): only the LBA is then checked.
func (c *Cmd) cacheRange() bool {
	var lba, n uint64
	if c.CDB[0]>>5 == 1 {
		lba, n = uint64(be32(c.CDB[2:])), uint64(be16(c.CDB[7:]))
	} else {
		lba, n = be64(c.CDB[2:]), uint64(be32(c.CDB[10:]))
	}
	return c.settings().inRange(lba, n)
}

// prefetchCmd serves PRE-FETCH(10) and PRE-FETCH(16) (SBC-3 5.10, 5.11).
// The handler keeps no cache and the Backend contract has no read-ahead,
// so no block can be placed in a cache: "if the cache does not have
// sufficient capacity to accept all of the specified logical blocks, the
// device server shall transfer to the cache as many ... that fit" and
// complete with GOOD, with the IMMED bit or without. CONDITION MET would
// claim the blocks are cached.
func prefetchCmd(c *Cmd) result {
	if !c.cacheRange() {
		return c.lbaOutOfRange()
	}
	return c.good()
}

// syncCacheCmd serves SYNCHRONIZE CACHE(10) and (16) (SBC-3 5.22, 5.23)
// with one backend flush of the whole device: backends know no narrower
// flush, and a wider one is allowed. The range is still checked.
//
// With IMMED set, the device server "shall return status as soon as the
// CDB has been validated": the status is posted first and the flush
// follows; the command is recycled when the flush ends. A failure can then
// only be logged, as a deferred error would not reach a Linux initiator.
func syncCacheCmd(c *Cmd) result {
	if !c.cacheRange() {
		return c.lbaOutOfRange()
	}
	if c.CDB[1]&0x02 == 0 {
		return c.submit(OpFlush, 0, 0, nil, false, nil)
	}
	c.good()
	c.dev.post(c)
	return c.submit(OpFlush, 0, 0, nil, false, flushedAfterStatus)
}

// flushedAfterStatus ends a SYNCHRONIZE CACHE with IMMED whose status was
// already posted: the command is recycled here, and pending tells
// whoever called the continuation that nothing is left to complete.
func flushedAfterStatus(c *Cmd, err error) result {
	d := c.dev
	if err != nil {
		d.stats.errors.Add(1)
		d.log.Error().Err(err).Msg("flush after SYNCHRONIZE CACHE with IMMED")
	}
	d.putCmd(c)
	return pending
}
