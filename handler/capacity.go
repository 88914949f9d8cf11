package handler

import "encoding/binary"

// lastLBA returns the address of the last logical block (0 for an empty
// device, which has none to report).
func lastLBA(s *settings) uint64 {
	if s.numLBAs == 0 {
		return 0
	}
	return s.numLBAs - 1
}

// readCapacity10 answers READ CAPACITY(10) (SBC-3 5.15).
func readCapacity10(c *Cmd) result {
	cdb := c.CDB
	// With PMI clear the obsolete LOGICAL BLOCK ADDRESS must be zero;
	// with PMI set it asks for the last block before a substantial
	// delay, and there is no such delay: the answer is the last block.
	if cdb[8]&0x01 == 0 && be32(cdb[2:]) != 0 {
		return c.invalidCDBField(2, -1)
	}
	s := c.settings()
	var b [8]byte
	// A capacity the field cannot hold reads FFFFFFFFh: use READ
	// CAPACITY(16).
	binary.BigEndian.PutUint32(b[0:], uint32(min(lastLBA(s), 0xffffffff)))
	binary.BigEndian.PutUint32(b[4:], s.blockSize)
	return c.respond(b[:], len(b))
}

// readCapacity16 answers READ CAPACITY(16), SERVICE ACTION IN(16) 10h
// (SBC-3 5.16).
func readCapacity16(c *Cmd) result {
	cdb := c.CDB
	if cdb[14]&0x01 == 0 && be64(cdb[2:]) != 0 {
		return c.invalidCDBField(2, -1)
	}
	s := c.settings()
	var b [32]byte
	binary.BigEndian.PutUint64(b[0:], lastLBA(s))
	binary.BigEndian.PutUint32(b[8:], s.blockSize)
	// Byte 13: LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT 0. Byte 14-15:
	// LOWEST ALIGNED LOGICAL BLOCK ADDRESS 0.
	if lim := c.dev.lim; lim.Discard {
		b[14] |= 0x80 // LBPME: thin provisioned, UNMAP works
		if lim.DiscardZeroes {
			b[14] |= 0x40 // LBPRZ
		}
	}
	return c.respond(b[:], int(be32(cdb[10:])))
}
