//go:build !nautilus

package rbd

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gotcmu/gotcmu/handler"
)

func TestOpenReportsLimits(t *testing.T) {
	needCeph(t)
	const size = 64 << 20
	name := newImage(t, "rbd", size, 22)
	im := openDevice(t, Handler(Options{}), "rbd/"+name+";osd_op_timeout=30", size)
	got := im.Limits()
	want := handler.Limits{
		Discard: true, DiscardZeroes: true, WriteSame: true, CompareAndWrite: true,
		// rbd_discard_granularity_bytes defaults to 64 KiB.
		DiscardGranularity: 64 << 10, DiscardAlignment: 64 << 10,
		MaxDiscardBytes: 16 << 20, MaxWriteSameBytes: 16 << 20,
		StableWrites: true,
	}
	if got != want {
		t.Errorf("Limits() = %+v, want %+v", got, want)
	}
	if im.Size() != size || im.ObjectSize() != 4<<20 {
		t.Errorf("Size, ObjectSize = %d, %d; want %d, %d", im.Size(), im.ObjectSize(), size, 4<<20)
	}
	if err := im.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := im.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := do(im, handler.OpFlush, 0, 0, false); !errors.Is(err, syscall.ESHUTDOWN) {
		t.Errorf("flush after Close: %v, want ESHUTDOWN", err)
	}
}

func TestReadWriteRoundTrip(t *testing.T) {
	needCeph(t)
	const size = 16 << 20
	name := newImage(t, "rbd", size, 20)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)

	buf := mmapBuf(t, 3<<20)
	for i := range buf {
		buf[i] = byte(i*7 + i>>12)
	}
	// Across an object boundary (1 MiB objects), in 4 KiB iovecs.
	const off = 1<<20 - 8192
	if _, err := do(im, handler.OpWrite, off, int64(len(buf)), true, split(buf, 4096)...); err != nil {
		t.Fatalf("FUA write: %v", err)
	}
	if _, err := do(im, handler.OpFlush, 0, 0, false); err != nil {
		t.Fatalf("flush: %v", err)
	}
	got := mmapBuf(t, len(buf))
	if _, err := do(im, handler.OpRead, off, int64(len(got)), false, split(got, 12288)...); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, buf) {
		t.Fatal("read data differs from written data")
	}
}

func TestSubmitRefusesMalformedIO(t *testing.T) {
	needCeph(t)
	const size = 4 << 20
	name := newImage(t, "rbd", size, 22)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)
	buf := mmapBuf(t, 8192)
	tests := []struct {
		name    string
		op      handler.Op
		off, ln int64
		iov     [][]byte
	}{
		{"read_beyond_end", handler.OpRead, size - 4096, 8192, [][]byte{buf}},
		{"negative_offset", handler.OpWrite, -512, 512, [][]byte{buf[:512]}},
		{"iovecs_shorter_than_length", handler.OpWrite, 0, 8192, [][]byte{buf[:4096]}},
		{"iovecs_longer_than_length", handler.OpRead, 0, 4096, [][]byte{buf}},
		{"write_same_pattern_not_tiling", handler.OpWriteSame, 0, 1000, [][]byte{buf[:512]}},
		{"write_same_empty_pattern", handler.OpWriteSame, 0, 4096, nil},
		{"compare_and_write_half_data", handler.OpCompareAndWrite, 0, 512, [][]byte{buf[:512]}},
		{"discard_beyond_end", handler.OpDiscard, size, 4096, nil},
		{"unknown_op", handler.Op(99), 0, 512, [][]byte{buf[:512]}},
		{"too_many_iovecs", handler.OpRead, 0, maxIovecs + 1, split(buf[:maxIovecs+1], 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := do(im, tt.op, tt.off, tt.ln, false, tt.iov...); !errors.Is(err, syscall.EINVAL) {
				t.Errorf("got %v, want EINVAL", err)
			}
		})
	}
}

// TestQueueDepth128MixedVerified keeps 128 IOs in flight, reads and writes
// of random sizes split into data-area-like iovecs, and checks every read
// against a model. Each of the 128 lanes owns a slice of the image, so the
// model is exact although IOs in flight are unordered.
func TestQueueDepth128MixedVerified(t *testing.T) {
	needCeph(t)
	const (
		lanes    = 128
		laneSize = 512 << 10
		size     = lanes * laneSize
		ioCount  = 40 // per lane
		maxIO    = 128 << 10
	)
	name := newImage(t, "rbd", size, 22)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)
	model := make([]byte, size)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, lanes)
	var bytesMoved [lanes]int64
	for lane := 0; lane < lanes; lane++ {
		buf := mmapBuf(t, maxIO)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(lane), 42))
			base := int64(lane * laneSize)
			for i := 0; i < ioCount; i++ {
				n := int64(rng.IntN(maxIO/512)+1) * 512
				off := base + int64(rng.IntN(int(laneSize-n)/512+1))*512
				b := buf[:n]
				iov := split(b, 4096<<rng.IntN(4))
				if rng.IntN(2) == 0 {
					for j := range b {
						b[j] = byte(rng.Uint32())
					}
					if _, err := do(im, handler.OpWrite, off, n, rng.IntN(8) == 0, iov...); err != nil {
						errs <- err
						return
					}
					copy(model[off:], b)
				} else {
					if _, err := do(im, handler.OpRead, off, n, false, iov...); err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(b, model[off:off+n]) {
						errs <- errors.New("read data differs from the model")
						return
					}
				}
				bytesMoved[lane] += n
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	var total int64
	for _, n := range bytesMoved {
		total += n
	}
	t.Logf("%d IOs at QD %d in %v: %.0f IOPS, %.1f MiB/s", lanes*ioCount, lanes, elapsed,
		float64(lanes*ioCount)/elapsed.Seconds(), float64(total)/elapsed.Seconds()/(1<<20))

	all := mmapBuf(t, size)
	if _, err := do(im, handler.OpRead, 0, size, false, split(all, 1<<20)...); err != nil {
		t.Fatalf("read whole image: %v", err)
	}
	if !bytes.Equal(all, model) {
		t.Fatal("image content differs from the model")
	}
}
