package handler

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/uio"
)

// FuzzDispatch runs any CDB with any Data-Out/Data-In layout (number and
// sizes of iovecs) through Device.execute, on a small device whose
// backend capabilities, block size and write cache come from the input
// too, so native and emulated paths are both reached. The backend is a
// RAM disk that checks every operation: an access outside the device or
// beyond the iovecs handed to it is a handler bug, as is a panic, a
// command that never completes, or a range lock or scratch buffer left
// held afterwards.
//
// The input is: a flags byte, an iovec count byte, two bytes per iovec
// (its size, modulo fzMaxIov), then the CDB (padded with zeros to its
// opcode's length, as the kernel copies it), then Data-Out bytes, repeated
// to fill the iovecs.
func FuzzDispatch(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		fzRun(t, in)
	})
}

const (
	fzBlocks  = 64
	fzMaxIovs = 16
	fzMaxIov  = 9000
	fzSerial  = "600140512345678"
	fzPeerSer = "6001405abcdef01"
	fzFarSer  = "6001405fedcba98"
	// Input flag bits.
	fzBig        = 1 << 0 // 4096-byte blocks, else 512
	fzDiscard    = 1 << 1
	fzZeroes     = 1 << 2
	fzWriteSame  = 1 << 3
	fzCAW        = 1 << 4
	fzStatuser   = 1 << 5
	fzWriteCache = 1 << 6
	fzDSense     = 1 << 7
)

// fzParse splits a fuzz input into its parts; ok is false when it is too
// short to hold a CDB.
func fzParse(in []byte) (flags byte, sizes []int, cdb, payload []byte, ok bool) {
	if len(in) < 3 {
		return 0, nil, nil, nil, false
	}
	flags, n := in[0], int(in[1])%(fzMaxIovs+1)
	in = in[2:]
	sizes = make([]int, n)
	for i := range sizes {
		if len(in) < 2 {
			return 0, nil, nil, nil, false
		}
		sizes[i] = int(binary.BigEndian.Uint16(in)) % fzMaxIov
		in = in[2:]
	}
	if len(in) == 0 {
		return 0, nil, nil, nil, false
	}
	var b7 byte
	if len(in) > 7 {
		b7 = in[7]
	}
	cdb = make([]byte, uio.CDBLen(in[0], b7))
	copy(cdb, in)
	return flags, sizes, cdb, in[min(len(in), len(cdb)):], true
}

func fzRun(t *testing.T, in []byte) {
	flags, sizes, cdb, payload, ok := fzParse(in)
	if !ok {
		return
	}
	bs := uint32(512)
	if flags&fzBig != 0 {
		bs = 4096
	}
	lim := Limits{
		Discard:         flags&fzDiscard != 0,
		DiscardZeroes:   flags&fzDiscard != 0 && flags&fzZeroes != 0,
		WriteSame:       flags&fzWriteSame != 0,
		CompareAndWrite: flags&fzCAW != 0,
		// Small pieces, so that splitting is exercised too.
		MaxDiscardBytes:   uint64(bs) * 5,
		MaxWriteSameBytes: uint64(bs) * 7,
	}
	d, dbe := fzDevice(t, bs, lim, flags&fzStatuser != 0, flags&fzWriteCache != 0, fzSerial)
	peer, pbe := fzDevice(t, bs, lim, false, true, fzPeerSer)
	peerNAA := naaDesignator(fzPeerSer)
	// The peer is reached alike; the device of fzFarSer is served but not
	// reached alike, and refused.
	farNAA := naaDesignator(fzFarSer)
	d.copyPeer = func(naa [16]byte) (*Device, error) {
		switch naa {
		case peerNAA:
			return peer, nil
		case farNAA:
			return nil, ErrCopyTargetNotReachable
		}
		return nil, nil
	}
	d.dsense.Store(flags&fzDSense != 0)

	c := d.getCmd()
	c.CDB = cdb
	for _, size := range sizes {
		b := make([]byte, size)
		for i := range b {
			if len(payload) > 0 {
				b[i] = payload[i%len(payload)]
			}
		}
		c.Iov = append(c.Iov, b)
	}
	if d.execute(c) == done {
		if c.Status == statusCheckCondition && len(c.Sense) == 0 {
			t.Fatalf("CDB % x: CHECK CONDITION without sense", cdb)
		}
		d.complete(c, false)
	}
	for i, dev := range []*Device{d, peer} {
		deadline := time.Now().Add(10 * time.Second)
		for dev.InFlight() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("CDB % x: %d operations still in flight", cdb, dev.InFlight())
			}
			time.Sleep(100 * time.Microsecond)
		}
		fzCheckIdle(t, dev, cdb)
		if err := dev.Close(); err != nil {
			t.Fatalf("CDB % x: close: %v", cdb, err)
		}
		if err := []*fzBackend{dbe, pbe}[i].err(); err != nil {
			t.Fatalf("CDB % x: %v", cdb, err)
		}
	}
}

// fzCheckIdle checks that nothing a finished command borrowed is still
// held.
func fzCheckIdle(t *testing.T, d *Device, cdb []byte) {
	rl := &d.sbc.writes
	rl.mu.Lock()
	held, waiting := len(rl.held), len(rl.waiting)
	rl.mu.Unlock()
	if held != 0 || waiting != 0 || rl.untracked.Load() != 0 || rl.active.Load() != 0 {
		t.Fatalf("CDB % x: range lock not idle: %d held, %d waiting, %d untracked, %d active",
			cdb, held, waiting, rl.untracked.Load(), rl.active.Load())
	}
	d.sbc.copyUsers.mu.Lock()
	users := d.sbc.copyUsers.n
	d.sbc.copyUsers.mu.Unlock()
	if users != 0 {
		t.Fatalf("CDB % x: %d copies still hold the device", cdb, users)
	}
	d.freeMu.Lock()
	defer d.freeMu.Unlock()
	for _, c := range d.free {
		if c.scratch != nil || c.sbc.hold.rl != nil || c.sbc.xcopy.src != nil || c.sbc.xcopy.dst != nil {
			t.Fatalf("CDB % x: a recycled command still holds resources", cdb)
		}
	}
}

// fzDevice is a device over a ring nobody reads: completions land in it
// and are dropped, which is all execute needs.
func fzDevice(t *testing.T, bs uint32, lim Limits, statuser, writeCache bool, serial string) (*Device, *fzBackend) {
	mem := make([]byte, uio.MailboxSize+1024+4096)
	binary.LittleEndian.PutUint16(mem[0:], uio.MailboxVersion)
	binary.LittleEndian.PutUint32(mem[4:], uio.MailboxSize)
	binary.LittleEndian.PutUint32(mem[8:], 1024)
	ring, err := uio.NewRing(mem, func() error { return nil })
	if err != nil {
		t.Fatalf("NewRing: %v", err)
	}
	fb := &fzBackend{data: make([]byte, fzBlocks*int(bs)), bs: int64(bs), lim: lim}
	var be Backend = fb
	if statuser {
		be = fzStatusBackend{fb}
	}
	info := DeviceInfo{Name: "fuzz", Size: fzBlocks * int64(bs), BlockSize: bs, MaxSectors: 16, WriteCache: writeCache}
	d, err := NewDevice(zerolog.Nop(), info, ring, nil, be, &fzConfig{serial})
	if err != nil {
		t.Fatalf("NewDevice: %v", err)
	}
	return d, fb
}

type fzConfig struct{ serial string }

func (c *fzConfig) UnitSerial() (string, error)           { return c.serial, nil }
func (c *fzConfig) PortGroups() ([]PortGroup, error)      { return nil, nil }
func (c *fzConfig) SetPortGroupState(uint16, uint8) error { return syscall.EOPNOTSUPP }

// fzBackend is a RAM disk that checks what the handler asks of it.
type fzBackend struct {
	data []byte
	bs   int64
	lim  Limits

	mu     sync.Mutex
	closed bool
	bad    error // the first contract breach seen
}

func (b *fzBackend) Limits() Limits { return b.lim }

func (b *fzBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

func (b *fzBackend) err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bad
}

// breach records a handler bug and fails the operation.
func (b *fzBackend) breach(io *IO, format string, args ...any) error {
	err := fmt.Errorf("operation %d [%d,+%d): %s", io.Op, io.Off, io.Len, fmt.Sprintf(format, args...))
	if b.bad == nil {
		b.bad = err
	}
	return syscall.EINVAL
}

func iovBytes(iov [][]byte) int64 {
	n := 0
	for _, v := range iov {
		n += len(v)
	}
	return int64(n)
}

func (b *fzBackend) Submit(io *IO) {
	b.mu.Lock()
	err := b.do(io)
	b.mu.Unlock()
	io.Done(err)
}

func (b *fzBackend) do(io *IO) error {
	size := int64(len(b.data))
	switch {
	case b.closed:
		return b.breach(io, "backend closed")
	case io.Off < 0 || io.Len < 0 || io.Off > size-io.Len:
		return b.breach(io, "outside the %d-byte device", size)
	}
	span := b.data[io.Off : io.Off+io.Len]
	switch io.Op {
	case OpRead:
		if iovBytes(io.Iov) < io.Len {
			return b.breach(io, "iovecs of %d bytes", iovBytes(io.Iov))
		}
		copyToIov(io.Iov, 0, span)
	case OpWrite:
		if iovBytes(io.Iov) < io.Len {
			return b.breach(io, "iovecs of %d bytes", iovBytes(io.Iov))
		}
		copyFromIov(span, io.Iov, 0)
	case OpFlush:
	case OpDiscard:
		if !b.lim.Discard {
			return b.breach(io, "discard not supported")
		}
		if io.Len > int64(b.lim.MaxDiscardBytes) {
			return b.breach(io, "longer than MaxDiscardBytes")
		}
		clear(span)
	case OpWriteSame:
		if !b.lim.WriteSame || iovBytes(io.Iov) < b.bs || io.Len%b.bs != 0 || io.Len > int64(b.lim.MaxWriteSameBytes) {
			return b.breach(io, "bad write same (iovecs of %d bytes)", iovBytes(io.Iov))
		}
		blk := make([]byte, b.bs)
		copyFromIov(blk, io.Iov, 0)
		for i := int64(0); i < io.Len; i += b.bs {
			copy(span[i:], blk)
		}
	case OpCompareAndWrite:
		if !b.lim.CompareAndWrite || iovBytes(io.Iov) < 2*io.Len {
			return b.breach(io, "bad compare and write (iovecs of %d bytes)", iovBytes(io.Iov))
		}
		cmp := make([]byte, 2*io.Len)
		copyFromIov(cmp, io.Iov, 0)
		if i := firstDiff(span, cmp[:io.Len]); i >= 0 {
			io.MiscompareOffset = int64(i)
			return syscall.EILSEQ
		}
		copy(span, cmp[io.Len:])
	default:
		return b.breach(io, "unknown operation")
	}
	return nil
}

// fzStatusBackend adds LBAStatuser: all-zero blocks are deallocated.
type fzStatusBackend struct{ *fzBackend }

func (b fzStatusBackend) Status(_ context.Context, off, length int64) (bool, int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if off < 0 || length <= 0 || off > int64(len(b.data))-length {
		return false, 0, fmt.Errorf("status [%d,+%d) outside the device: %w", off, length, syscall.EINVAL)
	}
	zero := func(i int64) bool { return bytes.Count(b.data[i:i+b.bs], []byte{0}) == int(b.bs) }
	first := zero(off - off%b.bs)
	n := int64(0)
	for i := off - off%b.bs; i < off+length && zero(i) == first; i += b.bs {
		n += b.bs
	}
	return !first, min(n, length), nil
}

// TestFuzzDispatchCorpus checks that the committed corpus of FuzzDispatch
// starts the fuzzer at every block command of the table.
func TestFuzzDispatchCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDispatch", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	seen := map[*opInfo]bool{}
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(strings.TrimSpace(string(raw)), "\n", 2)
		if len(lines) != 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a fuzz corpus file", name)
		}
		lit := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, _, cdb, _, ok := fzParse([]byte(s)); ok {
			if o := commands.lookup(cdb); o != nil {
				seen[o] = true
			}
		}
	}
	for i := range sbcCommands {
		if o := &sbcCommands[i]; !seen[o] {
			t.Errorf("no seed for %s", o.name)
		}
	}
}
