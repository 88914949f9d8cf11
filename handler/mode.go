package handler

import (
	"encoding/binary"
	"math/bits"
)

// PAGE CONTROL values of MODE SENSE (SPC-4 6.11).
const (
	pcCurrent    = 0
	pcChangeable = 1
	pcDefault    = 2
	pcSaved      = 3
)

// modePage is one mode page, in page_0 format: there are no subpages.
type modePage struct {
	code byte
	// length is the PAGE LENGTH: the bytes after the 2-byte header.
	length byte
	// current writes the page's current values into p[2:].
	current func(d *Device, s *settings, p []byte)
	// changeable has a one for each bit MODE SELECT may change, indexed
	// like the page (nil: nothing). MODE SENSE reports it as the
	// changeable values, and MODE SELECT refuses any other bit that
	// differs from the current value. Every changeable field defaults to
	// zero.
	changeable []byte
	// apply takes the values of a page MODE SELECT accepted.
	apply func(d *Device, p []byte)
}

// modePages are the mode pages, in the order MODE SENSE returns them.
var modePages = []modePage{
	{code: 0x01, length: 0x0a, current: readWriteErrorRecoveryPage},
	{code: 0x08, length: 0x12, current: cachingPage},
	{
		code: 0x0a, length: 0x0a, current: controlPage,
		// D_SENSE (byte 2 bit 2): the initiator chooses the sense format.
		changeable: []byte{0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		apply:      applyControlPage,
	},
}

// readWriteErrorRecoveryPage (SBC-3 6.4.7): no retries or recovery to
// tune; every field is zero.
func readWriteErrorRecoveryPage(*Device, *settings, []byte) {}

// cachingPage (SBC-3 6.4.5).
func cachingPage(_ *Device, s *settings, p []byte) {
	if s.writeCache {
		p[2] = 0x04 // WCE: emulate_write_cache
	}
	p[12] = 0x20 // DRA: no read-ahead
}

// controlPage (SPC-4 7.5.8).
func controlPage(d *Device, _ *settings, p []byte) {
	p[2] = 0x02 // GLTSD: no log parameters are saved
	if d.dsense.Load() {
		p[2] |= 0x04 // D_SENSE: descriptor format sense data
	}
	// QUEUE ALGORITHM MODIFIER 1h: commands complete in any order.
	p[3] = 0x10
	// TAS: aborted commands end with TASK ABORTED, as the kernel's core,
	// which handles task management, does by default (emulate_tas).
	p[5] = 0x40
	// BUSY TIMEOUT PERIOD: unlimited.
	p[8], p[9] = 0xff, 0xff
}

func applyControlPage(d *Device, p []byte) { d.dsense.Store(p[2]&0x04 != 0) }

func findModePage(code byte) *modePage {
	for i := range modePages {
		if modePages[i].code == code {
			return &modePages[i]
		}
	}
	return nil
}

// fill writes the page's values for page control pc into p, which is
// 2+length bytes.
func (pg *modePage) fill(d *Device, s *settings, pc byte, p []byte) {
	p[0], p[1] = pg.code, pg.length
	switch pc {
	case pcChangeable:
		if pg.changeable != nil {
			copy(p[2:], pg.changeable[2:])
		}
	case pcDefault:
		pg.current(d, s, p)
		for i := 2; i < len(pg.changeable); i++ {
			p[i] &^= pg.changeable[i]
		}
	default:
		pg.current(d, s, p)
	}
}

// modeSense answers MODE SENSE(6) and MODE SENSE(10) (SPC-4 6.11, 6.12).
func modeSense(c *Cmd) result {
	cdb := c.CDB
	ten := cdb[0] == 0x5a
	pc, code, sub := cdb[2]>>6, cdb[2]&0x3f, cdb[3]
	var pages []modePage
	switch {
	case pc == pcSaved:
		return c.check(keyIllegalRequest, ascSavingParametersNotSupported)
	case code == 0x3f:
		// All pages (subpage 00h) or all pages and subpages (FFh): the
		// same, as there are no subpages.
		if sub != 0x00 && sub != 0xff {
			return c.invalidCDBField(3, -1)
		}
		pages = modePages
	default:
		pg := findModePage(code)
		if pg == nil {
			return c.invalidCDBField(2, 5)
		}
		if sub != 0 {
			return c.invalidCDBField(3, -1)
		}
		pages = []modePage{*pg}
	}
	s := c.settings()

	// One block descriptor unless DBD (SBC-3 6.4.2): the long LBA form
	// when MODE SENSE(10) allows it with LLBAA.
	var bd []byte
	if cdb[1]&0x08 == 0 {
		long := ten && cdb[1]&0x10 != 0
		bd = blockDescriptor(s, long)
		if pc == pcChangeable {
			clear(bd) // neither capacity nor block length can change
		}
	}
	// DEVICE-SPECIFIC PARAMETER: DPOFUA (DPO accepted, FUA honoured);
	// WP 0.
	const devSpecific = 0x10
	var p []byte
	alloc := 0
	if ten {
		alloc = int(be16(cdb[7:]))
		p = make([]byte, 8, 8+len(bd)+64)
		p[3] = devSpecific
		if len(bd) == 16 {
			p[4] = 0x01 // LONGLBA
		}
		binary.BigEndian.PutUint16(p[6:], uint16(len(bd)))
	} else {
		alloc = int(cdb[4])
		p = make([]byte, 4, 4+len(bd)+64)
		p[2] = devSpecific
		p[3] = byte(len(bd))
	}
	p = append(p, bd...)
	for i := range pages {
		pg := &pages[i]
		n := len(p)
		p = append(p, make([]byte, 2+int(pg.length))...)
		pg.fill(c.dev, s, pc, p[n:])
	}
	// MODE DATA LENGTH excludes itself.
	if ten {
		binary.BigEndian.PutUint16(p[0:], uint16(len(p)-2))
	} else {
		p[0] = byte(len(p) - 1)
	}
	return c.respond(p, alloc)
}

// blockDescriptor returns the short (8-byte) or long LBA (16-byte) mode
// parameter block descriptor (SBC-3 6.4.2).
func blockDescriptor(s *settings, long bool) []byte {
	if long {
		b := make([]byte, 16)
		binary.BigEndian.PutUint64(b[0:], s.numLBAs)
		binary.BigEndian.PutUint32(b[12:], s.blockSize)
		return b
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[0:], uint32(min(s.numLBAs, 0xffffffff)))
	binary.BigEndian.PutUint32(b[4:], s.blockSize) // byte 4 is reserved: the size fits 24 bits
	return b
}

// modeSelect answers MODE SELECT(6) and MODE SELECT(10) (SPC-4 6.9, 6.10).
// A page may change only its changeable bits; every other byte must equal
// the current value. Nothing changes unless the whole list is accepted.
func modeSelect(c *Cmd) result {
	cdb := c.CDB
	ten := cdb[0] == 0x55
	if cdb[1]&0x01 != 0 {
		return c.invalidCDBField(1, 0) // SP: no page can be saved
	}
	if cdb[1]&0x10 == 0 {
		return c.invalidCDBField(1, 4) // PF=0: vendor-specific pages
	}
	n, hdr := int(cdb[4]), 4
	if ten {
		n, hdr = int(be16(cdb[7:])), 8
	}
	if n == 0 {
		return c.good() // nothing transferred is not an error
	}
	p, ok := c.paramList(n)
	if !ok || len(p) < hdr {
		return c.check(keyIllegalRequest, ascParameterListLengthError)
	}
	mediumOff, bdLenOff, bdLen, long := 1, 3, int(p[3]), false
	if ten {
		mediumOff, bdLenOff, bdLen, long = 2, 6, int(be16(p[6:])), p[4]&0x01 != 0
	}
	// The DEVICE-SPECIFIC PARAMETER's WP is ignored and DPOFUA reserved
	// in MODE SELECT (SBC-3 6.4.1).
	if p[mediumOff] != 0 {
		return c.invalidParamField(mediumOff, -1) // MEDIUM TYPE is 00h
	}
	if hdr+bdLen > len(p) {
		return c.check(keyIllegalRequest, ascParameterListLengthError)
	}
	s := c.settings()
	if r, ok := checkBlockDescriptor(c, s, p[hdr:hdr+bdLen], hdr, bdLenOff, long); !ok {
		return r
	}

	type accepted struct {
		pg *modePage
		p  []byte
	}
	var pages []accepted
	for off := hdr + bdLen; off < len(p); {
		if len(p)-off < 2 {
			return c.check(keyIllegalRequest, ascParameterListLengthError)
		}
		if p[off]&0x40 != 0 {
			return c.invalidParamField(off, 6) // SPF: there are no subpages
		}
		pg := findModePage(p[off] & 0x3f)
		if pg == nil {
			return c.invalidParamField(off, 5)
		}
		if p[off+1] != pg.length {
			return c.invalidParamField(off+1, -1)
		}
		end := off + 2 + int(pg.length)
		if end > len(p) {
			return c.check(keyIllegalRequest, ascParameterListLengthError)
		}
		cur := make([]byte, end-off)
		pg.fill(c.dev, s, pcCurrent, cur)
		for i := 2; i < len(cur); i++ {
			fixed := byte(0xff)
			if pg.changeable != nil {
				fixed = ^pg.changeable[i]
			}
			if diff := (p[off+i] ^ cur[i]) & fixed; diff != 0 {
				return c.invalidParamField(off+i, 7-bits.LeadingZeros8(diff))
			}
		}
		pages = append(pages, accepted{pg, p[off:end]})
		off = end
	}
	for _, a := range pages {
		if a.pg.apply != nil {
			a.pg.apply(c.dev, a.p)
		}
	}
	return c.good()
}

// checkBlockDescriptor accepts no block descriptor, or one that keeps the
// capacity (NUMBER OF LOGICAL BLOCKS zero or the current value) and the
// block length: neither can be changed (that would need FORMAT UNIT,
// SBC-3 6.4.2). bd starts at offset off of the parameter list; bdLenOff
// is where the header holds its length.
func checkBlockDescriptor(c *Cmd, s *settings, bd []byte, off, bdLenOff int, long bool) (result, bool) {
	size := 8
	if long {
		size = 16
	}
	switch len(bd) {
	case 0:
		return done, true
	case size:
	default:
		return c.invalidParamField(bdLenOff, -1), false
	}
	var blocks, want uint64
	var length uint32
	lengthOff := 5
	if long {
		blocks, want = be64(bd), s.numLBAs
		length, lengthOff = be32(bd[12:]), 12
	} else {
		blocks, want = uint64(be32(bd)), min(s.numLBAs, 0xffffffff)
		length = be24(bd[5:])
	}
	if blocks != 0 && blocks != want {
		return c.invalidParamField(off, -1), false
	}
	if length != s.blockSize {
		return c.invalidParamField(off+lengthOff, -1), false
	}
	return done, true
}
