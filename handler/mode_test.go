package handler

import "testing"

// Expected mode pages, byte by byte.
func rwRecoveryPage() []byte { return cat(0x01, 0x0a, zeros(10)) }

func cachingModePage(wce bool) []byte {
	b2 := 0
	if wce {
		b2 = 0x04
	}
	return cat(0x08, 0x12, b2, zeros(9), 0x20, zeros(7))
}

func controlModePage(dsense bool) []byte {
	b2 := 0x02 // GLTSD
	if dsense {
		b2 |= 0x04
	}
	return cat(0x0a, 0x0a, b2, 0x10, 0x00, 0x40, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00)
}

func allPages(wce, dsense bool) []byte {
	return cat(rwRecoveryPage(), cachingModePage(wce), controlModePage(dsense))
}

func changeablePages() []byte {
	return cat(0x01, 0x0a, zeros(10), 0x08, 0x12, zeros(18), 0x0a, 0x0a, 0x04, zeros(9))
}

func modeSense6CDB(dbd bool, pc, page, sub, alloc byte) []byte {
	b1 := byte(0)
	if dbd {
		b1 = 0x08
	}
	return []byte{0x1a, b1, pc<<6 | page, sub, alloc, 0}
}

func modeSense10CDB(llbaa, dbd bool, pc, page, sub byte, alloc uint16) []byte {
	b1 := byte(0)
	if llbaa {
		b1 |= 0x10
	}
	if dbd {
		b1 |= 0x08
	}
	return []byte{0x5a, b1, pc<<6 | page, sub, 0, 0, 0, byte(alloc >> 8), byte(alloc), 0}
}

// shortBD is the short block descriptor of the default test device.
var shortBD = []byte{0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x02, 0x00}

func TestModeSense6(t *testing.T) {
	d := newTestDevice(t, testDev{})
	all := cat(55, 0x00, 0x10, 8, shortBD, allPages(false, false))
	runCases(t, d, []cmdCase{
		{name: "all_pages", cdb: modeSense6CDB(false, pcCurrent, 0x3f, 0, 255), inLen: 255, want: all},
		{name: "all_pages_and_subpages", cdb: modeSense6CDB(false, pcCurrent, 0x3f, 0xff, 255), inLen: 255, want: all},
		{name: "allocation_length_4", cdb: modeSense6CDB(false, pcCurrent, 0x3f, 0, 4), inLen: 4, want: all[:4]},
		{name: "allocation_length_cuts_block_descriptor", cdb: modeSense6CDB(false, pcCurrent, 0x3f, 0, 7), inLen: 255, want: all[:7]},
		{name: "no_block_descriptor", cdb: modeSense6CDB(true, pcCurrent, 0x3f, 0, 255), inLen: 255, want: cat(47, 0x00, 0x10, 0, allPages(false, false))},
		{name: "control", cdb: modeSense6CDB(true, pcCurrent, 0x0a, 0, 255), inLen: 255, want: cat(15, 0x00, 0x10, 0, controlModePage(false))},
		{name: "caching", cdb: modeSense6CDB(false, pcCurrent, 0x08, 0, 255), inLen: 255, want: cat(31, 0x00, 0x10, 8, shortBD, cachingModePage(false))},
		{name: "read_write_error_recovery", cdb: modeSense6CDB(true, pcCurrent, 0x01, 0, 255), inLen: 255, want: cat(15, 0x00, 0x10, 0, rwRecoveryPage())},
		{
			name: "changeable", cdb: modeSense6CDB(false, pcChangeable, 0x3f, 0, 255), inLen: 255,
			want: cat(55, 0x00, 0x10, 8, zeros(8), changeablePages()),
		},
		{name: "default", cdb: modeSense6CDB(false, pcDefault, 0x3f, 0, 255), inLen: 255, want: all},
		{name: "saved", cdb: modeSense6CDB(false, pcSaved, 0x3f, 0, 255), inLen: 255, sense: fixedSense(keyIllegalRequest, 0x3900, nil)},
		{name: "unknown_page", cdb: modeSense6CDB(false, pcCurrent, 0x1c, 0, 255), inLen: 255, sense: invalidCDB(2, 5)},
		{name: "subpage_of_page", cdb: modeSense6CDB(false, pcCurrent, 0x0a, 0x01, 255), inLen: 255, sense: invalidCDB(3, -1)},
		{name: "subpage_of_all_pages", cdb: modeSense6CDB(false, pcCurrent, 0x3f, 0x01, 255), inLen: 255, sense: invalidCDB(3, -1)},
	})
}

func TestModeSense10(t *testing.T) {
	d := newTestDevice(t, testDev{})
	longBD := cat(0, 0, 0, 0, 0, 0, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x00, 0x02, 0x00)
	runCases(t, d, []cmdCase{
		{
			name: "long_lba_block_descriptor", cdb: modeSense10CDB(true, false, pcCurrent, 0x0a, 0, 512), inLen: 512,
			want: cat(0x00, 34, 0x00, 0x10, 0x01, 0x00, 0x00, 16, longBD, controlModePage(false)),
		},
		{
			name: "short_block_descriptor", cdb: modeSense10CDB(false, false, pcCurrent, 0x0a, 0, 512), inLen: 512,
			want: cat(0x00, 26, 0x00, 0x10, 0x00, 0x00, 0x00, 8, shortBD, controlModePage(false)),
		},
		{
			name: "llbaa_without_block_descriptor", cdb: modeSense10CDB(true, true, pcCurrent, 0x3f, 0, 512), inLen: 512,
			want: cat(0x00, 50, 0x00, 0x10, 0x00, 0x00, 0x00, 0, allPages(false, false)),
		},
		{
			name: "allocation_length_cuts_length", cdb: modeSense10CDB(true, true, pcCurrent, 0x3f, 0, 1), inLen: 512,
			want: cat(0x00),
		},
		{name: "saved", cdb: modeSense10CDB(false, false, pcSaved, 0x0a, 0, 512), inLen: 512, sense: fixedSense(keyIllegalRequest, 0x3900, nil)},
		{name: "unknown_page", cdb: modeSense10CDB(false, false, pcCurrent, 0x00, 0, 512), inLen: 512, sense: invalidCDB(2, 5)},
	})
}

func TestModeSenseBlockDescriptorBeyond32Bits(t *testing.T) {
	d := newTestDevice(t, testDev{info: DeviceInfo{Size: (1<<32 + 1) * 512}})
	runCases(t, d, []cmdCase{
		{
			name: "short", cdb: modeSense6CDB(false, pcCurrent, 0x01, 0, 255), inLen: 255,
			want: cat(23, 0x00, 0x10, 8, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x02, 0x00, rwRecoveryPage()),
		},
		{
			name: "long", cdb: modeSense10CDB(true, false, pcCurrent, 0x01, 0, 255), inLen: 255,
			want: cat(0x00, 34, 0x00, 0x10, 0x01, 0x00, 0x00, 16,
				0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0x00, 0x00, 0x02, 0x00, rwRecoveryPage()),
		},
	})
}

func TestModeSenseWriteCache(t *testing.T) {
	d := newTestDevice(t, testDev{info: DeviceInfo{WriteCache: true}})
	cdb := modeSense6CDB(true, pcCurrent, 0x08, 0, 255)
	cmdCase{cdb: cdb, inLen: 255, want: cat(23, 0x00, 0x10, 0, cachingModePage(true))}.check(t, d)
	// Default values are the current ones for what MODE SELECT cannot
	// change: WCE is the kernel's emulate_write_cache.
	cmdCase{cdb: modeSense6CDB(true, pcDefault, 0x08, 0, 255), inLen: 255, want: cat(23, 0x00, 0x10, 0, cachingModePage(true))}.check(t, d)
	d.SetWriteCache(false)
	cmdCase{cdb: cdb, inLen: 255, want: cat(23, 0x00, 0x10, 0, cachingModePage(false))}.check(t, d)
}

func modeSelect6CDB(pf, sp bool, n byte) []byte {
	b1 := byte(0)
	if pf {
		b1 |= 0x10
	}
	if sp {
		b1 |= 0x01
	}
	return []byte{0x15, b1, 0, 0, n, 0}
}

func modeSelect10CDB(pf, sp bool, n uint16) []byte {
	c := modeSelect6CDB(pf, sp, 0)
	return []byte{0x55, c[1], 0, 0, 0, 0, 0, byte(n >> 8), byte(n), 0}
}

// select6 is a MODE SELECT(6) of the whole parameter list p.
func select6(p []byte) []byte { return modeSelect6CDB(true, false, byte(len(p))) }

func TestModeSelectDSense(t *testing.T) {
	d := newTestDevice(t, testDev{})
	good := func(cdb, out []byte) {
		t.Helper()
		c, _ := exec(t, d, cdb, out, 0, 0)
		checkResult(t, c, nil, nil, nil)
	}

	// The page as MODE SENSE returned it, D_SENSE set; the PS bit a MODE
	// SENSE may set is reserved in MODE SELECT and ignored.
	page := controlModePage(true)
	page[0] |= 0x80
	list := cat(0, 0, 0, 0, page)
	good(select6(list), list)
	if !d.dsense.Load() {
		t.Fatal("D_SENSE not set")
	}
	cmdCase{cdb: modeSense6CDB(true, pcCurrent, 0x0a, 0, 255), inLen: 255, want: cat(15, 0x00, 0x10, 0, controlModePage(true))}.check(t, d)
	cmdCase{cdb: modeSense6CDB(true, pcDefault, 0x0a, 0, 255), inLen: 255, want: cat(15, 0x00, 0x10, 0, controlModePage(false))}.check(t, d)

	// Sense data is now in descriptor format (SPC-4 4.5.2): a header and
	// a sense-key specific descriptor with the field pointer.
	cmdCase{
		cdb: inquiryCDB(0x02, 0, 255), inLen: 255,
		sense: cat(0x72, 0x05, 0x24, 0x00, 0, 0, 0, 8, 0x02, 0x06, 0, 0, 0xc9, 0x00, 0x01, 0x00),
	}.check(t, d)
	// MODE SELECT(10), block descriptor and all, clears it again.
	list = cat(0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x02, 0x00, controlModePage(false))
	good(modeSelect10CDB(true, false, uint16(len(list))), list)
	if d.dsense.Load() {
		t.Fatal("D_SENSE still set")
	}
	cmdCase{cdb: inquiryCDB(0x02, 0, 255), inLen: 255, sense: invalidCDB(1, 1)}.check(t, d)
}

func TestModeSelectAcceptsCurrentValues(t *testing.T) {
	tests := []struct {
		name string
		cdb  []byte
		list []byte
	}{
		{"no_parameter_list", modeSelect6CDB(true, false, 0), nil},
		{"header_only", modeSelect6CDB(true, false, 4), cat(0, 0, 0, 0)},
		{"every_page", nil, cat(0, 0, 0, 0, allPages(false, false))},
		{"block_descriptor_zero_blocks", nil, cat(0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x02, 0x00)},
		{"block_descriptor_current_blocks", nil, cat(0, 0, 0, 8, shortBD, rwRecoveryPage())},
		{
			"long_lba_block_descriptor",
			modeSelect10CDB(true, false, 8+16),
			cat(0, 0, 0, 0, 0x01, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0x02, 0x00),
		},
		{
			"mode_select_10", modeSelect10CDB(true, false, 8+12),
			cat(0, 0, 0, 0, 0, 0, 0, 0, controlModePage(false)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDevice(t, testDev{})
			cdb := tt.cdb
			if cdb == nil {
				cdb = select6(tt.list)
			}
			c, _ := exec(t, d, cdb, tt.list, 0, 0)
			checkResult(t, c, nil, nil, nil)
			if d.dsense.Load() {
				t.Error("D_SENSE changed")
			}
		})
	}
}

func TestModeSelectRefuses(t *testing.T) {
	withControl := func(i int, v byte) []byte {
		p := controlModePage(false)
		p[i] = v
		return cat(0, 0, 0, 0, p)
	}
	caching := cachingModePage(true) // WCE differs from the device's
	lengthError := fixedSense(keyIllegalRequest, 0x1a00, nil)
	tests := []struct {
		name  string
		cdb   []byte
		list  []byte
		sense []byte
	}{
		{"pf_clear", modeSelect6CDB(false, false, 16), cat(0, 0, 0, 0, controlModePage(true)), invalidCDB(1, 4)},
		{"sp_set", modeSelect6CDB(true, true, 16), cat(0, 0, 0, 0, controlModePage(true)), invalidCDB(1, 0)},
		{"shorter_than_header", modeSelect6CDB(true, false, 3), cat(0, 0, 0), lengthError},
		{"header_10_cut", modeSelect10CDB(true, false, 6), cat(0, 0, 0, 0, 0, 0), lengthError},
		{"data_out_shorter_than_list", modeSelect6CDB(true, false, 16), cat(0, 0, 0, 0, controlModePage(true))[:12], lengthError},
		{"page_header_cut", nil, cat(0, 0, 0, 0, 0x0a), lengthError},
		{"page_cut", nil, cat(0, 0, 0, 0, controlModePage(true)[:11]), lengthError},
		{"block_descriptor_past_list", nil, cat(0, 0, 0, 8, 0, 0, 0, 0), lengthError},
		{"gltsd_changed", nil, withControl(2, 0x00), invalidParam(6, 1)},
		{"queue_algorithm_changed", nil, withControl(3, 0x00), invalidParam(7, 4)},
		{"swp_set", nil, withControl(4, 0x08), invalidParam(8, 3)},
		{"tas_cleared", nil, withControl(5, 0x00), invalidParam(9, 6)},
		{"busy_timeout_changed", nil, withControl(9, 0x00), invalidParam(13, 7)},
		{"d_sense_with_other_bits", nil, withControl(2, 0x07), invalidParam(6, 0)},
		{"wce_changed", nil, cat(0, 0, 0, 0, caching), invalidParam(6, 2)},
		{"page_length_wrong", nil, withControl(1, 0x0b), invalidParam(5, -1)},
		{"unknown_page", nil, cat(0, 0, 0, 0, 0x1c, 0x0a, zeros(10)), invalidParam(4, 5)},
		{"subpage_format", nil, cat(0, 0, 0, 0, 0x4a, 0x01, 0x00, 0x0a, zeros(10)), invalidParam(4, 6)},
		{"medium_type_6", nil, cat(0, 0x01, 0, 0, controlModePage(true)), invalidParam(1, -1)},
		{"medium_type_10", modeSelect10CDB(true, false, 20), cat(0, 0, 0x01, 0, 0, 0, 0, 0, controlModePage(true)), invalidParam(2, -1)},
		{"block_length_changed", nil, cat(0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x10, 0x00), invalidParam(9, -1)},
		{"capacity_changed", nil, cat(0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0x02, 0x00), invalidParam(4, -1)},
		{"block_descriptor_length_odd", nil, cat(0, 0, 0, 4, 0, 0, 0, 0), invalidParam(3, -1)},
		{"two_block_descriptors", nil, cat(0, 0, 0, 16, shortBD, shortBD), invalidParam(3, -1)},
		{
			"long_block_length_changed", modeSelect10CDB(true, false, 24),
			cat(0, 0, 0, 0, 0x01, 0, 0, 16, zeros(12), 0, 0, 0x10, 0x00), invalidParam(20, -1),
		},
		// The control page is valid but the list is refused as a whole:
		// D_SENSE must stay clear.
		{"atomic", nil, cat(0, 0, 0, 0, controlModePage(true), caching), invalidParam(18, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDevice(t, testDev{})
			cdb := tt.cdb
			if cdb == nil {
				cdb = select6(tt.list)
			}
			cmdCase{cdb: cdb, out: tt.list, sense: tt.sense}.check(t, d)
			if d.dsense.Load() {
				t.Error("D_SENSE changed by a refused MODE SELECT")
			}
		})
	}
}

// TestModePageChangeableMasks checks that every page's mask matches its
// length and leaves the page header alone, and that MODE SENSE's
// changeable values are exactly what MODE SELECT lets through.
func TestModePageChangeableMasks(t *testing.T) {
	for _, pg := range modePages {
		if pg.changeable == nil {
			continue
		}
		if len(pg.changeable) != 2+int(pg.length) || pg.changeable[0] != 0 || pg.changeable[1] != 0 {
			t.Errorf("page %#x: changeable mask % x does not fit length %d", pg.code, pg.changeable, pg.length)
		}
		if pg.apply == nil {
			t.Errorf("page %#x has changeable bits but no apply", pg.code)
		}
	}
	d := newTestDevice(t, testDev{})
	for _, pg := range modePages {
		cur := make([]byte, 2+int(pg.length))
		pg.fill(d, d.set.Load(), pcCurrent, cur)
		for i := 2; i < len(cur); i++ {
			for bit := range 8 {
				flipped := append([]byte(nil), cur...)
				flipped[i] ^= 1 << bit
				list := cat(0, 0, 0, 0, flipped)
				c, _ := exec(t, d, select6(list), list, 0, 0)
				changeable := pg.changeable != nil && pg.changeable[i]&(1<<bit) != 0
				if (c.Status == statusGood) != changeable {
					t.Errorf("page %#x byte %d bit %d: status %#x, changeable %v", pg.code, i, bit, c.Status, changeable)
				}
				// Put the device back.
				list = cat(0, 0, 0, 0, cur)
				exec(t, d, select6(list), list, 0, 0)
			}
		}
	}
}
