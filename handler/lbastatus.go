package handler

import (
	"context"
	"encoding/binary"
	"time"
)

const (
	lbaStatusHeaderLen     = 8
	lbaStatusDescriptorLen = 16
	// lbaStatusMaxDescriptors bounds the backend queries of one GET LBA
	// STATUS, whatever its allocation length.
	lbaStatusMaxDescriptors = 256
	// lbaStatusTimeout bounds how long one GET LBA STATUS may ask the
	// backend (SEEK_DATA/SEEK_HOLE, rbd_diff_iterate2).
	lbaStatusTimeout = 30 * time.Second
	// Provisioning status values (SBC-3 5.6.3, table 48).
	provMapped      = 0x0
	provDeallocated = 0x1
)

// getLBAStatusCmd serves GET LBA STATUS (SERVICE ACTION IN(16) 9Eh/12h,
// SBC-3 5.6): LBA status descriptors from the STARTING LOGICAL BLOCK
// ADDRESS on, as many as the allocation length holds (at most
// lbaStatusMaxDescriptors), each a run of blocks that are all mapped or
// all deallocated. A STARTING LBA past the last block is LOGICAL BLOCK
// ADDRESS OUT OF RANGE.
//
// A backend that knows its allocation implements LBAStatuser; its Status
// may block (a SEEK_DATA on a file, a diff over an rbd image), so the
// command runs in a goroutine of its own instead of the command loop: it
// is a rare management command, and a goroutine for it costs nothing on
// the I/O path. The goroutine counts as an operation in flight, so the
// device is not closed under it. Without LBAStatuser every block is
// reported mapped, which is true of a fully provisioned device.
//
// A block is reported deallocated only if all of it is: a backend extent
// ending inside a block leaves that block mapped.
func getLBAStatusCmd(c *Cmd) result {
	s := c.settings()
	lba := be64(c.CDB[2:])
	if lba >= s.numLBAs {
		return c.lbaOutOfRange()
	}
	alloc := int(be32(c.CDB[10:]))
	if alloc == 0 {
		return c.noDataIn()
	}
	st, ok := c.dev.be.(LBAStatuser)
	if !ok {
		p := make([]byte, lbaStatusHeaderLen+lbaStatusDescriptorLen)
		n := min(s.numLBAs-lba, 0xffffffff)
		putLBAStatus(p, 0, lba, n, provMapped)
		return c.respondLBAStatus(p, 1, alloc)
	}
	c.dev.inflight.add(1)
	go lbaStatus(c, st, s, lba, alloc)
	return pending
}

// lbaStatus asks the backend and completes the command.
func lbaStatus(c *Cmd, st LBAStatuser, s *settings, lba uint64, alloc int) {
	d := c.dev
	defer d.inflight.add(-1)
	if c.collectLBAStatus(st, s, lba, alloc) == done {
		d.complete(c, true)
	}
}

func (c *Cmd) collectLBAStatus(st LBAStatuser, s *settings, lba uint64, alloc int) result {
	ctx, cancel := context.WithTimeout(context.Background(), lbaStatusTimeout)
	defer cancel()
	bs := uint64(s.blockSize)
	limit := min(lbaStatusMaxDescriptors, max((alloc-lbaStatusHeaderLen)/lbaStatusDescriptorLen, 1))
	p := make([]byte, lbaStatusHeaderLen+limit*lbaStatusDescriptorLen)
	count := 0
	for count < limit && lba < s.numLBAs {
		left := min(s.numLBAs-lba, 0xffffffff)
		mapped, extent, err := st.Status(ctx, int64(lba*bs), int64(left*bs))
		if err != nil {
			if count > 0 {
				// Report what is known; the initiator asks again
				// from the end of the last descriptor.
				break
			}
			c.io.Op = OpRead // a failure to read the medium's state
			return c.fail(err)
		}
		n := uint64(max0(extent)) / bs
		prov := byte(provDeallocated)
		if mapped || n == 0 {
			prov = provMapped
			n = (uint64(max0(extent)) + bs - 1) / bs
		}
		n = min(max(n, 1), left)
		putLBAStatus(p, count, lba, n, prov)
		count++
		lba += n
	}
	return c.respondLBAStatus(p, count, alloc)
}

func max0(n int64) int64 { return max(n, 0) }

// putLBAStatus writes LBA status descriptor i of p (SBC-3 5.6.3).
func putLBAStatus(p []byte, i int, lba, n uint64, prov byte) {
	d := p[lbaStatusHeaderLen+i*lbaStatusDescriptorLen:]
	binary.BigEndian.PutUint64(d, lba)
	binary.BigEndian.PutUint32(d[8:], uint32(n))
	d[12] = prov
}

// respondLBAStatus sends the parameter data with count descriptors, cut
// to the allocation length. PARAMETER DATA LENGTH counts the bytes after
// itself.
func (c *Cmd) respondLBAStatus(p []byte, count, alloc int) result {
	p = p[:lbaStatusHeaderLen+count*lbaStatusDescriptorLen]
	binary.BigEndian.PutUint32(p, uint32(len(p)-4))
	if err := c.guarded(func(c *Cmd) { c.dataIn(p[:min(len(p), alloc)]) }); err != nil {
		return c.fail(err)
	}
	return c.good()
}
