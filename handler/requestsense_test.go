package handler

import "testing"

func requestSenseCDB(desc bool, alloc byte) []byte {
	b1 := byte(0)
	if desc {
		b1 = 0x01
	}
	return []byte{0x03, b1, 0, 0, alloc, 0}
}

var tur = []byte{0x00, 0, 0, 0, 0, 0}

func TestRequestSenseNoSense(t *testing.T) {
	d := newTestDevice(t, testDev{})
	fixed := fixedSense(keyNoSense, 0, nil)
	desc := cat(0x72, 0, 0, 0, 0, 0, 0, 0)
	runCases(t, d, []cmdCase{
		{name: "fixed", cdb: requestSenseCDB(false, 252), inLen: 252, want: fixed},
		{name: "fixed_exact", cdb: requestSenseCDB(false, 18), inLen: 18, want: fixed},
		{name: "fixed_cut", cdb: requestSenseCDB(false, 8), inLen: 18, want: fixed[:8]},
		{name: "descriptor", cdb: requestSenseCDB(true, 252), inLen: 252, want: desc},
		{name: "descriptor_cut", cdb: requestSenseCDB(true, 3), inLen: 3, want: desc[:3]},
		{name: "allocation_length_zero", cdb: requestSenseCDB(false, 0), inLen: 0, want: nil},
	})
	// The D_SENSE setting does not matter: DESC chooses.
	d.dsense.Store(true)
	runCases(t, d, []cmdCase{
		{name: "fixed_with_d_sense", cdb: requestSenseCDB(false, 252), inLen: 252, want: fixed},
	})
}

// TestUnitAttentionCapacityChanged: after a resize the next command that
// is not INQUIRY or REQUEST SENSE gets 06/2A/09 once (SAM-5 5.14, SBC-3
// 4.11); REQUEST SENSE reports and clears it.
func TestUnitAttentionCapacityChanged(t *testing.T) {
	ua := fixedSense(keyUnitAttention, 0x2a09, nil)
	once := func(t *testing.T, d *Device, cdb []byte, inLen int, want, sense []byte) {
		t.Helper()
		c, in := exec(t, d, cdb, nil, inLen, 0)
		checkResult(t, c, in, want, sense)
	}
	t.Run("next_command", func(t *testing.T) {
		d := newTestDevice(t, testDev{})
		if err := d.Resize(4096 * 512); err != nil {
			t.Fatal(err)
		}
		once(t, d, inquiryCDB(0, 0, 96), 96, stdInquiry(0x08, 0), nil)
		once(t, d, tur, 0, nil, ua)
		once(t, d, tur, 0, nil, nil)
		once(t, d, requestSenseCDB(false, 18), 18, fixedSense(keyNoSense, 0, nil), nil)
	})
	t.Run("request_sense", func(t *testing.T) {
		d := newTestDevice(t, testDev{})
		if err := d.Resize(4096 * 512); err != nil {
			t.Fatal(err)
		}
		once(t, d, requestSenseCDB(false, 252), 252, fixedSense(keyUnitAttention, 0x2a09, nil), nil)
		once(t, d, tur, 0, nil, nil)
	})
	t.Run("request_sense_descriptor", func(t *testing.T) {
		d := newTestDevice(t, testDev{})
		if err := d.Resize(4096 * 512); err != nil {
			t.Fatal(err)
		}
		once(t, d, requestSenseCDB(true, 252), 252, cat(0x72, 0x06, 0x2a, 0x09, 0, 0, 0, 0), nil)
		once(t, d, tur, 0, nil, nil)
	})
	t.Run("descriptor_format_unit_attention", func(t *testing.T) {
		d := newTestDevice(t, testDev{})
		d.dsense.Store(true)
		if err := d.Resize(4096 * 512); err != nil {
			t.Fatal(err)
		}
		once(t, d, tur, 0, nil, cat(0x72, 0x06, 0x2a, 0x09, 0, 0, 0, 0))
	})
}

func TestTestUnitReady(t *testing.T) {
	d := newTestDevice(t, testDev{})
	cmdCase{cdb: tur}.check(t, d)
}
