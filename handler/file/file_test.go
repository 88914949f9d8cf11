package file

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/handlertest"
)

// openIn returns an open function making fresh backends in dir(tb).
func openIn(dir func(tb testing.TB) string, opts Options) func(tb testing.TB, size int64) handler.Backend {
	return func(tb testing.TB, size int64) handler.Backend {
		tb.Helper()
		info := handler.DeviceInfo{Name: "t", Config: filepath.Join(dir(tb), "disk.img"), Size: size, BlockSize: 512}
		b, err := Open(info, opts, zerolog.Nop())
		if err != nil {
			tb.Fatalf("Open: %v", err)
		}
		return b
	}
}

func tempDir(tb testing.TB) string { return tb.TempDir() }

// shmDir is a directory on tmpfs, where gotcmu user:file is benchmarked
// against LIO fileio (issue 7).
func shmDir(tb testing.TB) string {
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		tb.Skip("no tmpfs at /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "gotcmu-file-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestBackend(t *testing.T) {
	for _, fs := range []struct {
		name string
		dir  func(testing.TB) string
	}{{"tempdir", tempDir}, {"tmpfs", shmDir}} {
		t.Run(fs.name, func(t *testing.T) {
			open := openIn(fs.dir, Options{})
			handlertest.TestBackend(t, func(t *testing.T, size int64) handler.Backend { return open(t, size) })
		})
	}
}

func TestBackendOneWorker(t *testing.T) {
	open := openIn(tempDir, Options{Workers: 1})
	handlertest.TestBackend(t, func(t *testing.T, size int64) handler.Backend { return open(t, size) })
}

func BenchmarkBackend(b *testing.B) {
	b.Run("tempdir", func(b *testing.B) { handlertest.BenchmarkBackend(b, openIn(tempDir, Options{})) })
	b.Run("tmpfs", func(b *testing.B) { handlertest.BenchmarkBackend(b, openIn(shmDir, Options{})) })
}

// BenchmarkWorkers is the measurement behind DefaultWorkers.
func BenchmarkWorkers(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8, 16} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			handlertest.BenchmarkBackend(b, openIn(tempDir, Options{Workers: n}))
		})
	}
}

// ioRunner submits IOs one at a time and waits for each, without
// allocating.
type ioRunner struct {
	be    handler.Backend
	io    *handler.IO
	done  chan error
	timer *time.Timer
}

var errNoDone = errors.New("no Done within a minute")

func newRunner(be handler.Backend) *ioRunner {
	r := &ioRunner{be: be, done: make(chan error, 1), timer: time.NewTimer(time.Hour)}
	r.io = handler.NewIO(func(_ *handler.IO, err error) { r.done <- err })
	return r
}

func (r *ioRunner) do(op handler.Op, off, n int64, iov [][]byte, fua bool) error {
	r.io.Op, r.io.Off, r.io.Len, r.io.Iov, r.io.FUA = op, off, n, iov, fua
	r.timer.Reset(time.Minute)
	r.be.Submit(r.io)
	select {
	case err := <-r.done:
		return err
	case <-r.timer.C:
		return errNoDone
	}
}

func mmapped(tb testing.TB, n int) []byte {
	tb.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(b) })
	return b
}

func openTemp(t *testing.T, size int64, opts Options) (*Backend, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	b, err := Open(handler.DeviceInfo{Config: path, Size: size, BlockSize: 512}, opts, zerolog.Nop())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b, path
}

// TestNoAllocationsPerIO: steady-state IO must not allocate (issue 7),
// counted across all goroutines, the workers' included.
func TestNoAllocationsPerIO(t *testing.T) {
	b, _ := openTemp(t, 16<<20, Options{Workers: 2})
	r := newRunner(b)
	buf := mmapped(t, 8192)
	many := make([][]byte, 16) // more than x/sys keeps on the stack
	for i := range many {
		many[i] = buf[i*512 : (i+1)*512]
	}
	tests := []struct {
		name   string
		op     handler.Op
		off, n int64
		iov    [][]byte
		fua    bool
	}{
		{"read", handler.OpRead, 4096, 4096, [][]byte{buf[:4096]}, false},
		{"write", handler.OpWrite, 4096, 4096, [][]byte{buf[:4096]}, false},
		{"write_16_iovecs", handler.OpWrite, 8192, 8192, many, false},
		{"read_16_iovecs", handler.OpRead, 8192, 8192, many, false},
		{"fua_write", handler.OpWrite, 4096, 4096, [][]byte{buf[:4096]}, true},
		{"flush", handler.OpFlush, 0, 0, nil, false},
		{"write_same", handler.OpWriteSame, 1 << 20, 64 << 10, [][]byte{buf[:512]}, false},
		{"compare_and_write_miscompare", handler.OpCompareAndWrite, 0, 512, [][]byte{buf[:1024]}, false},
		{"discard", handler.OpDiscard, 2 << 20, 64 << 10, nil, false},
	}
	buf[0] = 1 // differs from the never-written block 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			allocs := testing.AllocsPerRun(50, func() {
				if e := r.do(tt.op, tt.off, tt.n, tt.iov, tt.fua); e != nil && !errors.Is(e, syscall.EILSEQ) {
					err = e
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if allocs != 0 {
				t.Errorf("%s allocates %.1f times per IO, want 0", tt.name, allocs)
			}
		})
	}
}

func TestCloseStopsWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	b, _ := openTemp(t, 1<<20, Options{Workers: 16})
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before Open", n, before)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	r := newRunner(b)
	if err := r.do(handler.OpFlush, 0, 0, nil, false); !errors.Is(err, syscall.ENXIO) {
		t.Errorf("flush after Close: %v, want ENXIO", err)
	}
}

// TestFallbacks forces the paths taken on files that refuse
// pwritev2(RWF_DSYNC) or hole punching.
func TestFallbacks(t *testing.T) {
	b, path := openTemp(t, 4<<20, Options{})
	b.noDSync.Store(true)
	b.noPunch.Store(true)
	r := newRunner(b)
	buf := mmapped(t, 1<<20)
	for i := range buf {
		buf[i] = byte(i%251) + 1
	}
	if err := r.do(handler.OpWrite, 0, 1<<20, [][]byte{buf}, true); err != nil {
		t.Fatalf("FUA write with pwritev and fdatasync: %v", err)
	}
	if err := r.do(handler.OpDiscard, 4096, 8192, nil, false); err != nil {
		t.Fatalf("discard by writing zeros: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1 << 20 {
		want := buf[i]
		if i >= 4096 && i < 4096+8192 {
			want = 0
		}
		if data[i] != want {
			t.Fatalf("byte %d of the file is %#x, want %#x", i, data[i], want)
		}
	}
}

// TestReadPastEndOfFile: a file truncated under a running device reads
// as zeros beyond its end, like the holes of a sparse file.
func TestReadPastEndOfFile(t *testing.T) {
	b, path := openTemp(t, 1<<20, Options{})
	r := newRunner(b)
	buf := mmapped(t, 8192)
	for i := range buf {
		buf[i] = 0xee
	}
	if err := r.do(handler.OpWrite, 0, 8192, [][]byte{buf}, false); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 4096+512); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 0x11
	}
	if err := r.do(handler.OpRead, 0, 8192, [][]byte{buf[:1024], buf[1024:]}, false); err != nil {
		t.Fatalf("read across the end of the file: %v", err)
	}
	for i, c := range buf {
		want := byte(0xee)
		if i >= 4096+512 {
			want = 0
		}
		if c != want {
			t.Fatalf("byte %d is %#x, want %#x", i, c, want)
		}
	}
}

// TestWriteSameBlockLargerThanScratch covers a malformed WRITE SAME whose
// block is larger than a worker's scratch buffer.
func TestWriteSameBlockLargerThanScratch(t *testing.T) {
	b, path := openTemp(t, 4<<20, Options{Workers: 1})
	r := newRunner(b)
	block := mmapped(t, scratchSize+4096)
	for i := range block {
		block[i] = byte(i % 253)
	}
	n := int64(2*len(block) + 4096)
	if err := r.do(handler.OpWriteSame, 512, n, [][]byte{block}, false); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if want := block[i%int64(len(block))]; data[512+i] != want {
			t.Fatalf("byte %d of the range is %#x, want %#x", i, data[512+i], want)
		}
	}
}

// TestFaultingIovecFailsTheIO: an iovec over memory that faults (a data
// area page no command refers to) fails the IO with EFAULT, whether the
// kernel touches it (preadv) or the worker does (WRITE SAME, COMPARE AND
// WRITE), and the workers keep serving.
func TestFaultingIovecFailsTheIO(t *testing.T) {
	b, _ := openTemp(t, 4<<20, Options{Workers: 1})
	r := newRunner(b)
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
			if err := r.do(tt.op, 1<<20, tt.n, tt.iov, false); !errors.Is(err, syscall.EFAULT) {
				t.Fatalf("%s through a faulting iovec: %v, want EFAULT", tt.name, err)
			}
		})
	}
	good := mmapped(t, 512)
	if err := r.do(handler.OpWrite, 0, 512, [][]byte{good}, false); err != nil {
		t.Fatalf("write after the faults: %v", err)
	}
}
