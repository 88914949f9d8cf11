package handler

import (
	"encoding/binary"
	"fmt"
)

// vpdPages are the vital product data pages served besides 00h, in
// ascending order: page 00h lists 00h and these (SPC-4 7.8.13).
var vpdPages = []struct {
	code byte
	page func(c *Cmd) ([]byte, error)
}{
	{0x80, vpdUnitSerial},
	{0x83, vpdDeviceIdentification},
	{0x86, vpdExtendedInquiry},
	{0xb0, vpdBlockLimits},
	{0xb1, vpdBlockDeviceCharacteristics},
	{0xb2, vpdLogicalBlockProvisioning},
}

// vpdInquiry answers INQUIRY with EVPD set.
func vpdInquiry(c *Cmd, code byte, alloc int) result {
	if code == 0x00 {
		p := vpdHeader(0x00, 1+len(vpdPages))
		for i, v := range vpdPages {
			p[5+i] = v.code
		}
		return c.respond(p, alloc)
	}
	for _, v := range vpdPages {
		if v.code == code {
			p, err := v.page(c)
			if err != nil {
				return c.configFailed(err)
			}
			return c.respond(p, alloc)
		}
	}
	return c.invalidCDBField(2, -1)
}

// vpdHeader returns a page of n bytes after its 4-byte header, the
// header filled in: a direct access block device, connected.
func vpdHeader(code byte, n int) []byte {
	p := make([]byte, 4+n)
	p[1] = code
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	return p
}

// vpdUnitSerial is the Unit Serial Number page (SPC-4 7.8.15), from
// wwn/vpd_unit_serial, NUL-terminated as LIO and tcmu-runner return it.
func vpdUnitSerial(c *Cmd) ([]byte, error) {
	serial, err := c.dev.unitSerial()
	if err != nil || serial == "" {
		return vpdHeader(0x80, 0), err
	}
	p := vpdHeader(0x80, len(serial)+1)
	copy(p[4:], serial)
	return p, nil
}

// Designation descriptor fields (SPC-4 7.8.6.1).
const (
	codeSetBinary = 0x1
	codeSetASCII  = 0x2
	codeSetUTF8   = 0x3

	assocLU     = 0x00
	assocPort   = 0x10
	assocTarget = 0x20
	piv         = 0x80 // PROTOCOL IDENTIFIER is valid

	desigVendorT10   = 0x1
	desigNAA         = 0x3
	desigRelPort     = 0x4
	desigPortGroup   = 0x5
	desigSCSINameStr = 0x8
)

// vpdDeviceIdentification is the Device Identification page (SPC-4
// 7.8.6), laid out as LIO's spc_emulate_evpd_83: the NAA designator of
// the unit serial, the T10 vendor ID, and, when ALUA groups are set up,
// the relative target port, the target port group and the SCSI name
// strings of the port and the target of the port commands arrive through.
func vpdDeviceIdentification(c *Cmd) ([]byte, error) {
	serial, err := c.dev.unitSerial()
	if err != nil {
		return nil, err
	}
	groups, err := c.dev.portGroups()
	if err != nil {
		return nil, err
	}
	p := vpdHeader(0x83, 0)
	if serial != "" {
		naa := naaDesignator(serial)
		p = appendDesignator(p, codeSetBinary, assocLU|desigNAA, naa[:])
	}
	// T10 vendor ID: the vendor then the serial, NUL-terminated, as
	// tcmu-runner (the kernel puts the product name in between).
	t10 := make([]byte, 0, len(inquiryVendor)+len(serial)+1)
	t10 = append(append(append(t10, inquiryVendor...), serial...), 0)
	p = appendDesignator(p, codeSetASCII, assocLU|desigVendorT10, t10)
	if g, port, ok := localPort(groups); ok {
		proto := port.ProtocolID << 4
		var id [4]byte
		binary.BigEndian.PutUint16(id[2:], port.RelativeID)
		p = appendDesignator(p, proto|codeSetBinary, piv|assocPort|desigRelPort, id[:])
		binary.BigEndian.PutUint16(id[2:], g.ID)
		p = appendDesignator(p, proto|codeSetBinary, piv|assocPort|desigPortGroup, id[:])
		portName := fmt.Sprintf("%s,t,0x%04x", port.TargetName, port.TPGT)
		p = appendDesignator(p, proto|codeSetUTF8, piv|assocPort|desigSCSINameStr, scsiNameString(portName))
		p = appendDesignator(p, proto|codeSetUTF8, piv|assocTarget|desigSCSINameStr, scsiNameString(port.TargetName))
	}
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)-4))
	return p, nil
}

// appendDesignator appends one designation descriptor.
func appendDesignator(p []byte, codeSet, typ byte, id []byte) []byte {
	p = append(p, codeSet, typ, 0, byte(len(id)))
	return append(p, id...)
}

// scsiNameString returns a SCSI NAME STRING field: UTF-8, NUL-terminated,
// NUL-padded to a multiple of four bytes, at most 256 (SPC-4 7.8.6.11).
func scsiNameString(s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	n := (len(s) + 1 + 3) &^ 3
	b := make([]byte, n)
	copy(b, s)
	return b
}

// localPort returns the enabled port through which commands reach this
// gateway and its group (see TargetPort.Enabled).
func localPort(groups []PortGroup) (*PortGroup, *TargetPort, bool) {
	for i := range groups {
		for j := range groups[i].Ports {
			if groups[i].Ports[j].Enabled {
				return &groups[i], &groups[i].Ports[j], true
			}
		}
	}
	return nil, nil, false
}

// vpdExtendedInquiry is the Extended INQUIRY Data page (SPC-4 7.8.7).
func vpdExtendedInquiry(c *Cmd) ([]byte, error) {
	p := vpdHeader(0x86, 0x3c)
	// SIMPSUP only: for a passthrough backstore the kernel does not
	// enforce task attributes (target_core_user.c queues every command
	// to the ring as it comes) and commands
	// complete in any order, so HEAD OF QUEUE and ORDERED are not
	// honoured.
	p[5] = 0x01
	if c.settings().writeCache {
		p[6] = 0x01 // V_SUP: there is a volatile cache to synchronize
	}
	return p, nil
}

// vpdBlockLimits is the Block Limits page (SBC-3 6.6.3), from the limits
// the block commands enforce (Device.blockLimits, sbc.go).
func vpdBlockLimits(c *Cmd) ([]byte, error) {
	l := c.dev.blockLimits()
	p := vpdHeader(0xb0, 0x3c)
	p[4] = 0x01 // WSNZ: WRITE SAME with zero blocks is refused
	p[5] = l.maxCompareAndWrite
	// OPTIMAL TRANSFER LENGTH GRANULARITY: any block.
	binary.BigEndian.PutUint16(p[6:], 1)
	// MAXIMUM and OPTIMAL TRANSFER LENGTH: hw_max_sectors, as
	// tcmu-runner: the kernel splits nothing, so the largest transfer is
	// also the most efficient.
	binary.BigEndian.PutUint32(p[8:], l.maxTransfer)
	binary.BigEndian.PutUint32(p[12:], l.maxTransfer)
	binary.BigEndian.PutUint32(p[20:], l.maxUnmapLBAs)
	binary.BigEndian.PutUint32(p[24:], l.maxUnmapDescriptors)
	binary.BigEndian.PutUint32(p[28:], l.unmapGranularity)
	binary.BigEndian.PutUint32(p[32:], l.unmapAlignment)
	if l.unmapAlignValid {
		p[32] |= 0x80 // UGAVALID
	}
	binary.BigEndian.PutUint64(p[36:], l.maxWriteSame)
	return p, nil
}

// vpdBlockDeviceCharacteristics is the Block Device Characteristics page
// (SBC-3 6.6.2).
func vpdBlockDeviceCharacteristics(c *Cmd) ([]byte, error) {
	p := vpdHeader(0xb1, 0x3c)
	if c.dev.lim.NonRotational {
		p[5] = 0x01 // MEDIUM ROTATION RATE: non-rotating medium
	}
	return p, nil
}

// vpdLogicalBlockProvisioning is the Logical Block Provisioning page
// (SBC-3 6.6.4), without provisioning group descriptor.
func vpdLogicalBlockProvisioning(c *Cmd) ([]byte, error) {
	p := vpdHeader(0xb2, 4)
	if lim := c.dev.lim; lim.Discard {
		// LBPU, LBPWS, LBPWS10: UNMAP and WRITE SAME(16/10) with UNMAP
		// deallocate.
		p[5] = 0x80 | 0x40 | 0x20
		if lim.DiscardZeroes {
			p[5] |= 0x04 // LBPRZ
		}
		p[6] = 0x02 // PROVISIONING TYPE: thin
	}
	return p, nil
}
