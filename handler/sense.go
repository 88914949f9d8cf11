package handler

import "encoding/binary"

// sense describes one CHECK CONDITION.
type sense struct {
	key  uint8
	asc  asc
	info uint64 // INFORMATION field, when infoValid
	// infoValid sets the VALID bit (fixed format) or adds an Information
	// descriptor (descriptor format).
	infoValid bool
	// sks is the sense-key specific field (3 bytes, SKSV in bit 7 of the
	// first) when sksValid.
	sks      [3]byte
	sksValid bool
}

// fieldPointer returns sense-key specific data pointing at the byte (and
// bit, if bitValid) in the CDB (cd) or parameter list (!cd) that is in
// error (SPC-4 4.5.2.4.2).
func fieldPointer(cd bool, byteOff uint16, bit uint8, bitValid bool) ([3]byte, bool) {
	b0 := byte(0x80)
	if cd {
		b0 |= 0x40
	}
	if bitValid {
		b0 |= 0x08 | bit&0x7
	}
	return [3]byte{b0, byte(byteOff >> 8), byte(byteOff)}, true
}

const (
	fixedSenseLen  = 18
	descSenseHdr   = 8
	descInfoLen    = 12 // Information sense data descriptor
	descSKSLen     = 8  // Sense key specific sense data descriptor
	senseRespFixed = 0x70
	senseRespDesc  = 0x72
)

// encode writes the sense data into buf in fixed format (0x70) or, when
// desc is set (D_SENSE in the Control mode page), descriptor format (0x72),
// and returns the bytes used (SPC-4 4.5).
func (s *sense) encode(buf []byte, desc bool) []byte {
	if desc {
		n := descSenseHdr
		b := buf[:n]
		clear(b)
		b[0] = senseRespDesc
		b[1] = s.key & 0xf
		b[2] = byte(s.asc >> 8)
		b[3] = byte(s.asc)
		if s.infoValid {
			d := buf[n : n+descInfoLen]
			clear(d)
			d[0] = 0x00 // Information
			d[1] = descInfoLen - 2
			d[2] = 0x80 // VALID
			binary.BigEndian.PutUint64(d[4:], s.info)
			n += descInfoLen
		}
		if s.sksValid {
			d := buf[n : n+descSKSLen]
			clear(d)
			d[0] = 0x02 // Sense key specific
			d[1] = descSKSLen - 2
			copy(d[4:7], s.sks[:])
			n += descSKSLen
		}
		buf[7] = byte(n - descSenseHdr)
		return buf[:n]
	}
	b := buf[:fixedSenseLen]
	clear(b)
	b[0] = senseRespFixed
	b[2] = s.key & 0xf
	if s.infoValid {
		// The fixed format INFORMATION field holds 32 bits; a larger
		// value cannot be reported there, so VALID stays clear.
		if s.info <= 0xffffffff {
			b[0] |= 0x80
			binary.BigEndian.PutUint32(b[3:], uint32(s.info))
		}
	}
	b[7] = fixedSenseLen - 8 // additional sense length
	b[12] = byte(s.asc >> 8)
	b[13] = byte(s.asc)
	if s.sksValid {
		copy(b[15:18], s.sks[:])
	}
	return b
}
