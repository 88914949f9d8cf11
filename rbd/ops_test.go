//go:build !nautilus

package rbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cephrbd "github.com/ceph/go-ceph/rbd"

	"github.com/gotcmu/gotcmu/handler"
)

func fill(b []byte, v byte) []byte {
	for i := range b {
		b[i] = v
	}
	return b
}

func readBack(t *testing.T, b handler.Backend, off, n int64) []byte {
	t.Helper()
	buf := mmapBuf(t, int(n))
	if _, err := do(b, handler.OpRead, off, n, false, split(buf, 4096)...); err != nil {
		t.Fatalf("read %d+%d: %v", off, n, err)
	}
	return buf
}

func TestCompareAndWrite(t *testing.T) {
	needCeph(t)
	const size = 8 << 20
	name := newImage(t, "rbd", size, 22)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)

	// librbd 16 compares at most one 512-byte sector (ImageRequest.cc
	// ImageCompareAndWriteRequest::prune_object_extents).
	const off, blk = 3<<20 + 4096 + 512, 512
	old := fill(mmapBuf(t, blk), 'a')
	if _, err := do(im, handler.OpWrite, off, blk, false, old); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		cmpAt        int  // index of a byte that differs from the image, -1 for none
		splitIov     bool // compare and write data over several iovecs (bounce path)
		wantMismatch bool
	}{
		{"match_writes", -1, false, false},
		{"match_writes_split_iovecs", -1, true, false},
		{"miscompare_at_first_byte", 0, false, true},
		{"miscompare_reports_offset", 300, false, true},
		{"miscompare_split_iovecs", 511, true, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := readBack(t, im, off, blk)
			data := mmapBuf(t, 2*blk)
			copy(data, cur)
			if tt.cmpAt >= 0 {
				data[tt.cmpAt] ^= 0xff
			}
			fill(data[blk:], byte('b'+i))
			iov := [][]byte{data}
			if tt.splitIov {
				iov = split(data, 100)
			}
			io, err := do(im, handler.OpCompareAndWrite, off, blk, false, iov...)
			after := readBack(t, im, off, blk)
			if !tt.wantMismatch {
				if err != nil {
					t.Fatalf("compare and write: %v", err)
				}
				if !bytes.Equal(after, data[blk:]) {
					t.Fatal("image does not hold the written data")
				}
				return
			}
			if !errors.Is(err, syscall.EILSEQ) {
				t.Fatalf("compare and write: %v, want EILSEQ", err)
			}
			if io.MiscompareOffset != int64(tt.cmpAt) {
				t.Errorf("MiscompareOffset = %d, want %d", io.MiscompareOffset, tt.cmpAt)
			}
			if !bytes.Equal(after, cur) {
				t.Error("miscompare changed the image")
			}
		})
	}
}

// TestCompareAndWriteIsAtomic increments a counter in one sector from 8
// workers with compare-and-write only: a lost update would show as a final
// count below workers*increments.
func TestCompareAndWriteIsAtomic(t *testing.T) {
	needCeph(t)
	const (
		size       = 4 << 20
		off        = 1<<20 - 512
		workers    = 8
		increments = 25
	)
	name := newImage(t, "rbd", size, 20)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)
	var wg sync.WaitGroup
	var retries atomic.Int64
	for w := 0; w < workers; w++ {
		buf := mmapBuf(t, 3*512)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cur, data := buf[:512], buf[512:]
			for i := 0; i < increments; {
				if _, err := do(im, handler.OpRead, off, 512, false, cur); err != nil {
					t.Error(err)
					return
				}
				copy(data, cur)
				n := binary.LittleEndian.Uint64(cur)
				binary.LittleEndian.PutUint64(data[512:], n+1)
				_, err := do(im, handler.OpCompareAndWrite, off, 512, false, data)
				switch {
				case errors.Is(err, syscall.EILSEQ):
					retries.Add(1)
				case err != nil:
					t.Error(err)
					return
				default:
					i++
				}
			}
		}()
	}
	wg.Wait()
	got := binary.LittleEndian.Uint64(readBack(t, im, off, 512))
	t.Logf("%d increments with %d miscompare retries", got, retries.Load())
	if got != workers*increments {
		t.Errorf("counter = %d, want %d", got, workers*increments)
	}
}

func TestCompareAndWriteBeyondOneSector(t *testing.T) {
	needCeph(t)
	const size = 4 << 20
	name := newImage(t, "rbd", size, 22)
	h := Handler(Options{})
	im := openDevice(t, h, "rbd/"+name, size)
	if !im.Limits().CompareAndWrite {
		t.Error("512-byte device: CompareAndWrite not native")
	}
	data := mmapBuf(t, 2*4096)
	if _, err := do(im, handler.OpCompareAndWrite, 4096, 4096, false, data); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("4 KiB compare and write: %v, want EINVAL", err)
	}
	if _, err := do(im, handler.OpCompareAndWrite, 256, 512, false, data[:1024]); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("compare and write across a sector boundary: %v, want EINVAL", err)
	}
	im.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := h.Open(ctx, handler.DeviceInfo{Name: "dev4k", Config: "rbd/" + name, Size: size, BlockSize: 4096}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Limits().CompareAndWrite {
		t.Error("4 KiB-block device: CompareAndWrite native, but librbd cannot compare a whole block")
	}
}

func TestDiscardThenReadZeros(t *testing.T) {
	needCeph(t)
	const size, obj = 16 << 20, 1 << 20
	name := newImage(t, "rbd", size, 20)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)
	data := fill(mmapBuf(t, 6*obj), 0x5a)
	if _, err := do(im, handler.OpWrite, 0, 6*obj, false, split(data, 64<<10)...); err != nil {
		t.Fatal(err)
	}
	gran := int64(im.Limits().DiscardGranularity)
	tests := []struct {
		name    string
		off, ln int64
	}{
		{"one_512_byte_block", 5*obj + 512, 512},
		{"unaligned_run_below_granularity", 5*obj + 8192 + 512, 37 * 512},
		{"whole_object", obj, obj},
		{"granules_inside_an_object", 2*obj + gran, 3 * gran},
		{"across_objects", obj/2 + 2*obj, obj},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := do(im, handler.OpDiscard, tt.off, tt.ln, false); err != nil {
				t.Fatalf("discard: %v", err)
			}
			if got := readBack(t, im, tt.off, tt.ln); !bytes.Equal(got, make([]byte, tt.ln)) {
				t.Error("discarded range does not read back as zeros")
			}
			// The blocks just before and after the range are untouched
			// (rbd_skip_partial_discard is off: librbd zeroes exactly the
			// range, no more, no less).
			for _, at := range []int64{tt.off - 512, tt.off + tt.ln} {
				if got := readBack(t, im, at, 512); !bytes.Equal(got, data[:512]) {
					t.Errorf("block at %d next to the discarded range changed", at)
				}
			}
		})
	}
	if got := readBack(t, im, 0, gran); !bytes.Equal(got, data[:gran]) { // never discarded
		t.Error("data outside every discarded range changed")
	}
}

func TestWriteSame(t *testing.T) {
	needCeph(t)
	const size = 8 << 20
	name := newImage(t, "rbd", size, 22)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)
	tests := []struct {
		name     string
		off, ln  int64
		pattern  int
		splitIov bool
	}{
		{"512_byte_block_over_1MiB", 4096, 1 << 20, 512, false},
		{"4k_block_across_objects", 4<<20 - 8192, 64 << 10, 4096, false},
		{"pattern_split_over_iovecs", 1 << 20, 32 << 10, 4096, true},
		{"zeros", 2 << 20, 128 << 10, 4096, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pat := mmapBuf(t, tt.pattern)
			if tt.name != "zeros" {
				for j := range pat {
					pat[j] = byte(j + i)
				}
			}
			iov := [][]byte{pat}
			if tt.splitIov {
				iov = split(pat, 1000)
			}
			if _, err := do(im, handler.OpWriteSame, tt.off, tt.ln, false, iov...); err != nil {
				t.Fatalf("write same: %v", err)
			}
			got := readBack(t, im, tt.off, tt.ln)
			for o := 0; o < len(got); o += tt.pattern {
				if !bytes.Equal(got[o:o+tt.pattern], pat) {
					t.Fatalf("block at %d does not hold the pattern", o)
				}
			}
		})
	}
}

func TestResize(t *testing.T) {
	admin := needCeph(t)
	const size = 8 << 20
	name := newImage(t, "rbd", size, 22)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)
	ioctx, err := admin.OpenIOContext("rbd")
	if err != nil {
		t.Fatal(err)
	}
	defer ioctx.Destroy()
	imageSize := func() int64 {
		img, err := cephrbd.OpenImageReadOnly(ioctx, name, cephrbd.NoSnapshot)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		n, err := img.GetSize()
		if err != nil {
			t.Fatal(err)
		}
		return int64(n)
	}
	rbdResize := func(n int64) {
		img, err := cephrbd.OpenImage(ioctx, name, cephrbd.NoSnapshot)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		if err := img.Resize(uint64(n)); err != nil {
			t.Fatalf("rbd resize: %v", err)
		}
	}
	data := fill(mmapBuf(t, 4096), 'r')
	tests := []struct {
		name      string
		rbdFirst  int64 // resize the image with rbd first, as ceph-iscsi does
		size      int64
		wantErr   string
		wantImage int64
	}{
		{"image_resized_first", 16 << 20, 16 << 20, "", 16 << 20},
		{"device_grows_the_image", 0, 24 << 20, "", 24 << 20},
		{"shrink_refused", 0, 12 << 20, "shrink the image first", 24 << 20},
		{"image_shrunk_first", 12 << 20, 12 << 20, "", 12 << 20},
		{"negative_refused", 0, -512, "invalid argument", 12 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := im.Size()
			if tt.rbdFirst != 0 {
				rbdResize(tt.rbdFirst)
			}
			err := im.Resize(tt.size)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Resize(%d): %v", tt.size, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Resize(%d) = %v, want an error saying %q", tt.size, err, tt.wantErr)
			case tt.wantErr != "" && im.Size() != before:
				t.Errorf("refused Resize changed Size() from %d to %d", before, im.Size())
			}
			if got := imageSize(); got != tt.wantImage {
				t.Errorf("image is %d bytes, want %d", got, tt.wantImage)
			}
			if tt.wantErr != "" {
				return
			}
			if im.Size() != tt.size {
				t.Errorf("Size() = %d, want %d", im.Size(), tt.size)
			}
			end := tt.size - 4096
			if _, err := do(im, handler.OpWrite, end, 4096, false, data); err != nil {
				t.Fatalf("write at the new end: %v", err)
			}
			if !bytes.Equal(readBack(t, im, end, 4096), data) {
				t.Error("data at the new end not read back")
			}
			if _, err := do(im, handler.OpRead, tt.size, 4096, false, data); !errors.Is(err, syscall.EINVAL) {
				t.Errorf("read beyond the new end: %v, want EINVAL", err)
			}
		})
	}
}

func TestLBAStatus(t *testing.T) {
	needCeph(t)
	const size, obj = 16 << 20, 1 << 20
	name := newImage(t, "rbd", size, 20)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)
	ctx := context.Background()
	data := fill(mmapBuf(t, 2*obj), 1)
	if _, err := do(im, handler.OpWrite, 3*obj, 2*obj, false, data); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		off, ln    int64
		wantMapped bool
		wantExtent int64
	}{
		{"unmapped_up_to_first_write", 0, size, false, 3 * obj},
		{"mapped_run", 3 * obj, size - 3*obj, true, 2 * obj},
		{"mapped_clipped_to_length", 3*obj + 4096, 8192, true, 8192},
		{"unmapped_after_writes", 5 * obj, 4 * obj, false, 4 * obj},
		// Runs that end past Status's first objects, and inside one.
		{"unmapped_to_the_end", 5 * obj, size - 5*obj, false, size - 5*obj},
		{"unmapped_from_mid_object", 512, size, false, 3*obj - 512},
		{"mapped_ends_mid_object", 3*obj + obj/2, size, true, obj + obj/2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mapped, extent, err := im.Status(ctx, tt.off, tt.ln)
			if err != nil {
				t.Fatal(err)
			}
			if mapped != tt.wantMapped || extent != tt.wantExtent {
				t.Errorf("Status(%d, %d) = %v, %d; want %v, %d", tt.off, tt.ln, mapped, extent, tt.wantMapped, tt.wantExtent)
			}
		})
	}
	if _, err := do(im, handler.OpDiscard, 3*obj, obj, false); err != nil {
		t.Fatal(err)
	}
	if mapped, extent, err := im.Status(ctx, 3*obj, size-3*obj); err != nil || mapped || extent != obj {
		t.Errorf("Status after discarding an object = %v, %d, %v; want false, %d", mapped, extent, err, obj)
	}
	// An object deallocated between two mapped ones: each run ends at an
	// object boundary, and the first inside the object Status asks first.
	if _, err := do(im, handler.OpWrite, 10*obj, 3*obj, false, fill(mmapBuf(t, 3*obj), 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := do(im, handler.OpDiscard, 11*obj, obj, false); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		off        int64
		wantMapped bool
		wantExtent int64
	}{{10 * obj, true, obj}, {10*obj + 512, true, obj - 512}, {11 * obj, false, obj}, {12 * obj, true, obj}, {9 * obj, false, obj}} {
		if mapped, extent, err := im.Status(ctx, q.off, size-q.off); err != nil || mapped != q.wantMapped || extent != q.wantExtent {
			t.Errorf("Status(%d) with object 11 discarded = %v, %d, %v; want %v, %d", q.off, mapped, extent, err, q.wantMapped, q.wantExtent)
		}
	}
	if _, _, err := im.Status(ctx, size, 512); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Status beyond the end: %v, want EINVAL", err)
	}
}

func TestFirstRun(t *testing.T) {
	tests := []struct {
		name       string
		off, ln    int64
		exts       []extent
		wantMapped bool
		wantN      int64
	}{
		{"none", 0, 100, nil, false, 100},
		{"unmapped_until_extent", 0, 100, []extent{{40, 60}}, false, 40},
		{"inside_extent", 50, 100, []extent{{40, 60}}, true, 10},
		{"adjacent_extents_merge_out_of_order", 0, 100, []extent{{30, 50}, {0, 30}}, true, 50},
		{"clipped_to_length", 0, 10, []extent{{0, 50}}, true, 10},
		{"extent_before_off_ignored", 60, 40, []extent{{0, 50}, {80, 90}}, false, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mapped, n := firstRun(tt.off, tt.ln, tt.exts)
			if mapped != tt.wantMapped || n != tt.wantN {
				t.Errorf("firstRun = %v, %d; want %v, %d", mapped, n, tt.wantMapped, tt.wantN)
			}
		})
	}
}

// BenchmarkLBAStatus is one GET LBA STATUS's query as libiscsi's
// GetLBAStatus tests make them: from one of the first 256 blocks of a
// 256 MiB image with 4 MiB objects whose first 8 MiB are written, to the
// end of the image.
func BenchmarkLBAStatus(b *testing.B) {
	needCeph(b)
	const size = 256 << 20
	name := newImage(b, "rbd", size, 22)
	im := openDevice(b, Handler(Options{}), "rbd/"+name, size)
	buf := fill(mmapBuf(b, 1<<20), 3)
	for off := int64(0); off < 8<<20; off += 1 << 20 {
		if _, err := do(im, handler.OpWrite, off, 1<<20, false, buf); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		off := int64(i%256) * 512
		if _, _, err := im.Status(ctx, off, size-off); err != nil {
			b.Fatal(err)
		}
	}
}
