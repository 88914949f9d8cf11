package handler

import (
	"bytes"
	"testing"

	"github.com/gotcmu/gotcmu/uio"
)

// TestCommandTable checks every family's rows: what REPORT SUPPORTED
// OPERATION CODES derives from them must be true of the dispatcher.
func TestCommandTable(t *testing.T) {
	type key struct {
		op byte
		sa uint16
	}
	seen := map[key]string{}
	for _, o := range commands.all {
		if o.fn == nil || o.name == "" {
			t.Errorf("%q (%#x): no function or name", o.name, o.op)
		}
		var additional byte
		if o.op == 0x7f && len(o.usage) > 7 {
			additional = o.usage[7]
		}
		if want := uio.CDBLen(o.op, additional); len(o.usage) != want {
			t.Errorf("%s: CDB usage data of %d bytes, the CDB has %d", o.name, len(o.usage), want)
		}
		if o.hasSA {
			// SPC-4 6.35.3: the usage data holds the service action itself.
			var got uint16
			if o.op == 0x7f {
				got = be16(o.usage[8:])
			} else {
				got = uint16(o.usage[1] & 0x1f)
			}
			if got != o.sa {
				t.Errorf("%s: usage data has service action %#x, row %#x", o.name, got, o.sa)
			}
		}
		if rows := commands.byOp[o.op]; rows[0].hasSA != o.hasSA {
			t.Errorf("%s: operation code %#x has rows with and without service actions", o.name, o.op)
		}
		k := key{o.op, o.sa}
		if prev, dup := seen[k]; dup {
			t.Errorf("%s and %s share operation code %#x service action %#x", prev, o.name, o.op, o.sa)
		}
		seen[k] = o.name
	}
}

func rsocCDB(rctd bool, opts, op byte, sa uint16, alloc uint32) []byte {
	b2 := opts
	if rctd {
		b2 |= 0x80
	}
	return []byte{0xa3, 0x0c, b2, op, byte(sa >> 8), byte(sa), byte(alloc >> 24), byte(alloc >> 16), byte(alloc >> 8), byte(alloc), 0, 0}
}

var explicitGroups = []PortGroup{{ID: 1, Explicit: true, Implicit: true, Supported: supAO | supANO | supS}}

func TestReportSupportedOpcodesAll(t *testing.T) {
	for _, explicit := range []bool{false, true} {
		cfg := &fakeConfig{}
		if explicit {
			cfg.groups = explicitGroups
		}
		d := newTestDevice(t, testDev{cfg: cfg})
		for _, rctd := range []bool{false, true} {
			c, in := exec(t, d, rsocCDB(rctd, 0, 0, 0, 65535), nil, 65535, 5)
			if c.Status != statusGood {
				t.Fatalf("status %#x sense % x", c.Status, c.Sense)
			}
			n := int(be32(in)) + 4
			if !c.HasReadLen || int(c.ReadLen) != n {
				t.Fatalf("read length %d, COMMAND DATA LENGTH says %d", c.ReadLen, n)
			}
			size := 8
			if rctd {
				size = 20
			}
			if (n-4)%size != 0 {
				t.Fatalf("command data of %d bytes is not made of %d-byte descriptors", n-4, size)
			}
			listed := map[*opInfo]bool{}
			var prev []byte
			for off := 4; off < n; off += size {
				desc := in[off : off+size]
				o := commands.lookup([]byte{desc[0], desc[3], 0, 0, 0, 0, 0, 0, desc[2], desc[3]})
				if desc[0] != 0x7f && desc[2] != 0 {
					o = nil // a service action above 1Fh exists only for 7Fh
				}
				switch {
				case o == nil:
					t.Errorf("descriptor % x names no command", desc[:8])
					continue
				case !o.enabledOn(d):
					t.Errorf("%s listed while disabled", o.name)
				case listed[o]:
					t.Errorf("%s listed twice", o.name)
				}
				listed[o] = true
				servactv, ctdp := desc[5]&0x01 != 0, desc[5]&0x02 != 0
				if servactv != o.hasSA || ctdp != rctd || int(be16(desc[6:])) != len(o.usage) || desc[1] != 0 || desc[4] != 0 || desc[5]&^0x03 != 0 {
					t.Errorf("%s: descriptor % x", o.name, desc[:8])
				}
				if rctd && !bytes.Equal(desc[8:], cat(0x00, 0x0a, zeros(10))) {
					t.Errorf("%s: timeouts descriptor % x", o.name, desc[8:])
				}
				if prev != nil && bytes.Compare(prev, desc[:4]) >= 0 {
					t.Errorf("descriptor % x after % x: not in order", desc[:4], prev)
				}
				prev = desc[:4]
			}
			enabled := 0
			for _, o := range commands.all {
				if o.enabledOn(d) {
					enabled++
				}
			}
			if len(listed) != enabled {
				t.Errorf("%d commands listed, %d supported", len(listed), enabled)
			}
			// Descriptors of this family's commands, byte by byte.
			mustHave := [][]byte{
				{0x12, 0, 0x00, 0x00, 0, 0x00, 0x00, 0x06},
				{0x9e, 0, 0x00, 0x10, 0, 0x01, 0x00, 0x10},
				{0xa3, 0, 0x00, 0x0a, 0, 0x01, 0x00, 0x0c},
				{0xa3, 0, 0x00, 0x0c, 0, 0x01, 0x00, 0x0c},
			}
			stpg := []byte{0xa4, 0, 0x00, 0x0a, 0, 0x01, 0x00, 0x0c}
			for _, want := range mustHave {
				want := append([]byte(nil), want...)
				if rctd {
					want[5] |= 0x02
				}
				if !containsDescriptor(in[4:n], size, want) {
					t.Errorf("rctd=%v: no descriptor % x", rctd, want)
				}
			}
			stpg[5] |= map[bool]byte{false: 0, true: 0x02}[rctd]
			if got := containsDescriptor(in[4:n], size, stpg); got != explicit {
				t.Errorf("explicit ALUA %v: SET TARGET PORT GROUPS listed %v", explicit, got)
			}

			// The allocation length cuts the same data anywhere.
			for _, alloc := range []uint32{0, 3, 4, 11, uint32(n - 1)} {
				cmdCase{cdb: rsocCDB(rctd, 0, 0, 0, alloc), inLen: int(alloc), want: in[:alloc]}.check(t, d)
			}
		}
	}
}

func containsDescriptor(p []byte, size int, want []byte) bool {
	for off := 0; off+size <= len(p); off += size {
		if bytes.Equal(p[off:off+8], want) {
			return true
		}
	}
	return false
}

func TestReportSupportedOpcodesOne(t *testing.T) {
	notSupported := cat(0x00, 0x01, 0x00, 0x00)
	inquiryOne := cat(0x00, 0x03, 0x00, 0x06, 0x12, 0x03, 0xff, 0xff, 0xff, 0x07)
	timeouts := cat(0x00, 0x0a, zeros(10))
	rsocOne := cat(0x00, 0x03, 0x00, 0x0c, 0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07)
	rtpgOne := cat(0x00, 0x03, 0x00, 0x0c, 0xa3, 0xea, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07)
	stpgOne := cat(0x00, 0x03, 0x00, 0x0c, 0xa4, 0x0a, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07)
	rc16One := cat(0x00, 0x03, 0x00, 0x10, 0x9e, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x07)
	ctdp := func(p []byte) []byte { p = cat(p, timeouts); p[1] |= 0x80; return p }

	d := newTestDevice(t, testDev{})
	runCases(t, d, []cmdCase{
		{name: "opcode", cdb: rsocCDB(false, 1, 0x12, 0, 512), inLen: 512, want: inquiryOne},
		{name: "opcode_ignores_service_action", cdb: rsocCDB(false, 1, 0x12, 7, 512), inLen: 512, want: inquiryOne},
		{name: "opcode_with_timeouts", cdb: rsocCDB(true, 1, 0x12, 0, 512), inLen: 512, want: ctdp(inquiryOne)},
		{name: "opcode_cut", cdb: rsocCDB(false, 1, 0x12, 0, 5), inLen: 5, want: inquiryOne[:5]},
		{name: "opcode_with_service_actions", cdb: rsocCDB(false, 1, 0xa3, 0x0c, 512), inLen: 512, sense: invalidCDB(2, 2)},
		{name: "opcode_unknown", cdb: rsocCDB(false, 1, 0xc5, 0, 512), inLen: 512, want: notSupported},
		{name: "service_action", cdb: rsocCDB(false, 2, 0xa3, 0x0c, 512), inLen: 512, want: rsocOne},
		{name: "service_action_rtpg", cdb: rsocCDB(false, 2, 0xa3, 0x0a, 512), inLen: 512, want: rtpgOne},
		{name: "service_action_read_capacity_16", cdb: rsocCDB(true, 2, 0x9e, 0x10, 512), inLen: 512, want: ctdp(rc16One)},
		{name: "service_action_unknown", cdb: rsocCDB(false, 2, 0xa3, 0x05, 512), inLen: 512, want: notSupported},
		{name: "service_action_stpg_disabled", cdb: rsocCDB(false, 2, 0xa4, 0x0a, 512), inLen: 512, want: notSupported},
		{name: "service_action_of_opcode_without", cdb: rsocCDB(false, 2, 0x12, 0, 512), inLen: 512, sense: invalidCDB(2, 2)},
		{name: "service_action_of_unknown_opcode", cdb: rsocCDB(false, 2, 0xc5, 0, 512), inLen: 512, want: notSupported},
		{name: "either_without_service_action", cdb: rsocCDB(false, 3, 0x12, 0, 512), inLen: 512, want: inquiryOne},
		{name: "either_nonzero_service_action_of_opcode_without", cdb: rsocCDB(false, 3, 0x12, 1, 512), inLen: 512, want: notSupported},
		{name: "either_with_service_action", cdb: rsocCDB(false, 3, 0xa3, 0x0c, 512), inLen: 512, want: rsocOne},
		{name: "either_unknown_service_action", cdb: rsocCDB(false, 3, 0xa3, 0x1f, 512), inLen: 512, want: notSupported},
		{name: "reporting_options_4", cdb: rsocCDB(false, 4, 0x12, 0, 512), inLen: 512, sense: invalidCDB(2, 2)},
		{name: "reporting_options_7", cdb: rsocCDB(false, 7, 0x12, 0, 512), inLen: 512, sense: invalidCDB(2, 2)},
	})
	d = newTestDevice(t, testDev{cfg: &fakeConfig{groups: explicitGroups}})
	runCases(t, d, []cmdCase{
		{name: "service_action_stpg_enabled", cdb: rsocCDB(false, 2, 0xa4, 0x0a, 512), inLen: 512, want: stpgOne},
	})
}

func TestUnsupportedCommands(t *testing.T) {
	invalidOpcode := fixedSense(keyIllegalRequest, 0x2000, nil)
	d := newTestDevice(t, testDev{})
	cases := []cmdCase{
		{name: "unknown_opcode", cdb: []byte{0xc5, 0, 0, 0, 0, 0, 0, 0, 0, 0}, sense: invalidOpcode},
		{name: "maintenance_in_unknown_service_action", cdb: []byte{0xa3, 0x05, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0}, inLen: 255, sense: invalidCDB(1, 4)},
		{name: "service_action_in_unknown_service_action", cdb: cat(0x9e, 0x1f, zeros(14)), sense: invalidCDB(1, 4)},
		// Without an explicit ALUA group MAINTENANCE OUT has no supported
		// service action at all.
		{name: "set_target_port_groups_without_explicit_alua", cdb: []byte{0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, sense: invalidOpcode},
		// A CDB shorter than its command's cannot come from the kernel;
		// it must not be read past its end.
		{name: "short_cdb", cdb: []byte{0x12, 0x01, 0x00, 0x00}, inLen: 255, sense: fixedSense(keyIllegalRequest, 0x2400, nil)},
	}
	if commands.supportsOp(d, 0x7f) {
		cases = append(cases, cmdCase{name: "variable_length_unknown_service_action", cdb: cat(0x7f, zeros(6), 0x18, 0xff, 0xff, zeros(22)), sense: invalidCDB(8, 7)})
	} else {
		cases = append(cases, cmdCase{name: "variable_length", cdb: cat(0x7f, zeros(6), 0x18, 0xff, 0xff, zeros(22)), sense: invalidOpcode})
	}
	runCases(t, d, cases)

	d = newTestDevice(t, testDev{cfg: &fakeConfig{groups: explicitGroups}})
	runCases(t, d, []cmdCase{
		{name: "maintenance_out_unknown_service_action", cdb: []byte{0xa4, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, sense: invalidCDB(1, 4)},
	})
}
