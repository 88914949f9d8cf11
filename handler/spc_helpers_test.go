package handler

import (
	"bytes"
	"encoding/binary"
	"errors"
	"syscall"
	"testing"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/uio"
)

// Helpers for testing the emulated (non-IO) commands: a Device over a tiny
// ring, commands executed directly with hand-made CDBs and Go-heap iovecs,
// and expected sense data built byte by byte, independently of sense.go.

// nullBackend serves no IO: the commands tested with it never submit any.
type nullBackend struct{ lim Limits }

func (b *nullBackend) Submit(io *IO)  { io.Done(syscall.EIO) }
func (b *nullBackend) Limits() Limits { return b.lim }
func (b *nullBackend) Close() error   { return nil }

// stateChange is one SetPortGroupState call.
type stateChange struct {
	id    uint16
	state uint8
}

// fakeConfig is a DeviceConfig held in memory.
type fakeConfig struct {
	serial string
	groups []PortGroup
	err    error // returned by UnitSerial and PortGroups
	setErr error // returned by SetPortGroupState
	set    []stateChange
}

func (f *fakeConfig) UnitSerial() (string, error)      { return f.serial, f.err }
func (f *fakeConfig) PortGroups() ([]PortGroup, error) { return f.groups, f.err }

func (f *fakeConfig) SetPortGroupState(id uint16, state uint8) error {
	if f.setErr != nil {
		return f.setErr
	}
	f.set = append(f.set, stateChange{id, state})
	return nil
}

var errConfigfs = errors.New("read configfs: input/output error")

// testDev describes the device newTestDevice builds; zero fields take
// defaults: 512-byte blocks, 2048 of them (none if empty), hw_max_sectors
// 128.
type testDev struct {
	info  DeviceInfo
	lim   Limits
	cfg   DeviceConfig
	empty bool
}

func newTestDevice(t testing.TB, td testDev) *Device {
	t.Helper()
	info := td.info
	if info.BlockSize == 0 {
		info.BlockSize = 512
	}
	if info.Size == 0 && !td.empty {
		info.Size = 2048 * int64(info.BlockSize)
	}
	if info.MaxSectors == 0 {
		info.MaxSectors = 128
	}
	// Mailbox version 2 at offset 0, a 1 KiB command ring after it, then
	// a data area (uio/layout.go).
	mem := make([]byte, uio.MailboxSize+1024+4096)
	binary.LittleEndian.PutUint16(mem[0:], uio.MailboxVersion)
	binary.LittleEndian.PutUint32(mem[4:], uio.MailboxSize)
	binary.LittleEndian.PutUint32(mem[8:], 1024)
	ring, err := uio.NewRing(mem, func() error { return nil })
	if err != nil {
		t.Fatalf("NewRing: %v", err)
	}
	d, err := NewDevice(zerolog.Nop(), info, ring, nil, &nullBackend{td.lim}, td.cfg)
	if err != nil {
		t.Fatalf("NewDevice: %v", err)
	}
	return d
}

// sentinel fills Data-In buffers, to see which bytes a command wrote.
const sentinel = 0xa5

// exec runs one command synchronously. out is the Data-Out buffer; for a
// Data-In command, inLen is the Data-In buffer's length. Buffers are split
// into iovecs of at most iovSize bytes (0: one iovec), as the kernel's
// scatter lists may be.
func exec(t testing.TB, d *Device, cdb, out []byte, inLen, iovSize int) (c *Cmd, in []byte) {
	t.Helper()
	c = newCmd(d)
	c.CDB = cdb
	buf := out
	if out == nil {
		in = bytes.Repeat([]byte{sentinel}, inLen)
		buf = in
	}
	c.Iov = splitIov(buf, iovSize)
	if r := d.execute(c); r != done {
		t.Fatalf("CDB % x: result pending, want done", cdb)
	}
	return c, in
}

func splitIov(b []byte, size int) [][]byte {
	if size <= 0 || len(b) <= size {
		if b == nil {
			return nil
		}
		return [][]byte{b}
	}
	var iov [][]byte
	for len(b) > size {
		iov = append(iov, b[:size])
		b = b[size:]
	}
	return append(iov, b)
}

// cmdCase is one command and what it must answer: want is the exact
// Data-In (the rest of the buffer untouched, the shortfall reported as
// ReadLen), or sense the exact fixed-format sense data of a CHECK
// CONDITION.
type cmdCase struct {
	name  string
	cdb   []byte
	out   []byte // Data-Out (parameter list); nil for Data-In commands
	inLen int    // Data-In buffer length
	want  []byte
	sense []byte
}

func runCases(t *testing.T, d *Device, cases []cmdCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, d) })
	}
}

func (tc cmdCase) check(t *testing.T, d *Device) {
	t.Helper()
	for _, iovSize := range []int{0, 3} {
		c, in := exec(t, d, tc.cdb, tc.out, tc.inLen, iovSize)
		checkResult(t, c, in, tc.want, tc.sense)
	}
}

// checkResult checks a command's status, sense and Data-In.
func checkResult(t *testing.T, c *Cmd, in, want, sense []byte) {
	t.Helper()
	if sense != nil {
		if c.Status != statusCheckCondition {
			t.Fatalf("status %#x, want CHECK CONDITION with sense % x", c.Status, sense)
		}
		if !bytes.Equal(c.Sense, sense) {
			t.Fatalf("sense\n got % x\nwant % x", c.Sense, sense)
		}
		return
	}
	if c.Status != statusGood {
		t.Fatalf("status %#x sense % x, want GOOD", c.Status, c.Sense)
	}
	if c.Sense != nil {
		t.Errorf("GOOD with sense % x", c.Sense)
	}
	if in == nil {
		return
	}
	if len(want) > len(in) {
		t.Fatalf("test wants %d bytes from a %d-byte buffer", len(want), len(in))
	}
	if got := in[:len(want)]; !bytes.Equal(got, want) {
		t.Errorf("data\n got % x\nwant % x", got, want)
	}
	for i, b := range in[len(want):] {
		if b != sentinel {
			t.Errorf("byte %d past the %d-byte response written: %#x", len(want)+i, len(want), b)
			break
		}
	}
	short := len(want) < len(in)
	if c.HasReadLen != short || (short && c.ReadLen != uint32(len(want))) {
		t.Errorf("read length (%v, %d), want (%v, %d)", c.HasReadLen, c.ReadLen, short, len(want))
	}
}

// Expected sense data, fixed format (SPC-4 4.5.3).
func fixedSense(key byte, ascq uint16, sks []byte) []byte {
	b := make([]byte, 18)
	b[0] = 0x70
	b[2] = key
	b[7] = 10
	b[12], b[13] = byte(ascq>>8), byte(ascq)
	copy(b[15:], sks)
	return b
}

// cdbPtr and paramPtr are sense-key specific field pointers (SPC-4
// 4.5.2.4.2) at byte off and, if bit >= 0, that bit.
func cdbPtr(off, bit int) []byte   { return fieldPtr(0xc0, off, bit) }
func paramPtr(off, bit int) []byte { return fieldPtr(0x80, off, bit) }

func fieldPtr(b0 byte, off, bit int) []byte {
	if bit >= 0 {
		b0 |= 0x08 | byte(bit)
	}
	return []byte{b0, byte(off >> 8), byte(off)}
}

func invalidCDB(off, bit int) []byte {
	return fixedSense(keyIllegalRequest, 0x2400, cdbPtr(off, bit))
}

func invalidParam(off, bit int) []byte {
	return fixedSense(keyIllegalRequest, 0x2600, paramPtr(off, bit))
}

// cat concatenates byte slices and strings into one expected response.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case []byte:
			b = append(b, v...)
		case string:
			b = append(b, v...)
		case int:
			b = append(b, byte(v))
		case byte:
			b = append(b, v)
		default:
			panic("cat: unexpected part")
		}
	}
	return b
}

func zeros(n int) []byte { return make([]byte, n) }
