package handler_test

import (
	"bytes"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gotcmu/gotcmu/handler"
)

// cawCDB is COMPARE AND WRITE of n blocks at lba with byte 1 flags.
func cawCDB(flags byte, lba uint64, n uint8) []byte {
	c := cdb16(0x89, flags, lba, 0)
	c[13] = n
	return c
}

// emulated is the mem backend's limits without a native COMPARE AND
// WRITE.
func emulated(f func(*handler.Limits)) *handler.Limits {
	l := handler.Limits{Discard: true, DiscardZeroes: true, WriteSame: true, CompareAndWrite: true}
	f(&l)
	return &l
}

func TestCompareAndWrite(t *testing.T) {
	for _, backend := range []struct {
		name string
		lim  *handler.Limits
	}{
		{"native", nil},
		{"emulated", emulated(func(l *handler.Limits) { l.CompareAndWrite = false })},
	} {
		t.Run(backend.name, func(t *testing.T) {
			d := newDevice(t, devConfig{limits: backend.lim})
			old, next := pattern(1, d.bs), pattern(2, d.bs)
			d.write(t, 10, old)
			d.write(t, 8191, old)
			for _, tc := range []struct {
				name    string
				cdb     []byte
				out     []byte
				want    want
				written []byte // what block 10 holds afterwards
			}{
				{"equal: written", cawCDB(0, 10, 1), append(slices.Clone(old), next...), good, next},
				{"FUA", cawCDB(0x08, 10, 1), append(slices.Clone(next), old...), good, old},
				{"first byte differs", cawCDB(0, 10, 1), append(pattern(3, d.bs), next...),
					checkCond(keyMiscompare, ascMiscompare).withInfo(0), old},
				{"byte 27 from the end differs", cawCDB(0, 10, 1), append(flipped(old, d.bs-27), next...),
					checkCond(keyMiscompare, ascMiscompare).withInfo(uint32(d.bs - 27)), old},
				{"zero blocks", cawCDB(0, 10, 0), nil, good, old},
				{"two blocks: MAXIMUM COMPARE AND WRITE LENGTH is 1", cawCDB(0, 10, 2), make([]byte, 4*d.bs),
					checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(13, -1), old},
				{"past the end", cawCDB(0, 8192, 1), make([]byte, 2*d.bs), checkCond(keyIllegalRequest, ascLBAOutOfRange), old},
				{"LBA wraps", cawCDB(0, 1<<64-1, 1), make([]byte, 2*d.bs), checkCond(keyIllegalRequest, ascLBAOutOfRange), old},
				{"WRPROTECT", cawCDB(0x20, 10, 1), make([]byte, 2*d.bs), checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 7), old},
				{"Data-Out of one block", cawCDB(0, 10, 1), old, checkCond(keyIllegalRequest, ascInvalidFieldIU), old},
				{"Data-Out of four blocks", cawCDB(0, 10, 1), slices.Repeat(old, 4), checkCond(keyIllegalRequest, ascInvalidFieldIU), old},
				{"last block", cawCDB(0, 8191, 1), append(slices.Clone(old), next...), good, old},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tc.want.check(t, tc.name, d.run(t, tc.cdb, tc.out, 0))
					if got := d.read(t, 10, 1); !bytes.Equal(got, tc.written) {
						t.Fatalf("block 10 does not hold what it should")
					}
				})
			}
			if got := d.read(t, 8191, 1); !bytes.Equal(got, next) {
				t.Fatalf("COMPARE AND WRITE of the last block did not write it")
			}
		})
	}
}

func flipped(b []byte, at int) []byte {
	b = slices.Clone(b)
	b[at] ^= 0xff
	return b
}

// The emulation reads, compares and writes: the backend sees nothing else,
// and the write carries FUA when asked.
func TestCompareAndWriteEmulatedOps(t *testing.T) {
	d := newDevice(t, devConfig{writeCache: true, limits: emulated(func(l *handler.Limits) { l.CompareAndWrite = false })})
	d.write(t, 3, make([]byte, d.bs))
	d.be.recorded()
	d.mustGood(t, cawCDB(0x08, 3, 1), make([]byte, 2*d.bs), 0)
	want := []ioRecord{{handler.OpRead, 3 * 512, 512, false}, {handler.OpWrite, 3 * 512, 512, true}}
	if ops := d.be.recorded(); !slices.Equal(ops, want) {
		t.Fatalf("backend saw %+v, want %+v", ops, want)
	}
	d.mustGood(t, cawCDB(0, 3, 1), make([]byte, 2*d.bs), 0)
	if ops := d.be.recorded(); len(ops) != 2 || ops[1].fua {
		t.Fatalf("backend saw %+v, want a write without FUA", ops)
	}
}

func TestCompareAndWriteErrors(t *testing.T) {
	d := newDevice(t, devConfig{limits: emulated(func(l *handler.Limits) { l.CompareAndWrite = false })})
	d.be.fail = func(io *handler.IO) error {
		if io.Op == handler.OpRead {
			return syscall.EIO
		}
		return nil
	}
	checkCond(keyMediumError, ascUnrecoveredRead).check(t, "read fails", d.run(t, cawCDB(0, 0, 1), make([]byte, 2*d.bs), 0))
	d.be.fail = func(io *handler.IO) error {
		if io.Op == handler.OpWrite {
			return syscall.EIO
		}
		return nil
	}
	checkCond(keyMediumError, ascWriteError).check(t, "write fails", d.run(t, cawCDB(0, 0, 1), make([]byte, 2*d.bs), 0))
}

// An emulated COMPARE AND WRITE is atomic with respect to other writes of
// the same blocks: a write that arrives while the CAW has read but not
// yet written waits for it, a write to other blocks does not.
func TestCompareAndWriteAtomicWithWrites(t *testing.T) {
	d := newDevice(t, devConfig{limits: emulated(func(l *handler.Limits) { l.CompareAndWrite = false })})
	a, b := pattern(1, d.bs), pattern(2, d.bs)
	d.write(t, 20, a)
	d.be.recorded()
	// Hold the CAW's read of block 20.
	d.be.hold = func(io *handler.IO) bool { return io.Op == handler.OpRead && io.Off == 20*512 }
	caw := d.start(t, cawCDB(0, 20, 1), append(slices.Clone(a), b...), 0)
	eventually(t, "the CAW's read", func() bool { return d.be.heldCount() == 1 })

	// A write to another block goes through at once.
	good.check(t, "write elsewhere", d.run(t, cdb10(0x2a, 0, 21, 1), a, 0))
	// A write of the same block is queued behind the CAW.
	c := pattern(3, d.bs)
	write := d.start(t, cdb10(0x2a, 0, 20, 1), c, 0)
	time.Sleep(20 * time.Millisecond)
	for _, op := range d.be.recorded() {
		if op.op == handler.OpWrite && op.off == 20*512 {
			t.Fatal("a write of the CAW's block reached the backend while the CAW ran")
		}
	}
	d.be.release()
	good.check(t, "COMPARE AND WRITE", caw())
	good.check(t, "queued write", write())
	if got := d.read(t, 20, 1); !bytes.Equal(got, c) {
		t.Fatal("block 20 does not hold the write queued after the CAW")
	}
}

// And a COMPARE AND WRITE waits for writes of its blocks that were in
// flight when it arrived, so it compares with what they wrote.
func TestCompareAndWriteWaitsForWrites(t *testing.T) {
	d := newDevice(t, devConfig{limits: emulated(func(l *handler.Limits) { l.CompareAndWrite = false })})
	a, b := pattern(1, d.bs), pattern(2, d.bs)
	d.write(t, 30, pattern(9, d.bs))
	d.be.hold = func(io *handler.IO) bool { return io.Op == handler.OpWrite && io.Off == 30*512 }
	write := d.start(t, cdb10(0x2a, 0, 30, 1), a, 0)
	eventually(t, "the write", func() bool { return d.be.heldCount() == 1 })
	d.be.recorded()
	caw := d.start(t, cawCDB(0, 30, 1), append(slices.Clone(a), b...), 0)
	time.Sleep(20 * time.Millisecond)
	if ops := d.be.recorded(); len(ops) != 0 {
		t.Fatalf("the CAW reached the backend before the write in flight ended: %+v", ops)
	}
	d.be.release()
	good.check(t, "write", write())
	good.check(t, "COMPARE AND WRITE compares with the write's data", caw())
	if got := d.read(t, 30, 1); !bytes.Equal(got, b) {
		t.Fatal("block 30 does not hold the CAW's data")
	}
}

// Many COMPARE AND WRITEs racing for one block, each expecting the value
// the previous one wrote: exactly one succeeds per value, so the block
// counts up without losing an increment.
func TestCompareAndWriteRace(t *testing.T) {
	d := newDevice(t, devConfig{limits: emulated(func(l *handler.Limits) { l.CompareAndWrite = false })})
	block := func(v byte) []byte { return bytes.Repeat([]byte{v}, d.bs) }
	d.write(t, 5, block(0))
	const rounds = 20
	for v := range byte(rounds) {
		var waits []func() reply
		for range 8 {
			waits = append(waits, d.start(t, cawCDB(0, 5, 1), append(block(v), block(v+1)...), 0))
			// Plain writes of other blocks run alongside.
			waits = append(waits, d.start(t, cdb10(0x2a, 0, 6, 1), block(v), 0))
		}
		wins := 0
		for i, w := range waits {
			r := w()
			if i%2 == 1 {
				good.check(t, "write", r)
				continue
			}
			if r.Status == statusGood {
				wins++
			} else {
				checkCond(keyMiscompare, ascMiscompare).check(t, "losing CAW", r)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d COMPARE AND WRITEs succeeded, want 1", v, wins)
		}
	}
	if got := d.read(t, 5, 1); !bytes.Equal(got, block(rounds)) {
		t.Fatalf("block holds %d, want %d", got[0], rounds)
	}
}
