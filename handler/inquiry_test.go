package handler

import (
	"bytes"
	"testing"
)

// stdInquiry is the standard INQUIRY data with byte 5 (TPGS, 3PC) and byte
// 6 (MULTIP) as given.
func stdInquiry(b5, b6 int) []byte {
	return cat(
		0x00, 0x00, 0x06, 0x12, 91, b5, b6, 0x02,
		"LIO-ORG ", "TCMU device     ", "0002",
		zeros(58-36),
		0x00, 0xa0, 0x04, 0x60, 0x04, 0xc0,
		zeros(96-64),
	)
}

func inquiryCDB(evpd, page byte, alloc uint16) []byte {
	return []byte{0x12, evpd, page, byte(alloc >> 8), byte(alloc), 0}
}

func TestInquiryStandard(t *testing.T) {
	d := newTestDevice(t, testDev{})
	full := stdInquiry(0x08, 0)
	runCases(t, d, []cmdCase{
		{name: "whole", cdb: inquiryCDB(0, 0, 96), inLen: 96, want: full},
		{name: "buffer_larger_than_data", cdb: inquiryCDB(0, 0, 260), inLen: 260, want: full},
		{name: "allocation_length_36", cdb: inquiryCDB(0, 0, 36), inLen: 36, want: full[:36]},
		{name: "allocation_length_cuts_vendor", cdb: inquiryCDB(0, 0, 11), inLen: 255, want: full[:11]},
		{name: "allocation_length_cuts_version_descriptor", cdb: inquiryCDB(0, 0, 59), inLen: 59, want: full[:59]},
		{name: "allocation_length_zero", cdb: inquiryCDB(0, 0, 0), inLen: 0, want: nil},
		{name: "allocation_length_zero_with_buffer", cdb: inquiryCDB(0, 0, 0), inLen: 8, want: nil},
		{name: "page_code_without_evpd", cdb: inquiryCDB(0, 0x80, 255), inLen: 255, sense: invalidCDB(2, -1)},
		{name: "cmddt_is_obsolete", cdb: inquiryCDB(0x02, 0, 255), inLen: 255, sense: invalidCDB(1, 1)},
	})
}

func TestInquiryTPGS(t *testing.T) {
	port := func(id uint16) TargetPort { return TargetPort{RelativeID: id, ProtocolID: 5} }
	tests := []struct {
		name   string
		groups []PortGroup
		b5, b6 int
	}{
		{"no_groups", nil, 0x08, 0},
		{"implicit", []PortGroup{{ID: 1, Implicit: true, Ports: []TargetPort{port(1)}}}, 0x18, 0},
		{"explicit", []PortGroup{{ID: 1, Explicit: true, Ports: []TargetPort{port(1)}}}, 0x28, 0},
		{"implicit_and_explicit", []PortGroup{{ID: 1, Implicit: true, Explicit: true}}, 0x38, 0},
		{"groups_of_each_kind", []PortGroup{{ID: 1, Implicit: true}, {ID: 2, Explicit: true}}, 0x38, 0},
		{"neither", []PortGroup{{ID: 1, Ports: []TargetPort{port(1)}}}, 0x08, 0},
		{
			"two_ports_multip",
			[]PortGroup{{ID: 1, Implicit: true, Ports: []TargetPort{port(1)}}, {ID: 2, Implicit: true, Ports: []TargetPort{port(2)}}},
			0x18, 0x10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDevice(t, testDev{cfg: &fakeConfig{groups: tt.groups}})
			cmdCase{cdb: inquiryCDB(0, 0, 96), inLen: 96, want: stdInquiry(tt.b5, tt.b6)}.check(t, d)
		})
	}
}

func TestInquiryConfigError(t *testing.T) {
	d := newTestDevice(t, testDev{cfg: &fakeConfig{err: errConfigfs}})
	hw := fixedSense(keyHardwareError, 0x4400, nil)
	runCases(t, d, []cmdCase{
		{name: "standard", cdb: inquiryCDB(0, 0, 96), inLen: 96, sense: hw},
		{name: "unit_serial", cdb: inquiryCDB(1, 0x80, 255), inLen: 255, sense: hw},
		{name: "device_identification", cdb: inquiryCDB(1, 0x83, 255), inLen: 255, sense: hw},
		// Pages that need no configfs state are still served.
		{name: "supported_pages", cdb: inquiryCDB(1, 0x00, 255), inLen: 255, want: cat(0, 0, 0, 7, 0x00, 0x80, 0x83, 0x86, 0xb0, 0xb1, 0xb2)},
	})
}

func TestInquiryNilConfig(t *testing.T) {
	d := newTestDevice(t, testDev{})
	runCases(t, d, []cmdCase{
		{name: "unit_serial_empty", cdb: inquiryCDB(1, 0x80, 255), inLen: 255, want: cat(0, 0x80, 0, 0)},
		{
			name: "device_identification_vendor_only", cdb: inquiryCDB(1, 0x83, 255), inLen: 255,
			want: cat(0, 0x83, 0, 13, 0x02, 0x01, 0, 9, "LIO-ORG ", 0),
		},
	})
}

const testSerial = "a1b2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"

// naaOfTestSerial is the NAA designator LIO derives from testSerial: the
// first 25 hex digits, dashes skipped.
var naaOfTestSerial = []byte{0x60, 0x01, 0x40, 0x5a, 0x1b, 0x2c, 0x3d, 0x45, 0xe6, 0xf4, 0xa7, 0xb8, 0xc9, 0xd0, 0xe1, 0xf2}

func TestVPD(t *testing.T) {
	d := newTestDevice(t, testDev{cfg: &fakeConfig{serial: testSerial}})
	naaDesc := cat(0x01, 0x03, 0x00, 16, naaOfTestSerial)
	t10Desc := cat(0x02, 0x01, 0x00, 8+len(testSerial)+1, "LIO-ORG ", testSerial, 0)
	page83 := cat(0x00, 0x83, 0x00, len(naaDesc)+len(t10Desc), naaDesc, t10Desc)
	page80 := cat(0x00, 0x80, 0x00, len(testSerial)+1, testSerial, 0)
	page00 := cat(0x00, 0x00, 0x00, 7, 0x00, 0x80, 0x83, 0x86, 0xb0, 0xb1, 0xb2)
	runCases(t, d, []cmdCase{
		{name: "supported_pages", cdb: inquiryCDB(1, 0x00, 255), inLen: 255, want: page00},
		{name: "supported_pages_cut", cdb: inquiryCDB(1, 0x00, 6), inLen: 6, want: page00[:6]},
		{name: "unit_serial", cdb: inquiryCDB(1, 0x80, 255), inLen: 255, want: page80},
		{name: "unit_serial_cut_in_serial", cdb: inquiryCDB(1, 0x80, 10), inLen: 10, want: page80[:10]},
		{name: "device_identification", cdb: inquiryCDB(1, 0x83, 255), inLen: 255, want: page83},
		{name: "device_identification_cut_in_naa", cdb: inquiryCDB(1, 0x83, 13), inLen: 64, want: page83[:13]},
		{name: "unknown_page", cdb: inquiryCDB(1, 0x84, 255), inLen: 255, sense: invalidCDB(2, -1)},
		{name: "vendor_page", cdb: inquiryCDB(1, 0xc0, 255), inLen: 255, sense: invalidCDB(2, -1)},
	})
}

func TestVPDUnitSerialIsReadEachTime(t *testing.T) {
	cfg := &fakeConfig{}
	d := newTestDevice(t, testDev{cfg: cfg})
	cmdCase{cdb: inquiryCDB(1, 0x80, 255), inLen: 255, want: cat(0, 0x80, 0, 0)}.check(t, d)
	// rtslib writes vpd_unit_serial after enable.
	cfg.serial = "abc"
	cmdCase{cdb: inquiryCDB(1, 0x80, 255), inLen: 255, want: cat(0, 0x80, 0, 4, "abc", 0)}.check(t, d)
}

func TestVPDUnitSerialBounded(t *testing.T) {
	long := string(bytes.Repeat([]byte{'7'}, 300))
	d := newTestDevice(t, testDev{cfg: &fakeConfig{serial: long}})
	cmdCase{cdb: inquiryCDB(1, 0x80, 512), inLen: 512, want: cat(0, 0x80, 0, 254, long[:253], 0)}.check(t, d)
}

func TestVPDDeviceIdentificationALUA(t *testing.T) {
	groups := []PortGroup{
		{ID: 7, Implicit: true, Ports: []TargetPort{{RelativeID: 9, ProtocolID: 5, TargetName: "iqn.y:u", TPGT: 2}}},
		{ID: 2, Implicit: true, Ports: []TargetPort{
			{RelativeID: 1, ProtocolID: 5, TargetName: "iqn.y:u", TPGT: 1},
			{RelativeID: 3, ProtocolID: 5, TargetName: "iqn.x:t", TPGT: 1, Enabled: true},
		}},
	}
	d := newTestDevice(t, testDev{cfg: &fakeConfig{serial: "12", groups: groups}})
	descs := cat(
		0x01, 0x03, 0x00, 16, 0x60, 0x01, 0x40, 0x51, 0x20, zeros(11),
		0x02, 0x01, 0x00, 11, "LIO-ORG ", "12", 0,
		// Relative target port 3 and target port group 2 of the enabled
		// port: iSCSI (5), binary, PIV, associated with the target port.
		0x51, 0x94, 0x00, 4, 0, 0, 0, 3,
		0x51, 0x95, 0x00, 4, 0, 0, 0, 2,
		// SCSI name strings, UTF-8, NUL-terminated, padded to 4 bytes:
		// the port's, then the target device's.
		0x53, 0x98, 0x00, 20, "iqn.x:t,t,0x0001", 0, 0, 0, 0,
		0x53, 0xa8, 0x00, 8, "iqn.x:t", 0,
	)
	page := cat(0x00, 0x83, 0x00, len(descs), descs)
	runCases(t, d, []cmdCase{
		{name: "whole", cdb: inquiryCDB(1, 0x83, 255), inLen: 255, want: page},
		{name: "cut_in_scsi_name", cdb: inquiryCDB(1, 0x83, 60), inLen: 60, want: page[:60]},
	})
}

func TestVPDDeviceIdentificationNoEnabledPort(t *testing.T) {
	groups := []PortGroup{{ID: 2, Implicit: true, Ports: []TargetPort{{RelativeID: 1, ProtocolID: 5, TargetName: "iqn.y:u", TPGT: 1}}}}
	d := newTestDevice(t, testDev{cfg: &fakeConfig{serial: "12", groups: groups}})
	descs := cat(0x01, 0x03, 0x00, 16, 0x60, 0x01, 0x40, 0x51, 0x20, zeros(11), 0x02, 0x01, 0x00, 11, "LIO-ORG ", "12", 0)
	cmdCase{cdb: inquiryCDB(1, 0x83, 255), inLen: 255, want: cat(0x00, 0x83, 0x00, len(descs), descs)}.check(t, d)
}

func TestSCSINameString(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{{"", 4}, {"abc", 4}, {"abcd", 8}, {string(bytes.Repeat([]byte{'x'}, 255)), 256}, {string(bytes.Repeat([]byte{'x'}, 300)), 256}}
	for _, tt := range tests {
		b := scsiNameString(tt.in)
		if len(b) != tt.want || b[len(b)-1] != 0 {
			t.Errorf("scsiNameString(%d bytes) = %d bytes ending %#x, want %d ending 0", len(tt.in), len(b), b[len(b)-1], tt.want)
		}
	}
}

func TestVPDExtendedInquiry(t *testing.T) {
	page := func(b6 int) []byte { return cat(0x00, 0x86, 0x00, 0x3c, 0x00, 0x01, b6, zeros(64-7)) }
	d := newTestDevice(t, testDev{})
	cmdCase{cdb: inquiryCDB(1, 0x86, 255), inLen: 255, want: page(0)}.check(t, d)
	d = newTestDevice(t, testDev{info: DeviceInfo{WriteCache: true}})
	cmdCase{cdb: inquiryCDB(1, 0x86, 64), inLen: 64, want: page(0x01)}.check(t, d)
	d.SetWriteCache(false)
	cmdCase{cdb: inquiryCDB(1, 0x86, 64), inLen: 64, want: page(0)}.check(t, d)
}

func TestVPDBlockLimits(t *testing.T) {
	// The unmap and write-same limits are the block commands' own
	// (Device.blockLimits): the page must say what they enforce.
	be := func(v uint64, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(v >> (8 * (n - 1 - i)))
		}
		return b
	}
	tests := []struct {
		name string
		dev  testDev
		want func(l blockLimits) []byte
	}{
		{
			name: "no_unmap",
			dev:  testDev{info: DeviceInfo{MaxSectors: 1024}},
			want: func(l blockLimits) []byte {
				return cat(0x00, 0xb0, 0x00, 0x3c, 0x01, 0x01, 0x00, 0x01,
					0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x00,
					zeros(20), be(l.maxWriteSame, 8), zeros(20))
			},
		},
		{
			name: "unmap_with_granularity",
			dev: testDev{
				info: DeviceInfo{BlockSize: 4096, MaxSectors: 256},
				lim:  Limits{Discard: true, DiscardGranularity: 4 << 20, DiscardAlignment: 1 << 20},
			},
			want: func(l blockLimits) []byte {
				return cat(0x00, 0xb0, 0x00, 0x3c, 0x01, 0x01, 0x00, 0x01,
					0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, zeros(4),
					be(uint64(l.maxUnmapLBAs), 4), be(uint64(l.maxUnmapDescriptors), 4),
					0x00, 0x00, 0x04, 0x00, // OPTIMAL UNMAP GRANULARITY: 4 MiB
					0x80, 0x00, 0x01, 0x00, // UGAVALID, alignment 1 MiB
					be(l.maxWriteSame, 8), zeros(20))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDevice(t, tt.dev)
			l := d.blockLimits()
			if d.lim.Discard != (l.maxUnmapLBAs != 0 && l.maxUnmapDescriptors != 0) || l.maxWriteSame == 0 {
				t.Fatalf("blockLimits %+v do not fit the backend's %+v", l, d.lim)
			}
			want := tt.want(l)
			runCases(t, d, []cmdCase{
				{name: "whole", cdb: inquiryCDB(1, 0xb0, 64), inLen: 64, want: want},
				{name: "cut_in_max_transfer", cdb: inquiryCDB(1, 0xb0, 10), inLen: 64, want: want[:10]},
			})
		})
	}
}

func TestVPDBlockDeviceCharacteristics(t *testing.T) {
	page := func(rate int) []byte { return cat(0x00, 0xb1, 0x00, 0x3c, 0x00, rate, zeros(58)) }
	d := newTestDevice(t, testDev{})
	cmdCase{cdb: inquiryCDB(1, 0xb1, 64), inLen: 64, want: page(0)}.check(t, d)
	d = newTestDevice(t, testDev{lim: Limits{NonRotational: true}})
	cmdCase{cdb: inquiryCDB(1, 0xb1, 64), inLen: 64, want: page(1)}.check(t, d)
}

func TestVPDLogicalBlockProvisioning(t *testing.T) {
	tests := []struct {
		name string
		lim  Limits
		want []byte
	}{
		{"thick", Limits{}, cat(0x00, 0xb2, 0x00, 0x04, 0, 0, 0, 0)},
		{"thin", Limits{Discard: true}, cat(0x00, 0xb2, 0x00, 0x04, 0, 0xe0, 0x02, 0)},
		{"thin_reads_zeroes", Limits{Discard: true, DiscardZeroes: true}, cat(0x00, 0xb2, 0x00, 0x04, 0, 0xe4, 0x02, 0)},
		{"zeroes_without_discard", Limits{DiscardZeroes: true}, cat(0x00, 0xb2, 0x00, 0x04, 0, 0, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDevice(t, testDev{lim: tt.lim})
			cmdCase{cdb: inquiryCDB(1, 0xb2, 64), inLen: 64, want: tt.want}.check(t, d)
		})
	}
}

func TestNAADesignator(t *testing.T) {
	tests := []struct {
		name, serial string
		want         []byte
	}{
		{"uuid_dashes_skipped", testSerial, naaOfTestSerial},
		{"empty", "", cat(0x60, 0x01, 0x40, 0x50, zeros(12))},
		{"odd_digits", "123", cat(0x60, 0x01, 0x40, 0x51, 0x23, zeros(11))},
		{"upper_case", "ABCDEF", cat(0x60, 0x01, 0x40, 0x5a, 0xbc, 0xde, 0xf0, zeros(9))},
		{"no_hex_digits", "xyz-!", cat(0x60, 0x01, 0x40, 0x50, zeros(12))},
		{
			"beyond_25_digits_ignored", "0123456789abcdef0123456789abcdef",
			cat(0x60, 0x01, 0x40, 0x50, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := naaDesignator(tt.serial)
			if !bytes.Equal(got[:], tt.want) {
				t.Errorf("naaDesignator(%q)\n got % x\nwant % x", tt.serial, got, tt.want)
			}
		})
	}
}
