package handler

import "encoding/binary"

// Identification strings of the standard INQUIRY data. They are
// tcmu-runner's (scsi.c): multipath configurations, ceph-iscsi's
// documentation and Ceph's QA all match "LIO-ORG"/"TCMU device".
const (
	inquiryVendor   = "LIO-ORG "
	inquiryProduct  = "TCMU device     "
	inquiryRevision = "0002"
)

// stdInquiryLen is the length of the standard INQUIRY data: every field
// SPC-4 6.6.2 defines, through the version descriptors and the reserved
// bytes after them, as LIO's spc_emulate_inquiry_std returns.
const stdInquiryLen = 96

// Version descriptors (SPC-4 table 146): the standards the logical unit
// claims. No transport descriptor: which fabric a command came through is
// not known here.
const (
	versionSAM5 = 0x00a0
	versionSPC4 = 0x0460
	versionSBC3 = 0x04c0
)

// inquiry answers INQUIRY (SPC-4 6.6): the standard data, or a vital
// product data page when EVPD is set.
func inquiry(c *Cmd) result {
	cdb := c.CDB
	if cdb[1]&0x02 != 0 {
		// CMDDT (SPC-2) is obsolete; REPORT SUPPORTED OPERATION CODES
		// replaced it, and SPC-4 forbids setting it.
		return c.invalidCDBField(1, 1)
	}
	alloc := int(be16(cdb[3:]))
	if cdb[1]&0x01 != 0 {
		return vpdInquiry(c, cdb[2], alloc)
	}
	if cdb[2] != 0 {
		// A PAGE CODE without EVPD is an error (SPC-4 6.6.1).
		return c.invalidCDBField(2, -1)
	}
	groups, err := c.dev.portGroups()
	if err != nil {
		return c.configFailed(err)
	}
	var b [stdInquiryLen]byte
	// Byte 0: PERIPHERAL QUALIFIER 000b (connected), DEVICE TYPE 00h
	// (direct access block device). Byte 1: not removable.
	b[2] = 0x06        // VERSION: SPC-4
	b[3] = 0x10 | 0x02 // HISUP, RESPONSE DATA FORMAT 2
	b[4] = stdInquiryLen - 5
	// TPGS, and 3PC: EXTENDED COPY is served.
	b[5] = tpgs(groups)<<4 | 0x08
	if portCount(groups) > 1 {
		b[6] = 0x10 // MULTIP
	}
	b[7] = 0x02 // CMDQUE
	copy(b[8:16], inquiryVendor)
	copy(b[16:32], inquiryProduct)
	copy(b[32:36], inquiryRevision)
	binary.BigEndian.PutUint16(b[58:], versionSAM5)
	binary.BigEndian.PutUint16(b[60:], versionSPC4)
	binary.BigEndian.PutUint16(b[62:], versionSBC3)
	return c.respond(b[:], alloc)
}

// tpgs returns the TPGS field of the standard INQUIRY data (SPC-4 6.6.2):
// 01b implicit ALUA, 10b explicit, 11b both, 00b no ALUA groups.
func tpgs(groups []PortGroup) byte {
	var t byte
	for _, g := range groups {
		if g.Implicit {
			t |= 0x1
		}
		if g.Explicit {
			t |= 0x2
		}
	}
	return t
}

// portCount returns how many target ports the groups hold.
func portCount(groups []PortGroup) int {
	n := 0
	for _, g := range groups {
		n += len(g.Ports)
	}
	return n
}
