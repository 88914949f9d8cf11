package mem

import (
	"context"
	"errors"
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/handlertest"
)

func open(tb testing.TB, size int64) handler.Backend {
	b, err := New(size)
	if err != nil {
		tb.Fatalf("New(%d): %v", size, err)
	}
	return b
}

func TestBackend(t *testing.T) {
	handlertest.TestBackend(t, func(t *testing.T, size int64) handler.Backend { return open(t, size) })
}

func BenchmarkBackend(b *testing.B) {
	handlertest.BenchmarkBackend(b, open)
}

func TestCheckLabel(t *testing.T) {
	tests := []struct {
		name    string
		label   string
		wantErr string
	}{
		{name: "empty", label: ""},
		{name: "word", label: "scratch"},
		{name: "with_slashes_and_spaces", label: "bench/ram disk 1"},
		{name: "unicode_text", label: "données"},
		{name: "longest", label: strings.Repeat("x", 251)},
		{name: "too_long", label: strings.Repeat("x", 252), wantErr: "252 bytes long; at most 251"},
		{name: "nul", label: "a\x00b", wantErr: "control character U+0000 at byte 1"},
		{name: "newline", label: "a\nb", wantErr: "control character U+000A"},
		{name: "escape_sequence", label: "\x1b[31mred", wantErr: "control character U+001B"},
		{name: "invalid_utf8", label: "a\xffb", wantErr: "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLabel(tt.label)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckLabel(%q) = %v, want nil", tt.label, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckLabel(%q) = %v, want an error containing %q", tt.label, err, tt.wantErr)
			}
		})
	}
}

func TestSizeLimits(t *testing.T) {
	for _, size := range []int64{-512, maxSize + 512, math.MaxInt64} {
		if _, err := New(size); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("New(%d) = %v, want EINVAL", size, err)
		}
	}
	b := open(t, 1<<20).(*Backend)
	defer b.Close()
	if err := b.Resize(math.MaxInt64); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Resize(MaxInt64) = %v, want EINVAL", err)
	}
	if err := b.Resize(maxSize); err != nil {
		t.Errorf("Resize(1 PiB) = %v", err)
	}
}

func TestHandlerOpenRefusesBadLabel(t *testing.T) {
	h := Handler()
	if h.Subtype != "mem" {
		t.Errorf("Subtype = %q, want mem", h.Subtype)
	}
	if err := h.CheckConfig(context.Background(), "a\x00"); err == nil {
		t.Error("CheckConfig accepted a NUL")
	}
	info := handler.DeviceInfo{Name: "m", Config: "bad\nlabel", Size: 1 << 20, BlockSize: 512}
	if _, err := h.Open(context.Background(), info, zerolog.Nop()); err == nil {
		t.Error("Open accepted a label with a newline")
	}
	info.Config = "ok"
	be, err := h.Open(context.Background(), info, zerolog.Nop())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := be.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestSparse checks that a huge device costs memory only where written,
// and that discard and shrinking give it back.
func TestSparse(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b, err := New(1 << 40)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<10 {
		t.Errorf("a 1 TiB device took %d bytes of heap before any write", grew)
	}
	if got := b.Allocated(); got != 0 {
		t.Errorf("Allocated() = %d before any write, want 0", got)
	}

	buf := mmapped(t, 8192)
	submit(t, b, handler.OpWrite, 512<<30-4096, 8192, [][]byte{buf}) // straddles two chunks
	if got := b.Allocated(); got != 2*chunkSize {
		t.Errorf("Allocated() = %d after an 8 KiB write across a chunk boundary, want %d", got, 2*chunkSize)
	}
	submit(t, b, handler.OpDiscard, 512<<30-chunkSize, chunkSize, nil)
	if got := b.Allocated(); got != chunkSize {
		t.Errorf("Allocated() = %d after discarding a whole chunk, want %d", got, chunkSize)
	}
	submit(t, b, handler.OpDiscard, 512<<30, 4096, nil)
	if got := b.Allocated(); got != chunkSize {
		t.Errorf("Allocated() = %d after discarding part of a chunk, want %d (zeroed, kept)", got, chunkSize)
	}
	if err := b.Resize(512 << 30); err != nil {
		t.Fatal(err)
	}
	if got := b.Allocated(); got != 0 {
		t.Errorf("Allocated() = %d after shrinking below all data, want 0", got)
	}
}

// TestNoAllocationsPerIO: steady-state IO must not allocate (issue 7).
func TestNoAllocationsPerIO(t *testing.T) {
	b := open(t, 16<<20).(*Backend)
	defer b.Close()
	buf := mmapped(t, 8192)
	var err error
	io := handler.NewIO(func(_ *handler.IO, e error) { err = e })
	tests := []struct {
		name   string
		op     handler.Op
		off, n int64
		iov    [][]byte
	}{
		{"read", handler.OpRead, 4096, 4096, [][]byte{buf[:4096]}},
		{"write", handler.OpWrite, 4096, 4096, [][]byte{buf[:2048], buf[2048:4096]}},
		{"write_same", handler.OpWriteSame, 1 << 20, 1 << 20, [][]byte{buf[:512]}},
		{"compare_and_write", handler.OpCompareAndWrite, 4096, 4096, [][]byte{buf}},
		{"compare_and_write_miscompare", handler.OpCompareAndWrite, 0, 512, [][]byte{buf[:512], buf[4096:4608]}},
		{"flush", handler.OpFlush, 0, 0, nil},
		{"partial_discard", handler.OpDiscard, 8192, 4096, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf[0] = 1 // the miscompare case compares this with zeros
			io.Op, io.Off, io.Len, io.Iov = tt.op, tt.off, tt.n, tt.iov
			b.Submit(io) // warm up: map the chunks
			allocs := testing.AllocsPerRun(100, func() {
				io.Op, io.Off, io.Len, io.Iov = tt.op, tt.off, tt.n, tt.iov
				b.Submit(io)
			})
			if err != nil && !errors.Is(err, syscall.EILSEQ) {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if allocs != 0 {
				t.Errorf("%s allocates %.1f times per IO, want 0", tt.name, allocs)
			}
		})
	}
}

// TestSubmitCompletesInline documents the property the package relies on
// for benchmarking: Done runs before Submit returns, on the caller.
func TestSubmitCompletesInline(t *testing.T) {
	b := open(t, 1<<20)
	defer b.Close()
	done := false
	io := handler.NewIO(func(*handler.IO, error) { done = true })
	io.Op = handler.OpFlush
	b.Submit(io)
	if !done {
		t.Fatal("Done had not run when Submit returned")
	}
}

func TestSubmitAfterCloseFails(t *testing.T) {
	b := open(t, 1<<20)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	buf := mmapped(t, 512)
	var err error
	io := handler.NewIO(func(_ *handler.IO, e error) { err = e })
	io.Op, io.Off, io.Len, io.Iov = handler.OpRead, 0, 512, [][]byte{buf}
	b.Submit(io)
	if !errors.Is(err, syscall.ENXIO) {
		t.Fatalf("read after Close: %v, want ENXIO", err)
	}
}

func mmapped(t *testing.T, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func submit(t *testing.T, b *Backend, op handler.Op, off, n int64, iov [][]byte) {
	t.Helper()
	var err error
	io := handler.NewIO(func(_ *handler.IO, e error) { err = e })
	io.Op, io.Off, io.Len, io.Iov = op, off, n, iov
	b.Submit(io)
	if err != nil {
		t.Fatalf("op %d at %d+%d: %v", op, off, n, err)
	}
}

// TestFaultingIovecFailsTheIO: an iovec over memory that faults (a data
// area page no command refers to) fails the IO with EFAULT on a goroutine
// with SetPanicOnFault, as the handler's command loop is, and leaves the
// backend usable.
func TestFaultingIovecFailsTheIO(t *testing.T) {
	b := open(t, 4<<20).(*Backend)
	defer b.Close()
	bad := mmapped(t, 8192)
	if err := unix.Mprotect(bad, unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   handler.Op
		iov  [][]byte
		n    int64
	}{
		{"read", handler.OpRead, [][]byte{bad[:4096]}, 4096},
		{"write", handler.OpWrite, [][]byte{bad[:4096]}, 4096},
		{"write_same", handler.OpWriteSame, [][]byte{bad[:512]}, 4096},
		{"compare_and_write", handler.OpCompareAndWrite, [][]byte{bad}, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errc := make(chan error, 1)
			go func() {
				debug.SetPanicOnFault(true)
				io := handler.NewIO(func(_ *handler.IO, err error) { errc <- err })
				io.Op, io.Off, io.Len, io.Iov = tt.op, 1<<20, tt.n, tt.iov
				b.Submit(io)
			}()
			if err := <-errc; !errors.Is(err, syscall.EFAULT) {
				t.Fatalf("%s through a faulting iovec: %v, want EFAULT", tt.name, err)
			}
		})
	}
	good := mmapped(t, 512)
	submit(t, b, handler.OpWrite, 0, 512, [][]byte{good})
}
