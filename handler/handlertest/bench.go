package handlertest

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/gotcmu/gotcmu/handler"
)

// benchSize is the device the benchmarks use: larger than CPU caches, small
// enough to pre-fill in a moment.
const benchSize = 64 << 20

// BenchmarkBackend measures 4 KiB random reads and writes at queue depth 1
// and 32, as sub-benchmarks named for benchstat (read4k/qd1, ...). One
// benchmark op is one IO; b.SetBytes makes MB/s comparable and
// b.ReportAllocs shows allocations per IO across every goroutine,
// including the backend's own.
//
// open is called once per sub-benchmark with a device size; the benchmark
// writes the whole device first, so reads find data, and closes the
// backend at the end.
func BenchmarkBackend(b *testing.B, open func(tb testing.TB, size int64) handler.Backend) {
	for _, op := range []struct {
		name string
		op   handler.Op
	}{{"read4k", handler.OpRead}, {"write4k", handler.OpWrite}} {
		for _, qd := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/qd%d", op.name, qd), func(b *testing.B) {
				benchIO(b, open, op.op, qd)
			})
		}
	}
}

func benchIO(b *testing.B, open func(tb testing.TB, size int64) handler.Backend, op handler.Op, qd int) {
	be := open(b, benchSize)
	buf := newArena(b, qd*4096+(1<<20))
	prefill(b, be, buf.alloc(b, 1<<20))

	completed := make(chan *handler.IO, qd)
	var failed atomic.Pointer[error]
	ios := make([]*handler.IO, qd)
	for i := range ios {
		ios[i] = handler.NewIO(func(io *handler.IO, err error) {
			if err != nil {
				// A copy, so that only a failing IO puts an
				// error on the heap.
				e := err
				failed.CompareAndSwap(nil, &e)
			}
			completed <- io
		})
		ios[i].Op, ios[i].Len = op, 4096
		ios[i].Iov = [][]byte{buf.alloc(b, 4096)}
	}
	// xorshift: a random offset per IO without allocating or locking.
	state := uint64(0x9e3779b97f4a7c15)
	next := func(io *handler.IO) {
		state ^= state << 13
		state ^= state >> 7
		state ^= state << 17
		io.Off = int64(state%(benchSize/4096)) * 4096
	}

	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	issued := 0
	for ; issued < qd && issued < b.N; issued++ {
		next(ios[issued])
		be.Submit(ios[issued])
	}
	for range b.N {
		io := <-completed
		if issued < b.N {
			next(io)
			be.Submit(io)
			issued++
		}
	}
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatalf("IO failed: %v", *err)
	}
	if err := be.Close(); err != nil {
		b.Fatalf("close: %v", err)
	}
}

// prefill writes the whole benchmark device through one 1 MiB buffer.
func prefill(b *testing.B, be handler.Backend, buf []byte) {
	b.Helper()
	fill([][]byte{buf}, 0, 1)
	done := make(chan error, 1)
	io := handler.NewIO(func(_ *handler.IO, err error) { done <- err })
	for off := int64(0); off < benchSize; off += int64(len(buf)) {
		io.Op, io.Off, io.Len, io.Iov = handler.OpWrite, off, int64(len(buf)), [][]byte{buf}
		be.Submit(io)
		if err := <-done; err != nil {
			b.Fatalf("prefill at %d: %v", off, err)
		}
	}
}
