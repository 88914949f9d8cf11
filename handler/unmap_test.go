package handler_test

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/gotcmu/gotcmu/handler"
)

// unmapDesc is one UNMAP block descriptor.
type unmapDesc struct {
	lba uint64
	n   uint32
}

// unmapList builds an UNMAP parameter list (SBC-3 5.28.2).
func unmapList(descs ...unmapDesc) []byte {
	p := make([]byte, 8+16*len(descs))
	binary.BigEndian.PutUint16(p[0:], uint16(len(p)-2))
	binary.BigEndian.PutUint16(p[2:], uint16(16*len(descs)))
	for i, d := range descs {
		binary.BigEndian.PutUint64(p[8+16*i:], d.lba)
		binary.BigEndian.PutUint32(p[8+16*i+8:], d.n)
	}
	return p
}

func unmapCDB(flags byte, pll int) []byte {
	c := cdb10(0x42, flags, 0, uint16(pll))
	return c
}

func TestUnmap(t *testing.T) {
	d := newDevice(t, devConfig{})
	data := pattern(4, 64*d.bs)
	d.write(t, 0, data)
	d.write(t, 8192-64, data)
	list := unmapList(unmapDesc{2, 3}, unmapDesc{8192 - 4, 4}, unmapDesc{10, 0})
	d.be.recorded()
	d.mustGood(t, unmapCDB(0, len(list)), list, 0)
	want := []ioRecord{{handler.OpDiscard, 2 * 512, 3 * 512, false}, {handler.OpDiscard, (8192 - 4) * 512, 4 * 512, false}}
	if ops := d.be.recorded(); !slices.Equal(ops, want) {
		t.Fatalf("backend saw %+v, want %+v", ops, want)
	}
	got := d.read(t, 0, 64)
	exp := slices.Clone(data)
	clear(exp[2*512 : 5*512])
	if !bytes.Equal(got, exp) {
		t.Fatal("blocks 2-4 do not read back as zeros (LBPRZ), or others changed")
	}
	if got := d.read(t, 8192-4, 4); !bytes.Equal(got, make([]byte, 4*512)) {
		t.Fatal("the last blocks do not read back as zeros")
	}
}

func TestUnmapChecks(t *testing.T) {
	d := newDevice(t, devConfig{blocks: 1 << 23})
	maxLBAs, maxDescs, _ := handler.BlockLimits(d.dev)
	one := unmapList(unmapDesc{0, 1})
	for _, tc := range []struct {
		name string
		cdb  []byte
		out  []byte
		want want
	}{
		{"ANCHOR", unmapCDB(0x01, len(one)), one, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 0)},
		{"no parameter list", unmapCDB(0, 0), nil, good},
		{"parameter list shorter than the header", unmapCDB(0, 7), one[:7], checkCond(keyIllegalRequest, ascParamListLength)},
		{"Data-Out shorter than the parameter list", unmapCDB(0, 24), one[:20], checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(7, -1)},
		{"header only", unmapCDB(0, 8), one[:8], good},
		{"descriptor length beyond the list is cut", unmapCDB(0, 24), append(slices.Clone(one[:2]), append([]byte{0xff, 0xf0}, one[4:]...)...), good},
		{"incomplete descriptor ignored", unmapCDB(0, 23), one[:23], good},
		{"no descriptors", unmapCDB(0, 8), unmapList(), good},
		{"256 descriptors of no blocks", nil, nil, good},
		{"past the end", nil, unmapList(unmapDesc{1<<23 - 1, 2}), checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"LBA wraps", nil, unmapList(unmapDesc{1<<64 - 1, 2}), checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"no blocks at the capacity", nil, unmapList(unmapDesc{1 << 23, 0}), good},
		{"no blocks past the capacity", nil, unmapList(unmapDesc{1<<23 + 1, 0}), checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"one descriptor over MAXIMUM UNMAP LBA COUNT", nil, unmapList(unmapDesc{0, maxLBAs + 1}),
			checkCond(keyIllegalRequest, ascInvalidFieldParam).paramField(16, -1)},
		{"descriptors adding up over MAXIMUM UNMAP LBA COUNT", nil, unmapList(unmapDesc{0, maxLBAs}, unmapDesc{uint64(maxLBAs), 1}),
			checkCond(keyIllegalRequest, ascInvalidFieldParam).paramField(32, -1)},
		{"exactly MAXIMUM UNMAP LBA COUNT", nil, unmapList(unmapDesc{0, maxLBAs - 1}, unmapDesc{uint64(maxLBAs), 1}), good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.out
			if out == nil && tc.cdb == nil {
				descs := make([]unmapDesc, 256)
				for i := range descs {
					descs[i].lba = uint64(i / 2)
				}
				out = unmapList(descs...)
			}
			cdb := tc.cdb
			if cdb == nil {
				cdb = unmapCDB(0, len(out))
			}
			tc.want.check(t, tc.name, d.run(t, cdb, out, 0))
		})
	}
	if maxDescs < 256 {
		t.Fatalf("MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT %d: libiscsi sends 256", maxDescs)
	}
}

// A refused UNMAP deallocates nothing, even the descriptors before the bad
// one: the whole list is checked first.
func TestUnmapRefusedDoesNothing(t *testing.T) {
	d := newDevice(t, devConfig{})
	data := pattern(8, 4*d.bs)
	d.write(t, 0, data)
	d.be.recorded()
	list := unmapList(unmapDesc{0, 4}, unmapDesc{8192, 1})
	checkCond(keyIllegalRequest, ascLBAOutOfRange).check(t, "UNMAP", d.run(t, unmapCDB(0, len(list)), list, 0))
	if ops := d.be.recorded(); len(ops) != 0 {
		t.Fatalf("backend saw %+v", ops)
	}
	if !bytes.Equal(d.read(t, 0, 4), data) {
		t.Fatal("data changed")
	}
}

func TestUnmapUnsupported(t *testing.T) {
	d := newDevice(t, devConfig{limits: emulated(func(l *handler.Limits) { l.Discard, l.DiscardZeroes = false, false })})
	list := unmapList(unmapDesc{0, 1})
	checkCond(keyIllegalRequest, ascInvalidOpcode).check(t, "UNMAP without discard", d.run(t, unmapCDB(0, len(list)), list, 0))
}

// Discards larger than Limits.MaxDiscardBytes are split.
func TestUnmapPieces(t *testing.T) {
	d := newDevice(t, devConfig{limits: emulated(func(l *handler.Limits) { l.MaxDiscardBytes = 4096 })})
	list := unmapList(unmapDesc{0, 20})
	d.be.recorded()
	d.mustGood(t, unmapCDB(0, len(list)), list, 0)
	want := []ioRecord{{handler.OpDiscard, 0, 4096, false}, {handler.OpDiscard, 4096, 4096, false}, {handler.OpDiscard, 8192, 2048, false}}
	if ops := d.be.recorded(); !slices.Equal(ops, want) {
		t.Fatalf("backend saw %+v, want %+v", ops, want)
	}
}

func writeSame10(flags byte, lba uint32, n uint16) []byte { return cdb10(0x41, flags, lba, n) }
func writeSame16(flags byte, lba uint64, n uint32) []byte { return cdb16(0x93, flags, lba, n) }

func TestWriteSame(t *testing.T) {
	native := (*handler.Limits)(nil)
	emu := emulated(func(l *handler.Limits) { l.WriteSame = false })
	noDiscard := emulated(func(l *handler.Limits) { l.Discard, l.DiscardZeroes = false, false })
	notZeroing := emulated(func(l *handler.Limits) { l.DiscardZeroes = false })
	blk := pattern(0x33, 512)
	zero := make([]byte, 512)
	for _, tc := range []struct {
		name string
		lim  *handler.Limits
		cdb  []byte
		out  []byte
		fill []byte // what every block of the range holds afterwards
		op   handler.Op
	}{
		{"native WRITE SAME(10)", native, writeSame10(0, 100, 50), blk, blk, handler.OpWriteSame},
		{"native WRITE SAME(16)", native, writeSame16(0, 100, 50), blk, blk, handler.OpWriteSame},
		{"emulated", emu, writeSame10(0, 100, 50), blk, blk, handler.OpWrite},
		{"emulated over several writes", emu, writeSame16(0, 1, 40000), blk, blk, handler.OpWrite},
		{"NDOB writes zeros", native, writeSame16(0x01, 100, 50), nil, zero, handler.OpWriteSame},
		{"NDOB emulated", emu, writeSame16(0x01, 100, 50), nil, zero, handler.OpWrite},
		{"UNMAP of zeros deallocates", native, writeSame10(0x08, 100, 50), zero, zero, handler.OpDiscard},
		{"UNMAP with NDOB deallocates", native, writeSame16(0x09, 100, 50), nil, zero, handler.OpDiscard},
		{"UNMAP of data writes", native, writeSame16(0x08, 100, 50), blk, blk, handler.OpWriteSame},
		{"UNMAP without discard writes", noDiscard, writeSame16(0x08, 100, 50), zero, zero, handler.OpWriteSame},
		{"UNMAP when deallocated blocks do not read as zeros writes", notZeroing, writeSame10(0x08, 100, 50), zero, zero, handler.OpWriteSame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, devConfig{blocks: 65536, limits: tc.lim})
			lba, n := uint64(100), 50
			if tc.cdb[0] == 0x93 {
				lba, n = binary.BigEndian.Uint64(tc.cdb[2:]), int(binary.BigEndian.Uint32(tc.cdb[10:]))
			}
			d.write(t, lba-1, pattern(1, d.bs))
			d.write(t, lba, pattern(2, min(n, 1000)*d.bs))
			d.write(t, lba+uint64(n), pattern(3, d.bs))
			d.be.recorded()
			d.mustGood(t, tc.cdb, tc.out, 0)
			var got []handler.Op
			for _, op := range d.be.recorded() {
				if !slices.Contains(got, op.op) {
					got = append(got, op.op)
				}
			}
			if !slices.Equal(got, []handler.Op{tc.op}) {
				t.Fatalf("backend saw operations %v, want only %v", got, tc.op)
			}
			if !bytes.Equal(d.read(t, lba+uint64(n), 1), pattern(3, d.bs)) || !bytes.Equal(d.read(t, lba-1, 1), pattern(1, d.bs)) {
				t.Fatal("a block outside the range changed")
			}
			all := d.read(t, lba, min(n, 1000))
			for i := 0; i < len(all); i += d.bs {
				if !bytes.Equal(all[i:i+d.bs], tc.fill) {
					t.Fatalf("block %d does not hold the pattern", lba+uint64(i/d.bs))
				}
			}
			if n > 1000 && !bytes.Equal(d.read(t, lba+uint64(n)-1, 1), tc.fill) {
				t.Fatal("the range's last block does not hold the pattern")
			}
		})
	}
}

func TestWriteSameChecks(t *testing.T) {
	d := newDevice(t, devConfig{})
	_, _, maxWS := handler.BlockLimits(d.dev)
	blk := make([]byte, 512)
	for _, tc := range []struct {
		name string
		cdb  []byte
		out  []byte
		want want
	}{
		{"WSNZ: zero blocks (10)", writeSame10(0, 0, 0), blk, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(7, -1)},
		{"WSNZ: zero blocks (16)", writeSame16(0x08, 0, 0), blk, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(10, -1)},
		{"over MAXIMUM WRITE SAME LENGTH", writeSame16(0, 0, uint32(maxWS)+1), blk, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(10, -1)},
		{"ANCHOR", writeSame10(0x10, 0, 1), blk, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 4)},
		{"ANCHOR with UNMAP", writeSame16(0x18, 0, 1), blk, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 4)},
		{"PBDATA", writeSame10(0x04, 0, 1), blk, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 2)},
		{"LBDATA", writeSame16(0x02, 0, 1), blk, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 1)},
		{"WRPROTECT", writeSame10(0x20, 0, 1), blk, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 7)},
		{"past the end", writeSame10(0, 8191, 2), blk, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"LBA wraps", writeSame16(0, 1<<64-1, 2), blk, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"Data-Out of half a block", writeSame10(0x08, 0, 1), blk[:256], checkCond(keyIllegalRequest, ascInvalidFieldCDB)},
		{"Data-Out of two blocks", writeSame10(0x08, 0, 1), make([]byte, 1024), checkCond(keyIllegalRequest, ascInvalidFieldCDB)},
		{"NDOB with Data-Out", writeSame16(0x01, 0, 1), blk, checkCond(keyIllegalRequest, ascInvalidFieldCDB)},
		{"the whole device", writeSame16(0, 0, 8192), blk, good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.check(t, tc.name, d.run(t, tc.cdb, tc.out, 0))
		})
	}
}

// WRITE SAME pieces follow Limits.MaxWriteSameBytes, and writes are
// stable when the write cache is off.
func TestWriteSamePieces(t *testing.T) {
	d := newDevice(t, devConfig{limits: emulated(func(l *handler.Limits) { l.MaxWriteSameBytes = 8192 })})
	d.be.recorded()
	d.mustGood(t, writeSame10(0, 4, 40), make([]byte, 512), 0)
	want := []ioRecord{
		{handler.OpWriteSame, 4 * 512, 8192, true},
		{handler.OpWriteSame, 20 * 512, 8192, true},
		{handler.OpWriteSame, 36 * 512, 4096, true},
	}
	if ops := d.be.recorded(); !slices.Equal(ops, want) {
		t.Fatalf("backend saw %+v, want %+v", ops, want)
	}
}

// Descriptors are joined before they reach the backend: libiscsi's
// SCSI.Unmap.Simple sends UNMAPs of 1 to 256 one-block descriptors of
// consecutive LBAs (32896 in all), each of which was one serial backend
// discard (581 s on user:rbd in the test VM). Each UNMAP is one discard.
func TestUnmapCoalescesLibiscsiSimple(t *testing.T) {
	d := newDevice(t, devConfig{})
	data := pattern(5, 256*d.bs)
	d.write(t, 0, data)
	d.be.recorded()
	descs := make([]unmapDesc, 0, 256)
	total := 0
	for i := range 256 {
		descs = append(descs, unmapDesc{uint64(i), 1})
		list := unmapList(descs...)
		d.mustGood(t, unmapCDB(0, len(list)), list, 0)
		ops := d.be.recorded()
		total += len(ops)
		want := []ioRecord{{handler.OpDiscard, 0, int64(i+1) * 512, false}}
		if !slices.Equal(ops, want) {
			t.Fatalf("UNMAP of %d one-block descriptors: backend saw %+v, want %+v", i+1, ops, want)
		}
	}
	if total != 256 {
		t.Fatalf("%d backend operations for 256 UNMAPs", total)
	}
	if !bytes.Equal(d.read(t, 0, 256), make([]byte, 256*512)) {
		t.Fatal("unmapped blocks do not read back as zeros (LBPRZ)")
	}
}

// Descriptors in any order, overlapping, adjacent or of no blocks
// deallocate exactly their union, in ascending order, one backend
// operation per separate range.
func TestUnmapCoalescesUnion(t *testing.T) {
	d := newDevice(t, devConfig{})
	data := pattern(6, 64*d.bs)
	d.write(t, 0, data)
	d.be.recorded()
	list := unmapList(unmapDesc{10, 2}, unmapDesc{0, 4}, unmapDesc{4, 1}, unmapDesc{3, 3},
		unmapDesc{20, 0}, unmapDesc{30, 1}, unmapDesc{12, 1}, unmapDesc{0, 2}, unmapDesc{40, 0})
	d.mustGood(t, unmapCDB(0, len(list)), list, 0)
	want := []ioRecord{{handler.OpDiscard, 0, 6 * 512, false}, {handler.OpDiscard, 10 * 512, 3 * 512, false},
		{handler.OpDiscard, 30 * 512, 512, false}}
	if ops := d.be.recorded(); !slices.Equal(ops, want) {
		t.Fatalf("backend saw %+v, want %+v", ops, want)
	}
	exp := slices.Clone(data)
	for _, r := range [][2]int{{0, 6}, {10, 13}, {30, 31}} {
		clear(exp[r[0]*512 : r[1]*512])
	}
	if !bytes.Equal(d.read(t, 0, 64), exp) {
		t.Fatal("the union of the descriptors does not read back as zeros, or other blocks changed")
	}
}

// A joined range is still split by Limits.MaxDiscardBytes.
func TestUnmapCoalescedPieces(t *testing.T) {
	d := newDevice(t, devConfig{limits: emulated(func(l *handler.Limits) { l.MaxDiscardBytes = 4096 })})
	descs := make([]unmapDesc, 20)
	for i := range descs {
		descs[i] = unmapDesc{uint64(19 - i), 1}
	}
	list := unmapList(descs...)
	d.be.recorded()
	d.mustGood(t, unmapCDB(0, len(list)), list, 0)
	want := []ioRecord{{handler.OpDiscard, 0, 4096, false}, {handler.OpDiscard, 4096, 4096, false}, {handler.OpDiscard, 8192, 2048, false}}
	if ops := d.be.recorded(); !slices.Equal(ops, want) {
		t.Fatalf("backend saw %+v, want %+v", ops, want)
	}
}
