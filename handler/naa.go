package handler

// lioCompanyID is the IEEE company identifier LIO puts in its NAA
// designators (OpenFabrics, 00-14-05): t10_wwn.company_id's default.
const lioCompanyID = 0x001405

// naaDesignator returns the NAA IEEE Registered Extended designator (NAA
// type 6, SPC-4 7.8.6.6.6) of a logical unit with the given unit serial
// number, derived exactly as LIO's spc_gen_naa_6h_vendor_specific does
// (drivers/target/target_core_spc.c), so that a LUN keeps its WWID when it
// moves between LIO backstores and tcmu-runner, and EXTENDED COPY finds
// devices by the designator an initiator read from VPD page 83.
//
// After the NAA type and the 24-bit company ID come the first 25
// hexadecimal digits of the serial, one per nibble; characters that are
// not hex digits (the dashes of a UUID) are skipped, and the designator is
// zero-padded when the serial has fewer digits.
func naaDesignator(serial string) [16]byte {
	var b [16]byte
	b[0] = 0x60 | byte(lioCompanyID>>20&0x0f)
	b[1] = byte(lioCompanyID >> 12 & 0xff)
	b[2] = byte(lioCompanyID >> 4 & 0xff)
	b[3] = byte(lioCompanyID&0x0f) << 4
	off, low := 3, true
	for i := 0; i < len(serial) && off < len(b); i++ {
		v, ok := hexDigit(serial[i])
		if !ok {
			continue
		}
		if low {
			b[off] |= v
			off++
		} else {
			b[off] = v << 4
		}
		low = !low
	}
	return b
}

// hexDigit is the kernel's hex_to_bin for one character.
func hexDigit(ch byte) (byte, bool) {
	switch {
	case ch >= '0' && ch <= '9':
		return ch - '0', true
	case ch >= 'a' && ch <= 'f':
		return ch - 'a' + 10, true
	case ch >= 'A' && ch <= 'F':
		return ch - 'A' + 10, true
	}
	return 0, false
}
