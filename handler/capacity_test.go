package handler

import "testing"

func rc10CDB(lba uint32, pmi byte) []byte {
	return []byte{0x25, 0, byte(lba >> 24), byte(lba >> 16), byte(lba >> 8), byte(lba), 0, 0, pmi, 0}
}

func rc16CDB(lba uint64, alloc uint32, pmi byte) []byte {
	return []byte{0x9e, 0x10,
		byte(lba >> 56), byte(lba >> 48), byte(lba >> 40), byte(lba >> 32), byte(lba >> 24), byte(lba >> 16), byte(lba >> 8), byte(lba),
		byte(alloc >> 24), byte(alloc >> 16), byte(alloc >> 8), byte(alloc), pmi, 0}
}

func TestReadCapacity10(t *testing.T) {
	d := newTestDevice(t, testDev{}) // 2048 blocks of 512 bytes
	want := cat(0x00, 0x00, 0x07, 0xff, 0x00, 0x00, 0x02, 0x00)
	runCases(t, d, []cmdCase{
		{name: "simple", cdb: rc10CDB(0, 0), inLen: 8, want: want},
		{name: "larger_buffer", cdb: rc10CDB(0, 0), inLen: 16, want: want},
		{name: "buffer_cuts_block_length", cdb: rc10CDB(0, 0), inLen: 6, want: want[:6]},
		{name: "pmi_with_lba", cdb: rc10CDB(100, 1), inLen: 8, want: want},
		{name: "lba_without_pmi", cdb: rc10CDB(100, 0), inLen: 8, sense: invalidCDB(2, -1)},
	})
}

func TestReadCapacity10BeyondTwoTerabytes(t *testing.T) {
	tests := []struct {
		name   string
		blocks int64
		want   []byte
	}{
		{"last_lba_fits", 0xffffffff, cat(0xff, 0xff, 0xff, 0xfe, 0x00, 0x00, 0x10, 0x00)},
		{"2^32_blocks", 1 << 32, cat(0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x10, 0x00)},
		{"beyond", 1<<32 + 5, cat(0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x10, 0x00)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDevice(t, testDev{info: DeviceInfo{BlockSize: 4096, Size: tt.blocks * 4096}})
			cmdCase{cdb: rc10CDB(0, 0), inLen: 8, want: tt.want}.check(t, d)
		})
	}
}

func TestReadCapacity16(t *testing.T) {
	rc16 := func(b14 int) []byte {
		return cat(0, 0, 0, 1, 0, 0, 0, 4, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, b14, 0x00, zeros(16))
	}
	tests := []struct {
		name string
		lim  Limits
		want []byte
	}{
		{"thick", Limits{}, rc16(0)},
		{"thin", Limits{Discard: true}, rc16(0x80)},
		{"thin_reads_zeroes", Limits{Discard: true, DiscardZeroes: true}, rc16(0xc0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDevice(t, testDev{info: DeviceInfo{Size: (1<<32 + 5) * 512}, lim: tt.lim})
			runCases(t, d, []cmdCase{
				{name: "whole", cdb: rc16CDB(0, 32, 0), inLen: 32, want: tt.want},
				{name: "allocation_length_cuts_lba", cdb: rc16CDB(0, 5, 0), inLen: 32, want: tt.want[:5]},
				{name: "allocation_length_15", cdb: rc16CDB(0, 15, 0), inLen: 15, want: tt.want[:15]},
				{name: "allocation_length_zero", cdb: rc16CDB(0, 0, 0), inLen: 32, want: nil},
				{name: "large_allocation_length", cdb: rc16CDB(0, 0xffffffff, 0), inLen: 64, want: tt.want},
				{name: "pmi_with_lba", cdb: rc16CDB(1<<40, 32, 1), inLen: 32, want: tt.want},
				{name: "lba_without_pmi", cdb: rc16CDB(1<<40, 32, 0), inLen: 32, sense: invalidCDB(2, -1)},
			})
		})
	}
}

func TestReadCapacityEmptyDevice(t *testing.T) {
	d := newTestDevice(t, testDev{empty: true})
	cmdCase{cdb: rc10CDB(0, 0), inLen: 8, want: cat(0, 0, 0, 0, 0x00, 0x00, 0x02, 0x00)}.check(t, d)
	cmdCase{cdb: rc16CDB(0, 12, 0), inLen: 12, want: cat(zeros(8), 0x00, 0x00, 0x02, 0x00)}.check(t, d)
}

func TestReadCapacityAfterResize(t *testing.T) {
	d := newTestDevice(t, testDev{})
	if err := d.Resize(4096 * 512); err != nil {
		t.Fatal(err)
	}
	c, in := exec(t, d, rc10CDB(0, 0), nil, 8, 0)
	checkResult(t, c, in, nil, fixedSense(keyUnitAttention, 0x2a09, nil))
	cmdCase{cdb: rc10CDB(0, 0), inLen: 8, want: cat(0x00, 0x00, 0x0f, 0xff, 0x00, 0x00, 0x02, 0x00)}.check(t, d)
}
