package handler_test

import (
	"bytes"
	"slices"
	"syscall"
	"testing"

	"github.com/gotcmu/gotcmu/handler"
)

func TestVerify(t *testing.T) {
	d := newDevice(t, devConfig{})
	const lba, n = 100, 3000 // more than one scratch buffer (1 MiB)
	data := pattern(5, n*d.bs)
	d.write(t, lba, data)
	one := pattern(6, d.bs)
	for i := range 8 {
		d.write(t, 7000+uint64(i), one)
	}
	flip := func(b []byte, at int) []byte {
		b = slices.Clone(b)
		b[at] ^= 0x5a
		return b
	}
	for _, tc := range []struct {
		name string
		cdb  []byte
		out  []byte
		want want
	}{
		{"BYTCHK 0", cdb10(0x2f, 0, lba, n), nil, good},
		{"BYTCHK 0 ignores Data-Out", cdb16(0x8f, 0, lba, n), pattern(9, d.bs), good},
		{"BYTCHK 1 equal", cdb10(0x2f, 0x02, lba, n), data, good},
		{"BYTCHK 1 VERIFY(12)", cdb12(0xaf, 0x02, lba, n), data, good},
		{"BYTCHK 1 VERIFY(16) with DPO", cdb16(0x8f, 0x12, lba, n), data, good},
		{"BYTCHK 1 first byte differs", cdb10(0x2f, 0x02, lba, n), flip(data, 0),
			checkCond(keyMiscompare, ascMiscompare).withInfo(0)},
		{"BYTCHK 1 differs in the second chunk", cdb10(0x2f, 0x02, lba, n), flip(data, 2500*512+27),
			checkCond(keyMiscompare, ascMiscompare).withInfo(2500*512 + 27)},
		{"BYTCHK 1 last byte differs", cdb10(0x2f, 0x02, lba, n), flip(data, n*512-1),
			checkCond(keyMiscompare, ascMiscompare).withInfo(n*512 - 1)},
		{"BYTCHK 1 Data-Out too short", cdb10(0x2f, 0x02, lba, n), data[:512], checkCond(keyIllegalRequest, ascInvalidFieldCDB)},
		{"BYTCHK 3 equal", cdb10(0x2f, 0x06, 7000, 8), one, good},
		{"BYTCHK 3 one block differs", cdb10(0x2f, 0x06, 6999, 9), one,
			checkCond(keyMiscompare, ascMiscompare).withInfo(0)},
		{"BYTCHK 3 differs in block 5", cdb16(0x8f, 0x06, 7000, 8), flip(one, 3),
			checkCond(keyMiscompare, ascMiscompare).withInfo(3)},
		{"BYTCHK 3 Data-Out too short", cdb10(0x2f, 0x06, 7000, 8), one[:100], checkCond(keyIllegalRequest, ascInvalidFieldCDB)},
		{"BYTCHK 2 is reserved", cdb10(0x2f, 0x04, lba, 1), nil, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 2)},
		{"VRPROTECT", cdb10(0x2f, 0x20, lba, 1), nil, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 7)},
		{"past the end", cdb10(0x2f, 0, 8191, 2), nil, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"LBA wraps", cdb16(0x8f, 0x02, 1<<64-1, 2), nil, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"zero blocks", cdb10(0x2f, 0x02, 8192, 0), nil, good},
		{"zero blocks past the end", cdb12(0xaf, 0, 8193, 0), nil, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.check(t, tc.name, d.run(t, tc.cdb, tc.out, 0))
		})
	}
}

func TestVerifyDoesNotWrite(t *testing.T) {
	d := newDevice(t, devConfig{})
	d.be.recorded()
	d.mustGood(t, cdb10(0x2f, 0x02, 0, 4), make([]byte, 4*d.bs), 0)
	for _, op := range opsOf(d.be.recorded()) {
		if op != handler.OpRead {
			t.Fatalf("VERIFY sent operation %d to the backend", op)
		}
	}
}

func TestVerifyReadError(t *testing.T) {
	d := newDevice(t, devConfig{})
	d.be.fail = func(io *handler.IO) error {
		if io.Op == handler.OpRead {
			return syscall.EIO
		}
		return nil
	}
	checkCond(keyMediumError, ascUnrecoveredRead).check(t, "VERIFY", d.run(t, cdb10(0x2f, 0, 0, 1), nil, 0))
}

func TestWriteAndVerify(t *testing.T) {
	for _, tc := range []struct {
		name string
		cdb  func(lba uint64, n int) []byte
	}{
		{"10 BYTCHK 0", func(lba uint64, n int) []byte { return cdb10(0x2e, 0, uint32(lba), uint16(n)) }},
		{"10 BYTCHK 1", func(lba uint64, n int) []byte { return cdb10(0x2e, 0x02, uint32(lba), uint16(n)) }},
		{"12 DPO", func(lba uint64, n int) []byte { return cdb12(0xae, 0x12, uint32(lba), uint32(n)) }},
		{"16", func(lba uint64, n int) []byte { return cdb16(0x8e, 0x02, lba, uint32(n)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, devConfig{writeCache: true})
			data := pattern(7, 2100*d.bs)
			d.mustGood(t, tc.cdb(10, 2100), data, 0)
			if got := d.read(t, 10, 2100); !bytes.Equal(got, data) {
				t.Fatal("WRITE AND VERIFY did not write the data")
			}
			ops := d.be.recorded()
			if len(ops) < 2 || ops[0] != (ioRecord{handler.OpWrite, 10 * 512, 2100 * 512, true}) {
				t.Fatalf("backend saw %+v first, want a FUA write of the whole buffer", ops[0])
			}
			var read int64
			for _, op := range ops[1 : len(ops)-1] {
				if op.op != handler.OpRead {
					t.Fatalf("operation %d after the write, want reads", op.op)
				}
				read += op.len
			}
			if read != 2100*512 {
				t.Fatalf("verify read %d bytes, want %d", read, 2100*512)
			}
		})
	}
}

func TestWriteAndVerifyChecks(t *testing.T) {
	d := newDevice(t, devConfig{})
	blk := make([]byte, 512)
	for _, tc := range []struct {
		name string
		cdb  []byte
		out  []byte
		want want
	}{
		{"WRPROTECT", cdb10(0x2e, 0x40, 0, 1), blk, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 7)},
		{"BYTCHK 2", cdb10(0x2e, 0x04, 0, 1), blk, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 2)},
		{"past the end", cdb16(0x8e, 0, 8192, 1), blk, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"Data-Out too long", cdb10(0x2e, 0, 0, 1), make([]byte, 1024), checkCond(keyIllegalRequest, ascInvalidFieldIU)},
		{"zero blocks", cdb12(0xae, 0, 8192, 0), nil, good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.check(t, tc.name, d.run(t, tc.cdb, tc.out, 0))
		})
	}
}

// A medium that does not hold what was written is a MISCOMPARE with the
// offset of the first wrong byte.
func TestWriteAndVerifyMiscompare(t *testing.T) {
	d := newDevice(t, devConfig{})
	d.be.mutate = func(io *handler.IO) {
		if io.Op != handler.OpWrite {
			return
		}
		b := make([]byte, io.Len)
		n := 0
		for _, v := range io.Iov {
			n += copy(b[n:], v)
		}
		b[1234] ^= 1
		io.Iov = [][]byte{b}
	}
	r := d.run(t, cdb10(0x2e, 0x02, 0, 4), pattern(1, 4*d.bs), 0)
	checkCond(keyMiscompare, ascMiscompare).withInfo(1234).check(t, "WRITE AND VERIFY", r)
}

func TestPrefetch(t *testing.T) {
	d := newDevice(t, devConfig{})
	for _, tc := range []struct {
		name string
		cdb  []byte
		want want
	}{
		{"PRE-FETCH(10)", cdb10(0x34, 0, 0, 10), good},
		{"PRE-FETCH(10) IMMED", cdb10(0x34, 0x02, 8000, 192), good},
		{"PRE-FETCH(16)", cdb16(0x90, 0, 8191, 1), good},
		{"to the end", cdb10(0x34, 0, 100, 0), good},
		{"nothing at the capacity", cdb16(0x90, 0, 8192, 0), good},
		{"past the end", cdb10(0x34, 0, 8191, 2), checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"LBA past the capacity", cdb16(0x90, 0, 8193, 0), checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"LBA wraps", cdb16(0x90, 0, 1<<64-1, 2), checkCond(keyIllegalRequest, ascLBAOutOfRange)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.check(t, tc.name, d.run(t, tc.cdb, nil, 0))
		})
	}
	if ops := d.be.recorded(); len(ops) != 0 {
		t.Fatalf("PRE-FETCH reached the backend: %+v", ops)
	}
}

func TestSynchronizeCache(t *testing.T) {
	d := newDevice(t, devConfig{})
	for _, tc := range []struct {
		name  string
		cdb   []byte
		want  want
		flush bool
	}{
		{"SYNCHRONIZE CACHE(10) everything", cdb10(0x35, 0, 0, 0), good, true},
		{"SYNCHRONIZE CACHE(10) range", cdb10(0x35, 0, 10, 20), good, true},
		{"SYNCHRONIZE CACHE(16)", cdb16(0x91, 0, 8191, 1), good, true},
		{"IMMED", cdb10(0x35, 0x02, 0, 0), good, true},
		{"IMMED (16)", cdb16(0x91, 0x02, 0, 8192), good, true},
		{"past the end", cdb10(0x35, 0, 8191, 2), checkCond(keyIllegalRequest, ascLBAOutOfRange), false},
		{"LBA past the capacity", cdb16(0x91, 0, 8193, 0), checkCond(keyIllegalRequest, ascLBAOutOfRange), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.be.recorded()
			tc.want.check(t, tc.name, d.run(t, tc.cdb, nil, 0))
			eventually(t, "no IO in flight", func() bool { return d.dev.InFlight() == 0 })
			ops := opsOf(d.be.recorded())
			if tc.flush != slices.Equal(ops, []handler.Op{handler.OpFlush}) {
				t.Fatalf("backend saw %v, want a flush: %v", ops, tc.flush)
			}
		})
	}
}

func TestSynchronizeCacheError(t *testing.T) {
	d := newDevice(t, devConfig{})
	d.be.fail = func(io *handler.IO) error { return syscall.EIO }
	checkCond(keyMediumError, ascWriteError).check(t, "flush fails", d.run(t, cdb10(0x35, 0, 0, 0), nil, 0))
	// With IMMED the status is already GOOD when the flush fails.
	good.check(t, "flush fails after IMMED", d.run(t, cdb10(0x35, 0x02, 0, 0), nil, 0))
}

// With IMMED the status comes back before the flush ends.
func TestSynchronizeCacheImmedReturnsFirst(t *testing.T) {
	d := newDevice(t, devConfig{})
	d.be.hold = func(io *handler.IO) bool { return io.Op == handler.OpFlush }
	good.check(t, "IMMED", d.run(t, cdb10(0x35, 0x02, 0, 0), nil, 0))
	if d.be.heldCount() != 1 {
		t.Fatalf("%d flushes held, want 1", d.be.heldCount())
	}
	if d.dev.InFlight() != 1 {
		t.Fatalf("%d operations in flight, want the flush", d.dev.InFlight())
	}
	d.be.release()
	eventually(t, "flush done", func() bool { return d.dev.InFlight() == 0 })
	// The command was recycled: the device still serves commands.
	good.check(t, "TEST UNIT READY", d.run(t, make([]byte, 6), nil, 0))
}
