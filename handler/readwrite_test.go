package handler_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/mem"
)

func TestReadWriteRoundTrip(t *testing.T) {
	d := newDevice(t, devConfig{})
	for _, tc := range []struct {
		name  string
		write []byte
		read  []byte
		lba   uint64
		n     int
	}{
		{"6-byte", cdb6(0x0a, 0x1ffe, 2), cdb6(0x08, 0x1ffe, 2), 0x1ffe, 2},
		{"10-byte", cdb10(0x2a, 0, 100, 3), cdb10(0x28, 0, 100, 3), 100, 3},
		{"12-byte", cdb12(0xaa, 0, 200, 4), cdb12(0xa8, 0, 200, 4), 200, 4},
		{"16-byte", cdb16(0x8a, 0, 300, 5), cdb16(0x88, 0, 300, 5), 300, 5},
		{"16-byte FUA and DPO", cdb16(0x8a, 0x18, 400, 1), cdb16(0x88, 0x18, 400, 1), 400, 1},
		{"last block", cdb16(0x8a, 0, 8191, 1), cdb16(0x88, 0, 8191, 1), 8191, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := pattern(byte(tc.lba), tc.n*d.bs)
			d.mustGood(t, tc.write, data, 0)
			if got := d.mustGood(t, tc.read, nil, tc.n*d.bs); !bytes.Equal(got, data) {
				t.Fatalf("read back differs from what was written")
			}
			if got := d.read(t, tc.lba, tc.n); !bytes.Equal(got, data) {
				t.Fatalf("READ(16) of the same blocks differs")
			}
		})
	}
}

func TestReadWrite6ZeroLengthMeans256(t *testing.T) {
	d := newDevice(t, devConfig{})
	data := pattern(9, 256*d.bs)
	d.mustGood(t, cdb6(0x0a, 10, 0), data, 0)
	if got := d.read(t, 10, 256); !bytes.Equal(got, data) {
		t.Fatal("WRITE(6) with TRANSFER LENGTH 0 did not write 256 blocks")
	}
	if got := d.mustGood(t, cdb6(0x08, 10, 0), nil, 256*d.bs); !bytes.Equal(got, data) {
		t.Fatal("READ(6) with TRANSFER LENGTH 0 did not read 256 blocks")
	}
}

func TestReadWriteChecks(t *testing.T) {
	d := newDevice(t, devConfig{})
	blk := make([]byte, 512)
	for _, tc := range []struct {
		name  string
		cdb   []byte
		out   []byte
		inLen int
		want  want
	}{
		{"READ(10) past the end", cdb10(0x28, 0, 8191, 2), nil, 1024, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"READ(10) at the capacity", cdb10(0x28, 0, 8192, 1), nil, 512, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"READ(16) LBA wraps", cdb16(0x88, 0, 1<<64-1, 2), nil, 1024, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"READ(16) huge length", cdb16(0x88, 0, 1, 0xffffffff), nil, 512, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"READ(6) past the end", cdb6(0x08, 8191, 2), nil, 1024, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"READ(10) zero blocks at the capacity", cdb10(0x28, 0, 8192, 0), nil, 0, good},
		{"READ(10) zero blocks past the capacity", cdb10(0x28, 0, 8193, 0), nil, 0, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"READ(10) RDPROTECT", cdb10(0x28, 0x20, 0, 1), nil, 512, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 7)},
		{"READ(12) RDPROTECT", cdb12(0xa8, 0xe0, 0, 1), nil, 512, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 7)},
		{"READ(16) RDPROTECT before range", cdb16(0x88, 0x40, 1<<40, 1), nil, 512, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 7)},
		{"WRITE(10) WRPROTECT", cdb10(0x2a, 0x20, 0, 1), blk, 0, checkCond(keyIllegalRequest, ascInvalidFieldCDB).cdbField(1, 7)},
		{"WRITE(16) past the end", cdb16(0x8a, 0, 8192, 1), blk, 0, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"WRITE(12) past the end before length", cdb12(0xaa, 0, 9000, 1), nil, 0, checkCond(keyIllegalRequest, ascLBAOutOfRange)},
		{"WRITE(10) zero blocks", cdb10(0x2a, 0, 5, 0), nil, 0, good},
		{"WRITE(10) Data-Out shorter than the CDB", cdb10(0x2a, 0, 0, 2), blk, 0, checkCond(keyIllegalRequest, ascInvalidFieldIU)},
		{"WRITE(10) Data-Out longer than the CDB", cdb10(0x2a, 0, 0, 1), make([]byte, 1024), 0, checkCond(keyIllegalRequest, ascInvalidFieldIU)},
		{"WRITE(10) zero blocks with data", cdb10(0x2a, 0, 0, 0), blk, 0, checkCond(keyIllegalRequest, ascInvalidFieldIU)},
		{"WRITE(6) partial block", cdb6(0x0a, 0, 1), blk[:200], 0, checkCond(keyIllegalRequest, ascInvalidFieldIU)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.check(t, tc.name, d.run(t, tc.cdb, tc.out, tc.inLen))
		})
	}
}

func TestWriteRefusedLeavesDataAlone(t *testing.T) {
	d := newDevice(t, devConfig{})
	old := pattern(1, 2*d.bs)
	d.write(t, 0, old)
	d.be.recorded()
	for _, cdb := range [][]byte{
		cdb10(0x2a, 0, 0, 2),    // one block of Data-Out for two
		cdb10(0x2a, 0x20, 0, 1), // WRPROTECT
	} {
		if r := d.run(t, cdb, pattern(2, d.bs), 0); r.Status == statusGood {
			t.Fatalf("CDB % x: GOOD", cdb)
		}
	}
	if ops := d.be.recorded(); len(ops) != 0 {
		t.Fatalf("refused writes reached the backend: %v", ops)
	}
	if got := d.read(t, 0, 2); !bytes.Equal(got, old) {
		t.Fatal("a refused write changed the medium")
	}
}

// The kernel hands TCMU the initiator's expected transfer length: a read
// buffer larger than the transfer gets the blocks and READ_LEN, a smaller
// one what fits.
func TestReadResiduals(t *testing.T) {
	d := newDevice(t, devConfig{})
	data := pattern(3, 2*d.bs)
	d.write(t, 40, data)
	for _, tc := range []struct {
		name    string
		cdb     []byte
		inLen   int
		data    []byte
		readLen uint32 // 0: no READ_LEN
	}{
		{"buffer larger than the transfer", cdb10(0x28, 0, 40, 1), 10000, data[:512], 512},
		{"buffer of one block for two", cdb10(0x28, 0, 40, 2), 512, data[:512], 0},
		{"buffer of 200 bytes for one block", cdb10(0x28, 0, 40, 1), 200, data[:200], 0},
		{"exact buffer", cdb10(0x28, 0, 40, 2), 1024, data, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.run(t, tc.cdb, nil, tc.inLen)
			good.check(t, tc.name, r)
			if !bytes.Equal(r.DataIn, tc.data) {
				t.Errorf("Data-In %d bytes, want %d bytes of the medium", len(r.DataIn), len(tc.data))
			}
			if tc.readLen != 0 && r.ReadLen != tc.readLen {
				t.Errorf("READ_LEN %d, want %d", r.ReadLen, tc.readLen)
			}
		})
	}
}

// With no blocks to transfer a buffer the initiator supplied is cleared:
// the kernel ignores a READ_LEN of 0 and would return stale data-area
// contents (uiotest fills Data-In buffers with PoisonByte).
func TestReadZeroBlocksClearsBuffer(t *testing.T) {
	d := newDevice(t, devConfig{})
	r := d.run(t, cdb10(0x28, 0, 0, 0), nil, 512)
	good.check(t, "READ(10) of 0 blocks", r)
	if !bytes.Equal(r.DataIn, make([]byte, 512)) {
		t.Fatalf("Data-In holds % x..., want zeros", r.DataIn[:8])
	}
}

// FUA, and any write with the write cache off, reach the backend as
// IO.FUA; reads never carry it.
func TestWriteFUA(t *testing.T) {
	for _, tc := range []struct {
		name       string
		writeCache bool
		cdb        []byte
		fua        bool
	}{
		{"cache on, no FUA", true, cdb10(0x2a, 0, 0, 1), false},
		{"cache on, FUA", true, cdb10(0x2a, 0x08, 0, 1), true},
		{"cache on, DPO only", true, cdb16(0x8a, 0x10, 0, 1), false},
		{"cache on, WRITE(6)", true, cdb6(0x0a, 0, 1), false},
		{"cache off, no FUA", false, cdb12(0xaa, 0, 0, 1), true},
		{"cache off, WRITE(6)", false, cdb6(0x0a, 0, 1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, devConfig{writeCache: tc.writeCache})
			d.mustGood(t, tc.cdb, make([]byte, 512), 0)
			d.mustGood(t, cdb10(0x28, 0x08, 0, 1), nil, 512)
			ops := d.be.recorded()
			want := []ioRecord{{handler.OpWrite, 0, 512, tc.fua}, {handler.OpRead, 0, 512, false}}
			if len(ops) != 2 || ops[0] != want[0] || ops[1] != want[1] {
				t.Fatalf("backend saw %+v, want %+v", ops, want)
			}
		})
	}
}

// A backend whose writes are stable on completion (rbd without cache) gets
// no FUA, whatever the CDB or the write cache say: it would cost a flush
// per write for nothing. That holds for every command that writes.
func TestWriteFUANotAskedOfStableBackends(t *testing.T) {
	m, err := mem.New(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	lim := m.Limits()
	if !lim.StableWrites {
		t.Fatal("mem backend does not report StableWrites")
	}
	emu := lim
	emu.WriteSame, emu.CompareAndWrite = false, false
	naa := handler.NAADesignator(serialA)
	xcopy := xcopyList(0, listIDNone, [][]byte{xcopyTarget(naa, 512)}, [][]byte{xcopySegment(0, 0, 2, 0, 10)})
	blk := make([]byte, 512)
	cawCmd := cdb16(0x89, 0x08, 0, 0)
	cawCmd[13] = 1
	for _, tc := range []struct {
		name string
		lim  handler.Limits
		cdb  []byte
		out  []byte
	}{
		{"WRITE(10) FUA", lim, cdb10(0x2a, 0x08, 0, 1), blk},
		{"WRITE(6)", lim, cdb6(0x0a, 0, 1), blk},
		{"WRITE AND VERIFY", lim, cdb10(0x2e, 0x02, 0, 1), blk},
		{"WRITE SAME native", lim, cdb10(0x41, 0, 0, 4), blk},
		{"WRITE SAME emulated", emu, cdb10(0x41, 0, 0, 4), blk},
		{"COMPARE AND WRITE emulated", emu, cawCmd, make([]byte, 1024)},
		{"EXTENDED COPY", lim, cdb16(0x83, 0, 0, uint32(len(xcopy))), xcopy},
	} {
		for _, writeCache := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s write cache %v", tc.name, writeCache), func(t *testing.T) {
				d := newDevice(t, devConfig{writeCache: writeCache, limits: &tc.lim, serial: serialA})
				d.mustGood(t, tc.cdb, tc.out, 0)
				for _, op := range d.be.recorded() {
					if op.fua {
						t.Fatalf("backend saw %+v", op)
					}
				}
			})
		}
	}
}
