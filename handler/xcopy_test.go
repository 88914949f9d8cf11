package handler_test

import (
	"bytes"
	"encoding/binary"
	"slices"
	"syscall"
	"testing"

	"github.com/gotcmu/gotcmu/handler"
)

const (
	serialA = "4c1f52ae-6a7b-4d2e-8f10-0123456789ab"
	serialB = "9d8e7f60-5a4b-4c3d-2e1f-fedcba987654"
)

// xcopyTarget is an identification target descriptor (E4h) naming the
// logical unit with the given NAA designator.
func xcopyTarget(naa [16]byte, bs uint32) []byte {
	t := make([]byte, 32)
	t[0] = 0xe4
	t[4] = 0x01 // binary
	t[5] = 0x03 // logical unit, NAA
	t[7] = 16
	copy(t[8:], naa[:])
	t[29], t[30], t[31] = byte(bs>>16), byte(bs>>8), byte(bs)
	return t
}

// xcopySegment is a block to block segment descriptor (02h).
func xcopySegment(src, dst, n uint16, srcLBA, dstLBA uint64) []byte {
	s := make([]byte, 28)
	s[0] = 0x02
	binary.BigEndian.PutUint16(s[2:], 0x18)
	binary.BigEndian.PutUint16(s[4:], src)
	binary.BigEndian.PutUint16(s[6:], dst)
	binary.BigEndian.PutUint16(s[10:], n)
	binary.BigEndian.PutUint64(s[12:], srcLBA)
	binary.BigEndian.PutUint64(s[20:], dstLBA)
	return s
}

// xcopyList is an EXTENDED COPY parameter list; byte1 holds LIST ID USAGE
// and the rest of the header's byte 1.
func xcopyList(listID, byte1 byte, targets, segments [][]byte) []byte {
	p := make([]byte, 16)
	p[0], p[1] = listID, byte1
	td, sd := slices.Concat(targets...), slices.Concat(segments...)
	binary.BigEndian.PutUint16(p[2:], uint16(len(td)))
	binary.BigEndian.PutUint32(p[8:], uint32(len(sd)))
	return slices.Concat(p, td, sd)
}

func xcopyCDB(pll int) []byte { return cdb16(0x83, 0x00, 0, uint32(pll)) }

const listIDNone = 0x18 // LIST ID USAGE 11b: no list identifier

func TestExtendedCopyWithinDevice(t *testing.T) {
	d := newDevice(t, devConfig{serial: serialA})
	naa := handler.NAADesignator(serialA)
	data := pattern(11, 3000*d.bs) // more than one scratch buffer
	d.write(t, 0, data)
	list := xcopyList(0, listIDNone, [][]byte{xcopyTarget(naa, 512)}, [][]byte{xcopySegment(0, 0, 3000, 0, 5000)})
	d.mustGood(t, xcopyCDB(len(list)), list, 0)
	if got := d.read(t, 5000, 3000); !bytes.Equal(got, data) {
		t.Fatal("the copy differs from the source")
	}
	if !bytes.Equal(d.read(t, 4999, 1), make([]byte, 512)) || !bytes.Equal(d.read(t, 8000, 1), make([]byte, 512)) {
		t.Fatal("blocks around the destination changed")
	}
}

// Between two devices of this daemon, named by their NAA designators: a
// copy pushed from the source's port and one pulled from the
// destination's.
func TestExtendedCopyBetweenDevices(t *testing.T) {
	a := newDevice(t, devConfig{serial: serialA, writeCache: true})
	b := newDevice(t, devConfig{serial: serialB, writeCache: false})
	naaA, naaB := handler.NAADesignator(serialA), handler.NAADesignator(serialB)
	peers := func(naa [16]byte) (*handler.Device, error) {
		switch naa {
		case naaA:
			return a.dev, nil
		case naaB:
			return b.dev, nil
		}
		return nil, nil
	}
	handler.SetCopyPeer(a.dev, peers)
	handler.SetCopyPeer(b.dev, peers)
	data := pattern(12, 100*a.bs)
	a.write(t, 10, data)
	for _, on := range []*device{a, b} {
		list := xcopyList(1, 0x10, [][]byte{xcopyTarget(naaA, 512), xcopyTarget(naaB, 512)},
			[][]byte{xcopySegment(0, 1, 100, 10, 20)})
		on.be.recorded()
		b.be.recorded()
		on.mustGood(t, xcopyCDB(len(list)), list, 0)
		if got := b.read(t, 20, 100); !bytes.Equal(got, data) {
			t.Fatal("the destination does not hold the source's blocks")
		}
		for _, op := range b.be.recorded() {
			if op.op == handler.OpWrite && !op.fua {
				t.Fatal("a write to a device with its write cache off was not FUA")
			}
		}
		clear(data[:512])
		b.write(t, 20, make([]byte, 100*b.bs))
		a.write(t, 10, data)
	}
}

func TestExtendedCopyChecks(t *testing.T) {
	d := newDevice(t, devConfig{serial: serialA})
	other := newDevice(t, devConfig{serial: serialB, blockSize: 4096, blocks: 1024})
	naa, naaOther := handler.NAADesignator(serialA), handler.NAADesignator(serialB)
	handler.SetCopyPeer(d.dev, func(n [16]byte) (*handler.Device, error) {
		if n == naaOther {
			return other.dev, nil
		}
		return nil, nil
	})
	tgt := xcopyTarget(naa, 512)
	seg := xcopySegment(0, 0, 8, 0, 100)
	ok := xcopyList(0, listIDNone, [][]byte{tgt}, [][]byte{seg})
	mod := func(p []byte, f func(p []byte)) []byte { p = slices.Clone(p); f(p); return p }
	tgtMod := func(f func(t []byte)) []byte { return mod(tgt, f) }
	unknown := handler.NAADesignator("0000-1111-2222")
	for _, tc := range []struct {
		name string
		list []byte
		pll  int // 0: len(list)
		want want
	}{
		{"good", ok, 0, good},
		{"LIST ID USAGE 00b with an identifier", xcopyList(5, 0x00, [][]byte{tgt}, [][]byte{seg}), 0, good},
		{"LIST ID USAGE 10b", xcopyList(5, 0x10, [][]byte{tgt}, [][]byte{seg}), 0, good},
		{"no parameter list", nil, -1, good},
		{"parameter list shorter than the header", ok[:15], 0, checkCond(keyIllegalRequest, ascParamListLength)},
		{"target descriptor cut", ok[:16+31], 0, checkCond(keyIllegalRequest, ascParamListLength)},
		{"segment descriptor cut", ok[:len(ok)-1], 0, checkCond(keyIllegalRequest, ascParamListLength)},
		{"Data-Out shorter than the list", ok[:20], len(ok), checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(10, -1)},
		{"descriptor lists too long", mod(ok, func(p []byte) { binary.BigEndian.PutUint32(p[8:], 1024) }), 0,
			checkCond(keyIllegalRequest, ascParamListLength)},
		{"LIST ID USAGE 01b", xcopyList(0, 0x08, [][]byte{tgt}, [][]byte{seg}), 0, checkCond(keyIllegalRequest, ascInvalidFieldParam).paramField(1, 4)},
		{"LIST ID USAGE 11b with an identifier", xcopyList(1, listIDNone, [][]byte{tgt}, [][]byte{seg}), 0,
			checkCond(keyIllegalRequest, ascInvalidFieldParam).paramField(1, 4)},
		{"inline data", append(mod(ok, func(p []byte) { p[15] = 4 }), 0, 0, 0, 0), 0,
			checkCond(keyIllegalRequest, ascInvalidFieldParam).paramField(12, -1)},
		{"Fibre Channel target descriptor", xcopyList(0, listIDNone, [][]byte{tgtMod(func(t []byte) { t[0] = 0xe0 })}, [][]byte{seg}), 0,
			checkCond(keyIllegalRequest, ascUnsupportedTarget).paramField(16, -1)},
		{"stream to stream segment", xcopyList(0, listIDNone, [][]byte{tgt}, [][]byte{mod(seg, func(s []byte) { s[0] = 0x03 })}), 0,
			checkCond(keyIllegalRequest, ascUnsupportedSegment).paramField(48, -1)},
		{"three target descriptors", xcopyList(0, listIDNone, [][]byte{tgt, tgt, tgt}, [][]byte{seg}), 0,
			checkCond(keyIllegalRequest, ascTooManyTargets).paramField(2, -1)},
		{"two segment descriptors", xcopyList(0, listIDNone, [][]byte{tgt}, [][]byte{seg, seg}), 0,
			checkCond(keyIllegalRequest, ascTooManySegments).paramField(8, -1)},
		{"reserved LU ID TYPE", xcopyList(0, listIDNone, [][]byte{tgtMod(func(t []byte) { t[1] = 0x10 })}, [][]byte{seg}), 0,
			checkCond(keyIllegalRequest, ascInvalidFieldParam).paramField(17, 4)},
		{"ASCII designator", xcopyList(0, listIDNone, [][]byte{tgtMod(func(t []byte) { t[4] = 0x02 })}, [][]byte{seg}), 0,
			checkCond(keyIllegalRequest, ascInvalidFieldParam).paramField(20, 3)},
		{"T10 vendor designator", xcopyList(0, listIDNone, [][]byte{tgtMod(func(t []byte) { t[5] = 0x01 })}, [][]byte{seg}), 0,
			checkCond(keyIllegalRequest, ascInvalidFieldParam).paramField(21, 3)},
		{"NAA of 8 bytes", xcopyList(0, listIDNone, [][]byte{tgtMod(func(t []byte) { t[7] = 8 })}, [][]byte{seg}), 0,
			checkCond(keyIllegalRequest, ascInvalidFieldParam).paramField(23, -1)},
		{"segment descriptor length", xcopyList(0, listIDNone, [][]byte{tgt}, [][]byte{mod(seg, func(s []byte) { s[3] = 0x14 })}), 0,
			checkCond(keyIllegalRequest, ascInvalidFieldParam).paramField(50, -1)},
		{"NUL target", xcopyList(0, listIDNone, [][]byte{tgtMod(func(t []byte) { t[1] = 0x01 })}, [][]byte{seg}), 0,
			checkCond(keyCopyAborted, ascCopyUnreachable)},
		{"destination index past the list", xcopyList(0, listIDNone, [][]byte{tgt}, [][]byte{xcopySegment(0, 1, 8, 0, 100)}), 0,
			checkCond(keyCopyAborted, ascCopyUnreachable)},
		{"unknown device", xcopyList(0, listIDNone, [][]byte{tgt, xcopyTarget(unknown, 512)}, [][]byte{xcopySegment(0, 1, 8, 0, 100)}), 0,
			checkCond(keyCopyAborted, ascCopyUnreachable)},
		{"destination beyond the capacity", xcopyList(0, listIDNone, [][]byte{tgt}, [][]byte{xcopySegment(0, 0, 8, 0, 8190)}), 0,
			checkCond(keyCopyAborted, ascCopyUnreachable)},
		{"source beyond the capacity", xcopyList(0, listIDNone, [][]byte{tgt}, [][]byte{xcopySegment(0, 0, 1, 8192, 0)}), 0,
			checkCond(keyCopyAborted, ascCopyUnreachable)},
		{"devices of different block sizes", xcopyList(0, listIDNone, [][]byte{tgt, xcopyTarget(naaOther, 4096)}, [][]byte{xcopySegment(0, 1, 8, 0, 0)}), 0,
			checkCond(keyCopyAborted, ascCopyTargetType)},
		{"no blocks", xcopyList(0, listIDNone, [][]byte{tgt}, [][]byte{xcopySegment(0, 0, 0, 8192, 8192)}), 0, good},
		{"no segments", xcopyList(0, listIDNone, [][]byte{tgt}, nil), 0, good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pll := tc.pll
			switch pll {
			case 0:
				pll = len(tc.list)
			case -1:
				pll = 0
			}
			tc.want.check(t, tc.name, d.run(t, xcopyCDB(pll), tc.list, 0))
		})
	}
}

// A device this daemon serves that the command's initiators do not all
// reach alike (another tenant's LUN): the copy is refused with ILLEGAL
// REQUEST / COPY TARGET DEVICE NOT REACHABLE, as source and as
// destination, whichever device the command came to, and neither device
// is read or written.
func TestExtendedCopyRefusedAcrossTenants(t *testing.T) {
	a := newDevice(t, devConfig{serial: serialA})
	b := newDevice(t, devConfig{serial: serialB})
	naaA, naaB := handler.NAADesignator(serialA), handler.NAADesignator(serialB)
	refuse := func(naa [16]byte) (*handler.Device, error) {
		if naa == naaA || naa == naaB {
			return nil, handler.ErrCopyTargetNotReachable
		}
		return nil, nil
	}
	handler.SetCopyPeer(a.dev, refuse)
	handler.SetCopyPeer(b.dev, refuse)
	dataA, dataB := pattern(21, 16*a.bs), pattern(22, 16*b.bs)
	a.write(t, 0, dataA)
	b.write(t, 0, dataB)
	for _, tc := range []struct {
		name     string
		on       *device
		src, dst uint16
	}{
		{"pull the other tenant's LUN into mine", a, 1, 0},
		{"push mine onto the other tenant's LUN", a, 0, 1},
		{"from the other side", b, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.be.recorded()
			b.be.recorded()
			list := xcopyList(0, listIDNone, [][]byte{xcopyTarget(naaA, 512), xcopyTarget(naaB, 512)},
				[][]byte{xcopySegment(tc.src, tc.dst, 16, 0, 0)})
			checkCond(keyIllegalRequest, ascCopyUnreachable).check(t, tc.name, tc.on.run(t, xcopyCDB(len(list)), list, 0))
			if ops := append(a.be.recorded(), b.be.recorded()...); len(ops) != 0 {
				t.Errorf("a refused copy reached the backends: %+v", ops)
			}
			if !bytes.Equal(a.read(t, 0, 16), dataA) || !bytes.Equal(b.read(t, 0, 16), dataB) {
				t.Error("a refused copy changed a device")
			}
		})
	}
	// A copy inside the command's own device needs no one's leave.
	list := xcopyList(0, listIDNone, [][]byte{xcopyTarget(naaA, 512)}, [][]byte{xcopySegment(0, 0, 16, 0, 100)})
	a.mustGood(t, xcopyCDB(len(list)), list, 0)
}

func TestExtendedCopyIOError(t *testing.T) {
	d := newDevice(t, devConfig{serial: serialA})
	naa := handler.NAADesignator(serialA)
	list := xcopyList(0, listIDNone, [][]byte{xcopyTarget(naa, 512)}, [][]byte{xcopySegment(0, 0, 8, 0, 100)})
	for _, op := range []handler.Op{handler.OpRead, handler.OpWrite} {
		d.be.fail = func(io *handler.IO) error {
			if io.Op == op {
				return syscall.EIO
			}
			return nil
		}
		checkCond(keyCopyAborted, ascCopyUnreachable).check(t, "copy with a failing backend", d.run(t, xcopyCDB(len(list)), list, 0))
	}
}

func TestReceiveCopyResultsOperatingParameters(t *testing.T) {
	d := newDevice(t, devConfig{blockSize: 4096, blocks: 1024})
	cdb := cdb16(0x84, 0x03, 0, 1024)
	r := d.run(t, cdb, nil, 1024)
	good.check(t, "RECEIVE COPY RESULTS", r)
	want := make([]byte, 46)
	want[3] = 42    // AVAILABLE DATA
	want[4] = 0x01  // SNLID
	want[9] = 2     // MAXIMUM TARGET DESCRIPTOR COUNT
	want[11] = 1    // MAXIMUM SEGMENT DESCRIPTOR COUNT
	want[14] = 0x04 // MAXIMUM DESCRIPTOR LIST LENGTH 1024
	binary.BigEndian.PutUint32(want[16:], 0xffff*4096)
	want[35] = 1 // TOTAL CONCURRENT COPIES
	want[36] = 1 // MAXIMUM CONCURRENT COPIES
	want[37], want[38], want[39] = 12, 12, 12
	want[43] = 2
	want[44], want[45] = 0x02, 0xe4
	if !bytes.Equal(r.DataIn, want) {
		t.Fatalf("operating parameters\n% x\nwant\n% x", r.DataIn, want)
	}
	binary.BigEndian.PutUint32(cdb[10:], 10)
	if r := d.run(t, cdb, nil, 10); !bytes.Equal(r.DataIn, want[:10]) {
		t.Fatalf("allocation length 10 gave % x", r.DataIn)
	}
	// RECEIVE DATA is not supported; COPY STATUS of a device no one
	// reaches alone (this one is not the Manager's) holds nothing.
	checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 4).check(t, "RECEIVE DATA", d.run(t, cdb16(0x84, 0x01, 0, 64), nil, 64))
	checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(2, -1).check(t, "COPY STATUS", d.run(t, cdb16(0x84, 0x00, 0, 64), nil, 64))
}
