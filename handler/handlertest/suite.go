package handlertest

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"

	"github.com/gotcmu/gotcmu/handler"
)

// suiteSize is the size of every device the suite opens: a few MiB, so
// that ranges cross the 1 MiB boundaries of chunked backends, and not a
// whole number of MiB, so that the last chunk is partial.
const suiteSize = 6<<20 + 7*512

// TestBackend runs the conformance suite against the backend that open
// returns. Each subtest calls open once, with its own *testing.T, and
// closes the backend itself when its IO is done; open must return a
// backend over size bytes of fresh storage (never written: reads as
// zeros), with 512-byte blocks, and must not close it.
//
// The suite checks what handler/backend.go promises the handler: data
// round trips through any iovec layout; concurrent Submits; FUA and Flush;
// Discard, WriteSame and CompareAndWrite when Limits says they are native;
// LBAStatuser and Resizer when implemented; an error that keeps its errno,
// never a panic, for any range outside the device or an iovec list shorter
// than the IO; Done exactly once for every Submit; Close once IO is done.
//
// A feature the backend does not claim is skipped with the reason.
func TestBackend(t *testing.T, open func(t *testing.T, size int64) handler.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *session)
	}{
		{"fresh_device_reads_zeros", testFreshZeros},
		{"write_read_round_trip", testRoundTrip},
		{"concurrent_queue_depth_64", testConcurrent},
		{"fua_write", testFUA},
		{"flush", testFlush},
		{"discard", testDiscard},
		{"write_same", testWriteSame},
		{"compare_and_write", testCompareAndWrite},
		{"compare_and_write_is_atomic", testCompareAndWriteAtomic},
		{"out_of_range", testOutOfRange},
		{"lba_status", testLBAStatus},
		{"resize", testResize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, open, suiteSize)
			// Close even when the subtest fails, and check every
			// Done then.
			defer s.close()
			tt.fn(t, s)
		})
	}
}

func testFreshZeros(t *testing.T, s *session) {
	s.verifyAll("read of a never-written device")
}

func testRoundTrip(t *testing.T, s *session) {
	repeat := func(n, l int) []int {
		lens := make([]int, n)
		for i := range lens {
			lens[i] = l
		}
		return lens
	}
	tests := []struct {
		name string
		off  int64
		lens []int
	}{
		{"one_block_at_start", 0, []int{512}},
		{"4k_one_iovec", 4096, []int{4096}},
		{"unaligned_offset_many_512_byte_iovecs", 3 * 512, repeat(64, 512)},
		{"uneven_split", 11 * 512, []int{512, 1536, 3072, 512, 2048}},
		{"crossing_1MiB_boundary", 1<<20 - 2048, []int{1024, 3072, 4096}},
		{"128k_in_4k_iovecs", 2<<20 + 512, repeat(32, 4096)},
		{"more_iovecs_than_IOV_MAX", 3 << 20, repeat(1100, 512)},
		{"large_iovec_across_chunks", 4<<20 - 512, []int{1<<20 + 1024}},
		{"last_block", suiteSize - 512, []int{512}},
		{"end_of_device", suiteSize - 65536, []int{65536}},
		{"overwrite_inside_earlier_write", 3<<20 + 512*100, []int{512, 1024}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.t = t
			s.buf.reset()
			s.write(tt.off, i+1, false, tt.lens...)
			n := sum(tt.lens)
			s.read("same layout", tt.off, tt.lens...)
			s.read("one iovec", tt.off, n)
			if n >= 1024 {
				s.read("split at a 512-byte boundary", tt.off, 512, n-512)
			}
		})
	}
	s.t = t
	s.verifyAll("whole device after the writes")
}

// testConcurrent keeps 64 IOs in flight, submitted from 8 goroutines, on
// disjoint 64 KiB slots: first writes, then reads and writes at once.
func testConcurrent(t *testing.T, s *session) {
	const (
		slots     = 64
		slotSize  = 64 << 10
		producers = 8
	)
	rng := rand.New(rand.NewPCG(1, 2))
	type job struct {
		op  handler.Op
		off int64
		iov [][]byte
	}
	run := func(jobs []job) {
		var wg sync.WaitGroup
		calls := make([]*call, len(jobs))
		for p := range producers {
			wg.Go(func() {
				for i := p; i < len(jobs); i += producers {
					j := jobs[i]
					calls[i] = s.start(j.op, j.off, handler.IovLen(j.iov), j.iov, false)
				}
			})
		}
		wg.Wait()
		for i, c := range calls {
			if err := c.wait(t); err != nil {
				t.Fatalf("%s: %v", describe(c.io), err)
			}
			if jobs[i].op == handler.OpRead {
				s.check("concurrent read", jobs[i].off, gather(jobs[i].iov))
			}
		}
	}
	randomWrite := func(slot, gen int) job {
		blocks := 1 + rng.IntN(slotSize/512)
		start := rng.IntN(slotSize/512 - blocks + 1)
		off := int64(slot*slotSize + start*512)
		// Split the data over up to 4 iovecs at 512-byte boundaries.
		lens := splitLens(rng, blocks*512)
		iov := s.iov(lens...)
		fill(iov, off, gen)
		return job{op: handler.OpWrite, off: off, iov: iov}
	}

	writes := make([]job, slots)
	for i := range writes {
		writes[i] = randomWrite(i, 1)
	}
	run(writes)
	for _, j := range writes {
		s.record(j.off, gather(j.iov))
	}
	s.buf.reset()

	var mixed []job
	for i := range slots {
		if i%2 == 0 {
			mixed = append(mixed, job{op: handler.OpRead, off: int64(i * slotSize), iov: s.iov(splitLens(rng, slotSize)...)})
		} else {
			mixed = append(mixed, randomWrite(i, 2))
		}
	}
	run(mixed)
	for _, j := range mixed {
		if j.op == handler.OpWrite {
			s.record(j.off, gather(j.iov))
		}
	}
	s.verifyAll("whole device after concurrent IO")
}

// splitLens splits n bytes into 1-4 segments at 512-byte boundaries.
func splitLens(rng *rand.Rand, n int) []int {
	var lens []int
	for parts := 1 + rng.IntN(4); parts > 1 && n > 512; parts-- {
		l := 512 * (1 + rng.IntN(n/512))
		if l >= n {
			break
		}
		lens = append(lens, l)
		n -= l
	}
	return append(lens, n)
}

func testFUA(t *testing.T, s *session) {
	s.write(512*17, 1, true, 4096)
	s.write(1<<20-512, 1, true, 512, 1024)
	s.read("after FUA writes", 0, 2<<20)
}

func testFlush(t *testing.T, s *session) {
	if err := s.do(handler.OpFlush, 0, 0, nil, false); err != nil {
		t.Fatalf("flush of a fresh device: %v", err)
	}
	s.write(4096, 1, false, 8192)
	if err := s.do(handler.OpFlush, 0, 0, nil, false); err != nil {
		t.Fatalf("flush after a write: %v", err)
	}
	s.read("after flush", 0, 1<<20)
}

func testDiscard(t *testing.T, s *session) {
	if !s.lim.Discard {
		t.Skip("backend does not claim Discard")
	}
	s.fillAll(1)
	tests := []struct {
		name   string
		off, n int64
	}{
		{"one_block", 512 * 9, 512},
		{"unaligned_run", 512 * 21, 512 * 37},
		{"whole_aligned_MiB", 1 << 20, 1 << 20},
		{"crossing_MiB_boundaries", 3<<20 - 4096, 1<<20 + 8192},
		{"to_end_of_device", suiteSize - 70*512, 70 * 512},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.t = t
			s.mustDo(handler.OpDiscard, tt.off, tt.n, nil, false)
			if s.lim.DiscardZeroes {
				s.record(tt.off, make([]byte, tt.n))
			} else {
				s.forget(tt.off, tt.n)
			}
			s.buf.reset()
			s.read("discarded range and its neighbours", max(0, tt.off-4096), int(min(tt.n+8192, suiteSize-max(0, tt.off-4096))))
		})
	}
	s.t = t
	s.verifyAll("whole device after discards")
	// Discarded space must take writes again.
	s.buf.reset()
	s.write(1<<20+4096, 2, false, 4096)
	s.write(512*9, 2, false, 512)
	s.verifyAll("whole device after writing into discarded ranges")
}

func testWriteSame(t *testing.T, s *session) {
	if !s.lim.WriteSame {
		t.Skip("backend does not claim WriteSame")
	}
	s.fillAll(1)
	tests := []struct {
		name    string
		off, n  int64
		pattern []int // iovec lengths of the one block written repeatedly
		zero    bool
	}{
		{"one_block", 512 * 3, 512, []int{512}, false},
		{"many_blocks_unaligned", 512 * 7, 512 * 100, []int{512}, false},
		{"crossing_MiB_boundaries", 1<<20 - 512*5, 2<<20 + 512*3, []int{512}, false},
		{"4k_block", 4 << 20, 64 << 10, []int{4096}, false},
		{"4k_block_in_two_iovecs", 5<<20 + 8192, 32 << 10, []int{1024, 3072}, false},
		{"zeros_over_data", 512 * 300, 512 * 50, []int{512}, true},
		{"zeros_over_a_whole_MiB", 2 << 20, 1 << 20, []int{512}, true},
		{"to_end_of_device", suiteSize - 512*11, 512 * 11, []int{512}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.t = t
			s.buf.reset()
			iov := s.iov(tt.pattern...)
			if !tt.zero {
				fill(iov, int64(i)*7919, i+2)
			}
			s.mustDo(handler.OpWriteSame, tt.off, tt.n, iov, false)
			block := gather(iov)
			want := make([]byte, 0, tt.n)
			for int64(len(want)) < tt.n {
				want = append(want, block...)
			}
			s.record(tt.off, want)
			s.read("written range and its neighbours", max(0, tt.off-4096), int(min(tt.n+8192, suiteSize-max(0, tt.off-4096))))
		})
	}
	s.t = t
	s.verifyAll("whole device after write same")
}

// cawCase is one COMPARE AND WRITE of n bytes at off.
type cawCase struct {
	name   string
	off, n int64
	// iov gives the iovec lengths for the 2n bytes of compare and write
	// data.
	iov func(n int) []int
	// differ is the offset of the first compare byte that does not match
	// the device, or -1 for a match.
	differ int64
}

func halves(n int) []int { return []int{n, n} }

func testCompareAndWrite(t *testing.T, s *session) {
	if !s.lim.CompareAndWrite {
		t.Skip("backend does not claim CompareAndWrite")
	}
	// Never-written ranges first: sparse backends compare them with
	// zeros they do not store.
	fresh := []cawCase{
		{"match_never_written", 4 << 20, 512, halves, -1},
		{"mismatch_never_written", 5 << 20, 4096, halves, 3000},
	}
	for i, tt := range fresh {
		t.Run(tt.name, func(t *testing.T) { s.t = t; runCAW(t, s, tt, i) })
	}
	s.t = t
	s.fillAll(1)
	written := []cawCase{
		{"match_one_block", 512 * 5, 512, halves, -1},
		{"match_one_buffer", 512 * 20, 1024, func(n int) []int { return []int{2 * n} }, -1},
		{"match_split_inside_compare_data", 512 * 40, 512, func(n int) []int { return []int{300, 2*n - 300} }, -1},
		{"match_split_inside_write_data", 512 * 60, 2048, func(n int) []int { return []int{n + 512, n - 512} }, -1},
		{"match_crossing_MiB_boundary", 1<<20 - 1024, 4096, halves, -1},
		{"mismatch_first_byte", 512 * 80, 512, halves, 0},
		{"mismatch_middle", 512 * 90, 4096, halves, 1234},
		{"mismatch_last_byte", 512 * 100, 4096, halves, 4095},
		{"mismatch_after_MiB_boundary", 2<<20 - 512, 1024, halves, 512},
		{"mismatch_in_second_iovec", 512 * 120, 1024, func(n int) []int { return []int{256, 2*n - 256} }, 700},
	}
	for i, tt := range written {
		t.Run(tt.name, func(t *testing.T) { s.t = t; runCAW(t, s, tt, len(fresh)+i) })
	}
	s.t = t
	s.verifyAll("whole device after compare and write")
}

func runCAW(t *testing.T, s *session, tt cawCase, gen int) {
	s.buf.reset()
	iov := s.iov(tt.iov(int(tt.n))...)
	data := make([]byte, 2*tt.n)
	s.mu.Lock()
	copy(data, s.model[tt.off:tt.off+tt.n])
	s.mu.Unlock()
	if tt.differ >= 0 {
		data[tt.differ] ^= 0x5a
	}
	for j := tt.n; j < 2*tt.n; j++ {
		data[j] = pattern(tt.off+j-tt.n, gen+100)
	}
	scatter(iov, data)
	c := s.start(handler.OpCompareAndWrite, tt.off, tt.n, iov, false)
	err := c.wait(t)
	if tt.differ < 0 {
		if err != nil {
			t.Fatalf("%s: %v", describe(c.io), err)
		}
		s.record(tt.off, data[tt.n:])
	} else {
		if !errors.Is(err, syscall.EILSEQ) {
			t.Fatalf("%s: error %v, want one that is EILSEQ (miscompare)", describe(c.io), err)
		}
		if c.io.MiscompareOffset != tt.differ {
			t.Errorf("MiscompareOffset = %d, want %d", c.io.MiscompareOffset, tt.differ)
		}
	}
	s.read("range and its neighbours", max(0, tt.off-4096), int(tt.n+8192))
}

// scatter copies data into iov.
func scatter(iov [][]byte, data []byte) {
	for _, b := range iov {
		data = data[copy(b, data):]
	}
}

// testCompareAndWriteAtomic increments a counter with COMPARE AND WRITE
// from many goroutines, as VMware's ATS heartbeat does: an increment is
// lost if a compare-and-write is not atomic with respect to another.
func testCompareAndWriteAtomic(t *testing.T, s *session) {
	if !s.lim.CompareAndWrite {
		t.Skip("backend does not claim CompareAndWrite")
	}
	const (
		workers    = 8
		increments = 25
		off        = 1<<20 - 512 // the block before a chunk boundary
		n          = 512
	)
	var wg sync.WaitGroup
	var arenaMu sync.Mutex
	alloc := func(size int) []byte {
		arenaMu.Lock()
		defer arenaMu.Unlock()
		return s.buf.alloc(t, size)
	}
	for range workers {
		cur := alloc(n)
		buf := alloc(2 * n)
		wg.Go(func() {
			for done := 0; done < increments; {
				c := s.start(handler.OpRead, off, n, [][]byte{cur}, false)
				if err := c.result(); err != nil {
					t.Errorf("%s: %v", describe(c.io), err)
					return
				}
				copy(buf, cur)
				copy(buf[n:], cur)
				binary.LittleEndian.PutUint64(buf[n:], binary.LittleEndian.Uint64(cur)+1)
				c = s.start(handler.OpCompareAndWrite, off, n, [][]byte{buf}, false)
				switch err := c.result(); {
				case err == nil:
					done++
				case errors.Is(err, syscall.EILSEQ):
					// Lost the race: read and try again.
				default:
					t.Errorf("%s: %v", describe(c.io), err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := s.iov(n)
	s.mustDo(handler.OpRead, off, n, got, false)
	if v := binary.LittleEndian.Uint64(got[0]); v != workers*increments {
		t.Errorf("counter = %d after %d compare-and-write increments: some were not atomic", v, workers*increments)
	}
}

// testOutOfRange checks that ranges outside the device and iovec lists
// shorter than the IO fail with an errno and change nothing. The handler
// checks LBA ranges before it submits, but a backend must not rely on it
// for memory safety: a bug there must cost a command, not the daemon.
func testOutOfRange(t *testing.T, s *session) {
	ranges := []struct {
		name   string
		off, n int64
	}{
		{"offset_at_end", suiteSize, 512},
		{"offset_beyond_end", suiteSize + 1<<20, 512},
		{"crossing_end", suiteSize - 512, 1024},
		{"negative_offset", -512, 512},
		{"length_overflows", math.MaxInt64 - 511, 1024},
		{"negative_length", 0, -512},
	}
	ops := []struct {
		name string
		op   handler.Op
		ok   bool
		// iovLen is the iovec length the op wants for a length n.
		iovLen func(n int64) int64
	}{
		{"read", handler.OpRead, true, func(n int64) int64 { return n }},
		{"write", handler.OpWrite, true, func(n int64) int64 { return n }},
		{"discard", handler.OpDiscard, s.lim.Discard, func(int64) int64 { return 0 }},
		{"write_same", handler.OpWriteSame, s.lim.WriteSame, func(int64) int64 { return 512 }},
		{"compare_and_write", handler.OpCompareAndWrite, s.lim.CompareAndWrite, func(n int64) int64 { return 2 * n }},
	}
	for _, op := range ops {
		if !op.ok {
			continue
		}
		for _, r := range ranges {
			t.Run(op.name+"/"+r.name, func(t *testing.T) {
				s.t = t
				s.buf.reset()
				var iov [][]byte
				if l := op.iovLen(max(r.n, 512)); l > 0 {
					iov = s.iov(int(l))
					fill(iov, 0, 9)
				}
				wantErrno(t, describe(&handler.IO{Op: op.op, Off: r.off, Len: r.n, Iov: iov}),
					s.do(op.op, r.off, r.n, iov, false))
			})
		}
	}
	short := []struct {
		name string
		op   handler.Op
		ok   bool
		n    int64
		iov  int
	}{
		{"read", handler.OpRead, true, 4096, 512},
		{"write", handler.OpWrite, true, 4096, 512},
		{"write_same_without_data", handler.OpWriteSame, s.lim.WriteSame, 4096, 0},
		{"compare_and_write", handler.OpCompareAndWrite, s.lim.CompareAndWrite, 4096, 4096},
	}
	for _, sh := range short {
		if !sh.ok {
			continue
		}
		t.Run("iovecs_shorter_than_length/"+sh.name, func(t *testing.T) {
			s.t = t
			s.buf.reset()
			var iov [][]byte
			if sh.iov > 0 {
				iov = s.iov(sh.iov)
				fill(iov, 0, 9)
			}
			wantErrno(t, describe(&handler.IO{Op: sh.op, Off: 4096, Len: sh.n, Iov: iov}),
				s.do(sh.op, 4096, sh.n, iov, false))
		})
	}
	s.t = t
	s.verifyAll("device after refused IO")
}

func testLBAStatus(t *testing.T, s *session) {
	st, ok := s.be.(handler.LBAStatuser)
	if !ok {
		t.Skip("backend does not implement handler.LBAStatuser")
	}
	ctx := context.Background()
	walk := func(what string) (mapped [][2]int64) {
		t.Helper()
		for off := int64(0); off < s.size; {
			m, ext, err := st.Status(ctx, off, s.size-off)
			if err != nil {
				t.Fatalf("%s: Status(%d, %d): %v", what, off, s.size-off, err)
			}
			if ext <= 0 || ext > s.size-off {
				t.Fatalf("%s: Status(%d, %d) extent %d, want 1..%d", what, off, s.size-off, ext, s.size-off)
			}
			if m {
				mapped = append(mapped, [2]int64{off, off + ext})
			}
			off += ext
		}
		return mapped
	}
	walk("fresh device")
	s.write(2<<20, 1, false, 1<<20)
	s.write(suiteSize-4096, 1, false, 4096)
	for _, r := range [][2]int64{{2 << 20, 1 << 20}, {suiteSize - 4096, 4096}} {
		m, ext, err := st.Status(ctx, r[0], r[1])
		if err != nil || !m || ext != r[1] {
			t.Errorf("Status(%d, %d) of written data = %v, %d, %v; want mapped, %d, nil", r[0], r[1], m, ext, err, r[1])
		}
	}
	covered := int64(0)
	for _, r := range walk("device with data") {
		lo, hi := max(r[0], 2<<20), min(r[1], 3<<20)
		covered += max(0, hi-lo)
	}
	if covered != 1<<20 {
		t.Errorf("walking the device finds %d of the 1 MiB written at 2 MiB mapped", covered)
	}
	for _, r := range [][2]int64{{suiteSize, 512}, {suiteSize + 1<<20, 512}, {-512, 512}} {
		if _, _, err := st.Status(ctx, r[0], r[1]); err == nil {
			t.Errorf("Status(%d, %d) outside the device succeeded", r[0], r[1])
		}
	}
}

func testResize(t *testing.T, s *session) {
	rs, ok := s.be.(handler.Resizer)
	if !ok {
		t.Skip("backend does not implement handler.Resizer")
	}
	s.write(0, 1, false, 65536)
	s.write(suiteSize-65536, 1, false, 65536)

	grown := int64(suiteSize + 2<<20 + 512)
	if err := rs.Resize(grown); err != nil {
		t.Fatalf("Resize(%d) to grow: %v", grown, err)
	}
	s.size = grown
	s.model = append(s.model, make([]byte, grown-suiteSize)...)
	s.buf.reset()
	s.read("grown device", suiteSize-65536, int(grown-suiteSize+65536))
	s.write(grown-4096, 2, false, 4096)
	s.verifyAll("grown device")

	shrunk := int64(suiteSize - 1<<20)
	if err := rs.Resize(shrunk); err != nil {
		t.Fatalf("Resize(%d) to shrink: %v", shrunk, err)
	}
	s.size = shrunk
	s.model = s.model[:shrunk]
	s.buf.reset()
	iov := s.iov(512)
	wantErrno(t, "read beyond the shrunk end", s.do(handler.OpRead, shrunk, 512, iov, false))
	wantErrno(t, "write beyond the shrunk end", s.do(handler.OpWrite, shrunk, 512, iov, false))
	s.verifyAll("shrunk device")

	if err := rs.Resize(-512); err == nil {
		t.Errorf("Resize(-512) succeeded")
	}
}
