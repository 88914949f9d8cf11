package uiotest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

var le = binary.LittleEndian

func read10(blocks uint16) []byte {
	return []byte{0x28, 0, 0, 0, 0, 0, 0, byte(blocks >> 8), byte(blocks), 0}
}

var testUnitReady = []byte{0, 0, 0, 0, 0, 0}

func submit(t *testing.T, k *uiotest.Kernel, req uiotest.Request) uint16 {
	t.Helper()
	id, err := k.Submit(req)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return id
}

// fetchAll drains whatever the ring holds now.
func fetchAll(t *testing.T, k *uiotest.Kernel) []*uio.Command {
	t.Helper()
	if err := k.Ring().Refresh(); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	var cmds []*uio.Command
	for {
		c := uio.NewCommand()
		ok, err := k.Ring().Next(c)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if !ok {
			return cmds
		}
		cmds = append(cmds, c)
	}
}

func completion(t *testing.T, k *uiotest.Kernel) uiotest.Completion {
	t.Helper()
	select {
	case c := <-k.Completions():
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no completion within 5s")
		return uiotest.Completion{}
	}
}

func TestMailbox(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{RingSize: 4096, DataSize: 8192})
	mem := k.Mem()
	if len(mem) != 128+4096+8192 || k.DataOff() != 128+4096 {
		t.Fatalf("region %d bytes, data at %d", len(mem), k.DataOff())
	}
	for _, f := range []struct {
		name      string
		off, want int
		size      int
	}{
		{"version", 0, 2, 2},
		{"flags", 2, 0x0f, 2},
		{"cmdr_off", 4, 128, 4},
		{"cmdr_size", 8, 4096, 4},
		{"cmd_head", 12, 0, 4},
		{"cmd_tail", 64, 0, 4},
	} {
		got := int(le.Uint16(mem[f.off:]))
		if f.size == 4 {
			got = int(le.Uint32(mem[f.off:]))
		}
		if got != f.want {
			t.Errorf("mailbox %s = %#x, want %#x", f.name, got, f.want)
		}
	}
	if k.Ring().Flags() != 0x0f || k.Ring().Size() != 4096 {
		t.Errorf("ring flags %#x size %d", k.Ring().Flags(), k.Ring().Size())
	}
}

// TestCmdEntryLayout checks one entry byte for byte against what
// queue_cmd_ring writes, including iovec merging of adjacent blocks.
func TestCmdEntryLayout(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	mem := k.Mem()
	dataOff := uint64(k.DataOff())

	// Blocks 0, 1, 2 go to three one-block reads; freeing block 1 and
	// 3.. leaves a hole, so a three-block read gets blocks 1, 3, 4:
	// two iovecs.
	a := submit(t, k, uiotest.Request{CDB: read10(1), DataInLen: 4096})
	b := submit(t, k, uiotest.Request{CDB: read10(1), DataInLen: 4096})
	c := submit(t, k, uiotest.Request{CDB: read10(1), DataInLen: 4096})
	if a != 1 || b != 2 || c != 3 {
		t.Fatalf("cmd_ids %d %d %d, want 1 2 3", a, b, c)
	}
	cmds := fetchAll(t, k)
	k.Ring().Complete(cmds[1])
	if err := k.Ring().Kick(); err != nil {
		t.Fatal(err)
	}
	if got := completion(t, k); got.ID != b {
		t.Fatalf("completed %d, want %d", got.ID, b)
	}
	// The slot of cmd 1 was taken over by cmd 2's completion; cmd 1 and
	// 3 are outstanding, so the new entry goes after cmd 3 at 3*128.
	d := submit(t, k, uiotest.Request{CDB: read10(3), DataInLen: 3*4096 - 100})
	if d != 2 {
		t.Errorf("cmd_id %d after 2 was freed, want 2 (xa_alloc takes the lowest free)", d)
	}
	const head = 3 * 128
	e := mem[128+head : 128+head+128]
	want := make([]byte, 128)
	le.PutUint32(want[0:], 128|uio.OpCmd) // 112 + round_up(10, 8)
	le.PutUint16(want[4:], d)
	le.PutUint32(want[8:], 2) // iov_cnt
	le.PutUint64(want[24:], 128+head+112)
	le.PutUint64(want[48:], dataOff+1*4096)
	le.PutUint64(want[56:], 4096)
	le.PutUint64(want[64:], dataOff+3*4096)
	le.PutUint64(want[72:], 2*4096-100)
	copy(want[112:], read10(3))
	if !bytes.Equal(e, want) {
		t.Errorf("entry\n got %x\nwant %x", e, want)
	}
	if h := le.Uint32(mem[12:]); h != head+128 {
		t.Errorf("cmd_head %d, want %d", h, head+128)
	}
	for i, b := range mem[dataOff+4096 : dataOff+2*4096] {
		if b != uiotest.PoisonByte {
			t.Fatalf("Data-In byte %d is %#x, want poison", i, b)
		}
	}
}

// TestLargeIovecCountGrowsTheEntry: with more than four iovecs the entry
// is 48 + 16n bytes before the CDB instead of 112.
func TestLargeIovecCountGrowsTheEntry(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	for range 12 {
		submit(t, k, uiotest.Request{CDB: read10(1), DataInLen: 4096})
	}
	cmds := fetchAll(t, k)
	for i := 0; i < 12; i += 2 { // free blocks 0, 2, 4, 6, 8, 10
		k.Ring().Complete(cmds[i])
	}
	if err := k.Ring().Kick(); err != nil {
		t.Fatal(err)
	}
	id := submit(t, k, uiotest.Request{CDB: read10(6), DataInLen: 6 * 4096})
	cmd := fetchAll(t, k)[0]
	if cmd.ID != id || len(cmd.Iov) != 6 {
		t.Fatalf("ID %d with %d iovecs, want %d with 6", cmd.ID, len(cmd.Iov), id)
	}
	// 12 entries of 128 bytes came before it.
	e := k.Mem()[128+12*128:]
	if got := le.Uint32(e); got != 160|uio.OpCmd {
		t.Errorf("len_op %#x, want %#x (48 + 6*16 + round_up(10, 8))", got, 160|uio.OpCmd)
	}
	if got := le.Uint64(e[24:]); got != 128+12*128+48+6*16 {
		t.Errorf("cdb_off %d, want right after the 6 iovecs", got)
	}
	if h := le.Uint32(k.Mem()[12:]); h != 12*128+160 {
		t.Errorf("cmd_head %d, want %d", h, 12*128+160)
	}
}

func TestPadAtTheEndOfTheRing(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{RingSize: 1000})
	mem := k.Mem()
	for range 7 { // 7 * 128 = 896: 104 bytes left, too few for 128
		submit(t, k, uiotest.Request{CDB: read10(1), DataInLen: 512})
	}
	for _, c := range fetchAll(t, k) {
		k.Ring().Complete(c)
	}
	if err := k.Ring().Kick(); err != nil {
		t.Fatal(err)
	}
	id := submit(t, k, uiotest.Request{CDB: read10(1), DataInLen: 512})
	pad := mem[128+896 : 128+896+8]
	if got := le.Uint32(pad); got != 104|uio.OpPad || le.Uint16(pad[4:]) != 0 || pad[6] != 0 || pad[7] != 0 {
		t.Errorf("PAD header %x, want len_op %#x and zeros", pad, 104|uio.OpPad)
	}
	if got := le.Uint32(mem[128:]); got != 128|uio.OpCmd || le.Uint16(mem[128+4:]) != id {
		t.Errorf("entry after the PAD at offset 0: len_op %#x id %d", got, le.Uint16(mem[128+4:]))
	}
	if h := le.Uint32(mem[12:]); h != 128 {
		t.Errorf("cmd_head %d, want 128", h)
	}
	cmds := fetchAll(t, k)
	if len(cmds) != 1 || cmds[0].ID != id {
		t.Fatalf("after the PAD fetched %d commands", len(cmds))
	}
	if st := k.Stats(); st.Pads != 1 {
		t.Errorf("%d PADs, want 1", st.Pads)
	}
}

func TestTMREntryLayout(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	if err := k.SubmitTMR(uio.TMRAbortTaskSet, []uint16{7, 9, 11}); err != nil {
		t.Fatal(err)
	}
	e := k.Mem()[128 : 128+40]
	want := make([]byte, 40) // round_up(32 + 3*2, 8)
	le.PutUint32(want, 40|uio.OpTMR)
	want[8] = uio.TMRAbortTaskSet
	le.PutUint32(want[12:], 3)
	le.PutUint16(want[32:], 7)
	le.PutUint16(want[34:], 9)
	le.PutUint16(want[36:], 11)
	if !bytes.Equal(e, want) {
		t.Errorf("TMR entry\n got %x\nwant %x", e, want)
	}
}

func TestSubmitRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  uiotest.Config
		req  uiotest.Request
		want error
	}{
		{"more data than the data area", uiotest.Config{DataSize: 4096}, uiotest.Request{CDB: read10(2), DataInLen: 4097}, uiotest.ErrTooBig},
		{"entry larger than half the ring", uiotest.Config{RingSize: 224}, uiotest.Request{CDB: testUnitReady}, uiotest.ErrTooBig},
		{"CDB shorter than its opcode's length", uiotest.Config{}, uiotest.Request{CDB: read10(1)[:6]}, nil},
		{"empty CDB", uiotest.Config{}, uiotest.Request{}, nil},
		{"negative Data-In length", uiotest.Config{}, uiotest.Request{CDB: read10(1), DataInLen: -1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := uiotest.New(t, tt.cfg)
			_, err := k.Submit(tt.req)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Submit: %v, want %v", err, tt.want)
			}
			if k.Stats().Submitted != 0 || le.Uint32(k.Mem()[12:]) != 0 {
				t.Error("a rejected command moved cmd_head")
			}
		})
	}
}

func TestCmdIDsRunOut(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{RingSize: 8<<20 - 128})
	for i := 1; i <= 0xffff; i++ {
		if id := submit(t, k, uiotest.Request{CDB: testUnitReady}); id != uint16(i) {
			t.Fatalf("cmd_id %d, want %d", id, i)
		}
	}
	if _, err := k.Submit(uiotest.Request{CDB: testUnitReady}); !errors.Is(err, uiotest.ErrNoCmdID) {
		t.Fatalf("65536th command: %v, want ErrNoCmdID", err)
	}
}

// recorder stands in for the test the fake reports protocol breaches to.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) reported() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.errs, "; ")
}

// TestProtocolBreachFailsTheTest plays a broken handler against the fake:
// each breach must fail the test and break the ring, as the kernel would.
func TestProtocolBreachFailsTheTest(t *testing.T) {
	tests := []struct {
		name   string
		breach func(k *uiotest.Kernel, cmds []*uio.Command)
		want   string
	}{
		{"unknown cmd_id", func(k *uiotest.Kernel, cmds []*uio.Command) {
			// uio.Ring refuses to complete an id it does not hold, so
			// the wrong id is written over the response.
			k.Ring().Complete(cmds[0])
			le.PutUint16(k.Mem()[128+4:], 999)
		}, "cmd_id 999 in the slot at 0 not found, ring is broken"},
		{"cmd_tail off an entry boundary", func(k *uiotest.Kernel, cmds []*uio.Command) {
			k.Ring().Complete(cmds[0])
			le.PutUint32(k.Mem()[64:], 8)
		}, "cmd_tail 8 is not the start of a queued entry"},
		{"cmd_tail behind the last cleaned entry", func(k *uiotest.Kernel, cmds []*uio.Command) {
			k.Ring().Complete(cmds[0])
			k.Ring().Kick()
			k.Ring().Complete(cmds[1])
			le.PutUint32(k.Mem()[64:], 0)
		}, "cmd_tail 0 is not the start of a queued entry"},
		{"len_op rewritten", func(k *uiotest.Kernel, cmds []*uio.Command) {
			k.Ring().Complete(cmds[0])
			le.PutUint32(k.Mem()[128:], 128|uio.OpCmd)
		}, "len_op of the entry at 0 rewritten from 0x79 to 0x81"},
		{"KEEP_BUF", func(k *uiotest.Kernel, cmds []*uio.Command) {
			k.Ring().Complete(cmds[0])
			k.Mem()[128+7] |= uio.UFlagKeepBuf
		}, "completed with KEEP_BUF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			k := uiotest.New(rec, uiotest.Config{})
			submit(t, k, uiotest.Request{CDB: testUnitReady})
			submit(t, k, uiotest.Request{CDB: testUnitReady})
			tt.breach(k, fetchAll(t, k))
			if err := k.Ring().Kick(); err != nil {
				t.Fatal(err)
			}
			if got := rec.reported(); !strings.Contains(got, tt.want) {
				t.Fatalf("fake reported %q, want %q", got, tt.want)
			}
			if !k.Broken() {
				t.Fatal("ring not marked broken")
			}
			if _, err := k.Submit(uiotest.Request{CDB: testUnitReady}); !errors.Is(err, uiotest.ErrBroken) {
				t.Fatalf("Submit on a broken ring: %v, want ErrBroken", err)
			}
			k.Ring().Reset()
			if err := k.ResetRing(uio.ResetBusy); err != nil {
				t.Fatal(err)
			}
			if k.Broken() {
				t.Fatal("ResetRing left the ring broken")
			}
			submit(t, k, uiotest.Request{CDB: testUnitReady})
		})
	}
}

func TestResetRingRejectsBadMode(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	if err := k.ResetRing(3); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("ResetRing(3): %v, want EINVAL", err)
	}
}

func TestWait(t *testing.T) {
	ctx := context.Background()
	k := uiotest.New(t, uiotest.Config{})
	if err := k.Wait(ctx); err != nil {
		t.Fatalf("first Wait: %v", err)
	}

	returned := make(chan error, 1)
	go func() { returned <- k.Wait(ctx) }()
	select {
	case err := <-returned:
		t.Fatalf("second Wait returned %v with nothing queued", err)
	case <-time.After(20 * time.Millisecond):
	}
	k.Notify()
	if err := <-returned; err != nil {
		t.Fatalf("Wait after Notify: %v", err)
	}

	// Notifications coalesce: three give one wake-up.
	k.Notify()
	k.Notify()
	submit(t, k, uiotest.Request{CDB: testUnitReady})
	if err := k.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := k.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait after the coalesced wake-up was used: %v, want deadline exceeded", err)
	}

	// Plugged, queued commands raise one notification at Unplug.
	k.Plug()
	submit(t, k, uiotest.Request{CDB: testUnitReady})
	submit(t, k, uiotest.Request{CDB: testUnitReady})
	before := k.Stats().Notifications
	k.Unplug()
	if got := k.Stats().Notifications - before; got != 1 {
		t.Fatalf("%d notifications at Unplug, want 1", got)
	}
	if err := k.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWaitAfterCloseAndRemove(t *testing.T) {
	ctx := context.Background()
	t.Run("close", func(t *testing.T) {
		k := uiotest.New(t, uiotest.Config{})
		k.Wait(ctx)
		returned := make(chan error, 1)
		go func() { returned <- k.Wait(ctx) }()
		k.Close()
		if err := <-returned; !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Wait across Close: %v, want os.ErrClosed", err)
		}
		// The kernel keeps queueing for a closed fd; the doorbell fails.
		submit(t, k, uiotest.Request{CDB: testUnitReady})
		k.Ring().Refresh()
		c := uio.NewCommand()
		if ok, err := k.Ring().Next(c); !ok || err != nil {
			t.Fatalf("Next after Close: %v %v", ok, err)
		}
		k.Ring().Complete(c)
		if err := k.Ring().Kick(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("doorbell after Close: %v, want os.ErrClosed", err)
		}
	})
	t.Run("remove", func(t *testing.T) {
		k := uiotest.New(t, uiotest.Config{})
		submit(t, k, uiotest.Request{CDB: testUnitReady})
		cmds := fetchAll(t, k)
		k.Remove()
		if err := k.Wait(ctx); !errors.Is(err, uio.ErrDeviceGone) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("Wait after Remove: %v, want ErrDeviceGone and EIO", err)
		}
		k.Ring().Complete(cmds[0])
		if err := k.Ring().Kick(); !errors.Is(err, uio.ErrDeviceGone) {
			t.Fatalf("doorbell after Remove: %v, want ErrDeviceGone", err)
		}
		if _, err := k.Submit(uiotest.Request{CDB: testUnitReady}); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Submit after Remove: %v, want EIO", err)
		}
	})
}
