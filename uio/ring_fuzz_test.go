package uio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"unsafe"
)

// rawRegion is a mapped region with no kernel behind it: tests write the
// ring's bytes themselves.
type rawRegion struct {
	mem   []byte
	ring  *Ring
	bells int
}

func newRawRegion(tb testing.TB, ringSize, dataSize, tail uint32) *rawRegion {
	tb.Helper()
	words := make([]uint64, (MailboxSize+int(ringSize)+int(dataSize)+7)/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), MailboxSize+int(ringSize)+int(dataSize))
	putMailbox(mem, ringSize)
	binary.LittleEndian.PutUint32(mem[mbCmdHeadOff:], tail)
	binary.LittleEndian.PutUint32(mem[mbCmdTailOff:], tail)
	rr := &rawRegion{mem: mem}
	r, err := NewRing(mem, func() error { rr.bells++; return nil })
	if err != nil {
		tb.Fatalf("NewRing: %v", err)
	}
	rr.ring = r
	return rr
}

// put writes b into the command ring from pos on, wrapping at its end.
func (rr *rawRegion) put(pos uint32, b []byte) {
	cmdr := rr.mem[MailboxSize : MailboxSize+rr.ring.Size()]
	for i, v := range b[:min(len(b), len(cmdr))] {
		cmdr[(int(pos)+i)%len(cmdr)] = v
	}
}

func (rr *rawRegion) setHead(h uint32) { atomic.StoreUint32(rr.ring.u32(mbCmdHeadOff), h) }

func (rr *rawRegion) offset(b []byte) int {
	return int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(&rr.mem[0])))
}

// TestEntryCrossingTheEndIsBroken: an entry whose length runs past the
// end of the ring. With no data area behind the ring, slicing it would
// run off the map.
func TestEntryCrossingTheEndIsBroken(t *testing.T) {
	rr := newRawRegion(t, 1024, 0, 1024-120)
	hdr := make([]byte, 8)
	binary.LittleEndian.PutUint32(hdr, 128|OpCmd)
	rr.put(1024-120, hdr)
	rr.setHead(8)
	if err := rr.ring.Refresh(); err != nil {
		t.Fatal(err)
	}
	if _, err := rr.ring.Next(NewCommand()); !errors.Is(err, ErrBrokenRing) {
		t.Fatalf("Next: %v, want ErrBrokenRing", err)
	}
}

func TestShortCmdEntry(t *testing.T) {
	rr := newRawRegion(t, 1024, 4096, 0)
	e := make([]byte, 16)
	binary.LittleEndian.PutUint32(e, 16|OpCmd)
	binary.LittleEndian.PutUint16(e[hdrCmdIDOff:], 5)
	rr.put(0, e)
	rr.setHead(16)
	if err := rr.ring.Refresh(); err != nil {
		t.Fatal(err)
	}
	c := NewCommand()
	if ok, err := rr.ring.Next(c); !ok || err != nil || c.ID != 5 || !errors.Is(c.Err, ErrShortEntry) {
		t.Fatalf("Next = %v, %v; ID %d Err %v", ok, err, c.ID, c.Err)
	}
	c.Status, c.Sense = 0x02, []byte{0x70, 0, 0x04}
	rr.ring.Complete(c)
	if rr.mem[MailboxSize+rspStatusOff] != 0x02 || rr.mem[MailboxSize+16] != 0 {
		t.Errorf("short slot answered as %x", rr.mem[MailboxSize:MailboxSize+24])
	}
	if tail := binary.LittleEndian.Uint32(rr.mem[mbCmdTailOff:]); tail != 16 {
		t.Errorf("cmd_tail %d, want 16", tail)
	}
}

const (
	fuzzRingSize = 1024
	fuzzDataSize = 4096
)

// FuzzRingEntry writes arbitrary bytes into the ring from an arbitrary
// position (the ring's starting cmd_tail) and sets an arbitrary cmd_head,
// then fetches and completes whatever the ring hands out. Nothing may
// panic or hang; every buffer handed out must lie in the data area; the
// ring writes nothing but slot responses and cmd_tail.
//
// The seeds in testdata/fuzz/FuzzRingEntry are entries laid out by
// uio/uiotest in a region of this size: reads, writes, BIDI, a variable
// CDB, PAD at the wrap, TMR, and each kind of corruption.
func FuzzRingEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, entries []byte, pos uint16, head uint32) {
		start := uint32(pos) % fuzzRingSize &^ 7
		rr := newRawRegion(t, fuzzRingSize, fuzzDataSize, start)
		rr.put(start, entries)
		rr.setHead(head)
		rr.ring.OnTMR = func(_ uint8, ids []uint16) {
			if len(ids) > (fuzzRingSize-TMREntrySize)/2 {
				t.Fatalf("TMR with %d ids in a %d-byte ring", len(ids), fuzzRingSize)
			}
		}
		dataOff, dataLen := rr.ring.DataArea()
		mailbox := bytes.Clone(rr.mem[:MailboxSize])

		if err := rr.ring.Refresh(); err != nil {
			if !errors.Is(err, ErrBrokenRing) {
				t.Fatalf("Refresh: %v", err)
			}
			return
		}
		// Every entry is at least 8 bytes, so a pass fetches at most
		// ring/8 entries; more means Next is going round in circles.
		var fetched []*Command
		for i := 0; ; i++ {
			if i > fuzzRingSize/8 {
				t.Fatal("Next did not reach cmd_head")
			}
			c := NewCommand()
			ok, err := rr.ring.Next(c)
			if err != nil {
				if !errors.Is(err, ErrBrokenRing) {
					t.Fatalf("Next: %v", err)
				}
				break
			}
			if !ok {
				break
			}
			if c.Err == nil {
				var b7 byte
				if len(c.CDB) > 7 {
					b7 = c.CDB[7]
				}
				if len(c.CDB) == 0 || len(c.CDB) != CDBLen(c.CDB[0], b7) {
					t.Fatalf("CDB %x does not have its opcode's length", c.CDB)
				}
			} else if len(c.Iov)+len(c.BidiIov) != 0 {
				t.Fatalf("command with Err %v has buffers", c.Err)
			}
			for _, b := range append(append([][]byte{}, c.Iov...), c.BidiIov...) {
				if off := rr.offset(b); len(b) > 0 && (uint64(off) < dataOff || uint64(off+len(b)) > dataOff+dataLen) {
					t.Fatalf("buffer [%d,+%d) outside the data area [%d,+%d)", off, len(b), dataOff, dataLen)
				}
			}
			fetched = append(fetched, c)
		}
		for i, c := range fetched {
			c.Status = byte(i)
			c.Sense = []byte{0x70, 0, byte(i)}
			c.ReadLen, c.HasReadLen = uint32(i), i%2 == 0
			rr.ring.Complete(c)
		}
		rr.ring.Release()
		if err := rr.ring.Kick(); err != nil {
			t.Fatal(err)
		}

		tail := binary.LittleEndian.Uint32(rr.mem[mbCmdTailOff:])
		if tail >= fuzzRingSize || tail%8 != 0 {
			t.Fatalf("cmd_tail %d is not a ring offset", tail)
		}
		copy(mailbox[mbCmdTailOff:], rr.mem[mbCmdTailOff:mbCmdTailOff+4])
		if !bytes.Equal(mailbox, rr.mem[:MailboxSize]) {
			t.Fatal("the ring wrote to the mailbox beyond cmd_tail")
		}
		if slices.ContainsFunc(rr.mem[dataOff:], func(b byte) bool { return b != 0 }) {
			t.Fatal("the ring wrote to the data area")
		}
	})
}
