package handler_test

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
)

func getLBAStatus(lba uint64, alloc uint32) []byte {
	c := cdb16(0x9e, 0x12, lba, alloc)
	return c
}

// lbaStatus is one LBA status descriptor.
type lbaStatus struct {
	lba  uint64
	n    uint32
	prov byte
}

// parseLBAStatus decodes GET LBA STATUS parameter data, checking its
// PARAMETER DATA LENGTH against full, the length of the whole data.
func parseLBAStatus(t *testing.T, p []byte, full int) []lbaStatus {
	t.Helper()
	if len(p) < 4 {
		return nil
	}
	if got := int(binary.BigEndian.Uint32(p)); got != full-4 {
		t.Errorf("PARAMETER DATA LENGTH %d, want %d", got, full-4)
	}
	var out []lbaStatus
	for i := 8; i+16 <= len(p); i += 16 {
		out = append(out, lbaStatus{binary.BigEndian.Uint64(p[i:]), binary.BigEndian.Uint32(p[i+8:]), p[i+12] & 0x0f})
	}
	return out
}

// The mem backend allocates in 1 MiB chunks of 2048 blocks: writing a
// block maps its chunk, discarding a whole chunk deallocates it.
func TestGetLBAStatus(t *testing.T) {
	d := newDevice(t, devConfig{})
	d.write(t, 2048+5, pattern(1, d.bs))
	d.write(t, 6200, pattern(2, d.bs))
	const mapped, deallocated = 0, 1
	all := []lbaStatus{{0, 2048, deallocated}, {2048, 2048, mapped}, {4096, 2048, deallocated}, {6144, 2048, mapped}}
	for _, tc := range []struct {
		name  string
		lba   uint64
		alloc uint32
		want  []lbaStatus
		full  int // length of the whole parameter data
	}{
		{"from 0", 0, 1024, all, 8 + 16*4},
		{"one descriptor", 0, 24, all[:1], 24},
		{"inside a mapped chunk", 3000, 24, []lbaStatus{{3000, 1096, mapped}}, 24},
		{"last block", 8191, 1024, []lbaStatus{{8191, 1, mapped}}, 24},
		{"allocation length cuts a descriptor", 0, 30, all[:1], 24},
		{"allocation length cuts the header", 0, 6, nil, 24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.run(t, getLBAStatus(tc.lba, tc.alloc), nil, int(tc.alloc))
			good.check(t, tc.name, r)
			if len(r.DataIn) != min(int(tc.alloc), tc.full) {
				t.Fatalf("%d bytes of parameter data, want %d", len(r.DataIn), min(int(tc.alloc), tc.full))
			}
			got := parseLBAStatus(t, r.DataIn, tc.full)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("descriptors %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGetLBAStatusAfterUnmap(t *testing.T) {
	d := newDevice(t, devConfig{})
	d.write(t, 0, pattern(1, 4096*d.bs))
	list := unmapList(unmapDesc{2048, 2048})
	d.mustGood(t, unmapCDB(0, len(list)), list, 0)
	r := d.run(t, getLBAStatus(100, 64), nil, 64)
	good.check(t, "GET LBA STATUS", r)
	// Blocks 4096 on were never written.
	want := []lbaStatus{{100, 1948, 0}, {2048, 6144, 1}}
	if got := parseLBAStatus(t, r.DataIn, 8+16*2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("descriptors %v, want %v", got, want)
	}
}

func TestGetLBAStatusChecks(t *testing.T) {
	d := newDevice(t, devConfig{})
	for _, tc := range []struct {
		name string
		cdb  []byte
		want want
	}{
		{"at the capacity", getLBAStatus(8192, 24), checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"LBA 2^64-1", getLBAStatus(1<<64-1, 24), checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"allocation length 0", getLBAStatus(0, 0), good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.check(t, tc.name, d.run(t, tc.cdb, nil, 24))
		})
	}
}

// A backend that cannot tell is fully provisioned: one mapped descriptor
// to the end (at most 2^32-1 blocks).
func TestGetLBAStatusWithoutStatuser(t *testing.T) {
	for _, tc := range []struct {
		blocks int64
		lba    uint64
		want   lbaStatus
	}{
		{8192, 100, lbaStatus{100, 8092, 0}},
		{1<<32 + 10, 0, lbaStatus{0, 0xffffffff, 0}},
	} {
		t.Run(fmt.Sprint(tc.blocks), func(t *testing.T) {
			d := newDevice(t, devConfig{blocks: tc.blocks, noStatus: true})
			r := d.run(t, getLBAStatus(tc.lba, 100), nil, 100)
			good.check(t, "GET LBA STATUS", r)
			if got := parseLBAStatus(t, r.DataIn, 24); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("descriptors %v, want [%v]", got, tc.want)
			}
		})
	}
}

// A backend that fails to tell fails the command; one that fails after
// the first answer gets what is known.
func TestGetLBAStatusBackendError(t *testing.T) {
	d := newDevice(t, devConfig{})
	d.be.failStatus(func(call int) error { return syscall.EIO })
	checkCond(keyMediumError, ascUnrecoveredRead).check(t, "first query fails", d.run(t, getLBAStatus(0, 100), nil, 100))
	d.be.failStatus(func(call int) error {
		if call > 0 {
			return syscall.EIO
		}
		return nil
	})
	r := d.run(t, getLBAStatus(0, 100), nil, 100)
	good.check(t, "second query fails", r)
	if got := parseLBAStatus(t, r.DataIn, 24); len(got) != 1 {
		t.Fatalf("descriptors %v, want one", got)
	}
}
