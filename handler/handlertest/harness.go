package handlertest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
)

// doneTimeout bounds the wait for one IO's Done: far beyond any sane
// latency, short enough that a lost completion fails instead of hanging.
const doneTimeout = 60 * time.Second

// arena hands out IO buffers from an anonymous mapping, as the TCMU data
// area is mapped memory outside the Go heap.
type arena struct {
	mem  []byte
	used int
	// leak keeps the mapping when an IO never completed: the backend
	// may still write into it.
	leak atomic.Bool
}

func newArena(t testing.TB, n int) *arena {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("map IO buffers: %v", err)
	}
	a := &arena{mem: mem}
	t.Cleanup(func() {
		if a.leak.Load() {
			return
		}
		if err := unix.Munmap(mem); err != nil {
			t.Errorf("unmap IO buffers: %v", err)
		}
	})
	return a
}

// alloc returns n zeroed bytes starting on a 512-byte boundary, the
// alignment data-area iovecs have at least.
func (a *arena) alloc(t testing.TB, n int) []byte {
	t.Helper()
	start := (a.used + 511) &^ 511
	if start+n > len(a.mem) {
		t.Fatalf("test IO buffers exhausted: want %d bytes, %d left", n, len(a.mem)-start)
	}
	a.used = start + n
	b := a.mem[start:a.used:a.used]
	clear(b)
	return b
}

// reset makes every buffer reusable; no IO may be in flight.
func (a *arena) reset() { a.used = 0 }

// call is one submitted IO and the record of its completions.
type call struct {
	io    *handler.IO
	dones atomic.Int32
	errc  chan error    // the result of the first Done
	fin   chan struct{} // closed by the first Done
}

// session is one backend under test, with a model of what the device must
// hold and every IO submitted to it.
type session struct {
	t    *testing.T
	be   handler.Backend
	lim  handler.Limits
	size int64
	buf  *arena

	// model is what the device must read back; unknown lists ranges
	// whose content the contract leaves open (discarded without
	// DiscardZeroes).
	model   []byte
	unknown [][2]int64

	mu    sync.Mutex
	calls []*call
}

func newSession(t *testing.T, open func(t *testing.T, size int64) handler.Backend, size int64) *session {
	t.Helper()
	be := open(t, size)
	if be == nil {
		t.Fatal("open returned a nil backend")
	}
	s := &session{
		t:     t,
		be:    be,
		lim:   be.Limits(),
		size:  size,
		buf:   newArena(t, 4*int(size)+(8<<20)),
		model: make([]byte, size),
	}
	return s
}

// close waits for every IO (a failed subtest may leave some in flight),
// closes the backend, as the handler does once every IO completed, and
// checks that every IO was completed exactly once.
func (s *session) close() {
	s.t.Helper()
	s.mu.Lock()
	calls := s.calls
	s.mu.Unlock()
	deadline := time.After(doneTimeout)
	for _, c := range calls {
		select {
		case <-c.fin:
		case <-deadline:
			s.buf.leak.Store(true)
			s.t.Errorf("%s: no Done within %v; not closing the backend", describe(c.io), doneTimeout)
			return
		}
	}
	if err := s.be.Close(); err != nil {
		s.t.Errorf("Close after all IO completed: %v", err)
	}
	for _, c := range calls {
		if n := c.dones.Load(); n != 1 {
			s.t.Errorf("%s: Done called %d times, want exactly 1", describe(c.io), n)
		}
	}
}

func describe(io *handler.IO) string {
	return fmt.Sprintf("%s off=%d len=%d iovecs=%d fua=%v", io.Op, io.Off, io.Len, len(io.Iov), io.FUA)
}

// start submits an IO without waiting for it.
func (s *session) start(op handler.Op, off, length int64, iov [][]byte, fua bool) *call {
	s.t.Helper()
	c := &call{errc: make(chan error, 1), fin: make(chan struct{})}
	c.io = handler.NewIO(func(io *handler.IO, err error) {
		if n := c.dones.Add(1); n != 1 {
			s.t.Errorf("%s: Done called %d times", describe(io), n)
			return
		}
		c.errc <- err
		close(c.fin)
	})
	c.io.Op, c.io.Off, c.io.Len, c.io.Iov, c.io.FUA = op, off, length, iov, fua
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	func() {
		defer func() {
			if p := recover(); p != nil {
				s.t.Errorf("Submit(%s) panicked: %v", describe(c.io), p)
				if c.dones.CompareAndSwap(0, 1) {
					c.errc <- errSubmitPanicked
					close(c.fin)
				}
			}
		}()
		s.be.Submit(c.io)
	}()
	return c
}

var (
	errSubmitPanicked = errors.New("submit panicked")
	errNoDone         = fmt.Errorf("no Done within %v", doneTimeout)
)

// wait returns the IO's result; a missing Done fails the test. It must be
// called from the test's goroutine.
func (c *call) wait(t testing.TB) error {
	t.Helper()
	err := c.result()
	if err == errNoDone {
		t.Fatalf("%s: %v", describe(c.io), err)
	}
	return err
}

// result returns the IO's result, or errNoDone when Done does not come.
func (c *call) result() error {
	select {
	case err := <-c.errc:
		return err
	case <-time.After(doneTimeout):
		return errNoDone
	}
}

// do submits an IO and waits for it.
func (s *session) do(op handler.Op, off, length int64, iov [][]byte, fua bool) error {
	s.t.Helper()
	return s.start(op, off, length, iov, fua).wait(s.t)
}

// mustDo is do for an IO that must succeed.
func (s *session) mustDo(op handler.Op, off, length int64, iov [][]byte, fua bool) {
	s.t.Helper()
	c := s.start(op, off, length, iov, fua)
	if err := c.wait(s.t); err != nil {
		s.t.Fatalf("%s: %v", describe(c.io), err)
	}
}

func sum(lens []int) int {
	n := 0
	for _, l := range lens {
		n += l
	}
	return n
}

// iov allocates an iovec list with segments of the given lengths.
func (s *session) iov(lens ...int) [][]byte {
	iov := make([][]byte, len(lens))
	for i, n := range lens {
		iov[i] = s.buf.alloc(s.t, n)
	}
	return iov
}

// pattern is the byte a write of generation gen puts at device offset off:
// different for every offset and generation, so a misplaced, stale or
// torn block shows.
func pattern(off int64, gen int) byte {
	x := uint64(off)*0x9e3779b97f4a7c15 ^ uint64(gen+1)*0xbf58476d1ce4e5b9
	x ^= x >> 29
	return byte(x >> 32)
}

// fill writes the data of generation gen for device offset off into iov.
func fill(iov [][]byte, off int64, gen int) {
	for _, b := range iov {
		for i := range b {
			b[i] = pattern(off, gen)
			off++
		}
	}
}

// gather copies iov into one slice.
func gather(iov [][]byte) []byte {
	out := make([]byte, 0, handler.IovLen(iov))
	for _, b := range iov {
		out = append(out, b...)
	}
	return out
}

// write writes generation gen at off through an iovec list with the given
// segment lengths and records it in the model.
func (s *session) write(off int64, gen int, fua bool, lens ...int) {
	s.t.Helper()
	iov := s.iov(lens...)
	fill(iov, off, gen)
	n := handler.IovLen(iov)
	s.mustDo(handler.OpWrite, off, n, iov, fua)
	s.record(off, gather(iov))
}

// record notes that data now lives at off.
func (s *session) record(off int64, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(s.model[off:], data)
	end := off + int64(len(data))
	kept := s.unknown[:0]
	for _, r := range s.unknown {
		switch {
		case r[1] <= off || r[0] >= end:
			kept = append(kept, r)
		default:
			if r[0] < off {
				kept = append(kept, [2]int64{r[0], off})
			}
			if r[1] > end {
				kept = append(kept, [2]int64{end, r[1]})
			}
		}
	}
	s.unknown = kept
}

// forget notes that [off, off+n) may hold anything.
func (s *session) forget(off, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unknown = append(s.unknown, [2]int64{off, off + n})
}

func (s *session) isUnknown(off int64) bool {
	for _, r := range s.unknown {
		if off >= r[0] && off < r[1] {
			return true
		}
	}
	return false
}

// check compares data read from off with the model.
func (s *session) check(what string, off int64, got []byte) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	want := s.model[off : off+int64(len(got))]
	for i := range got {
		if got[i] != want[i] && !s.isUnknown(off+int64(i)) {
			s.t.Fatalf("%s: byte at device offset %d (block %d + %d) is %#02x, want %#02x",
				what, off+int64(i), (off+int64(i))/512, (off+int64(i))%512, got[i], want[i])
		}
	}
}

// read reads [off, off+sum(lens)) through iovecs of the given lengths and
// checks it against the model.
func (s *session) read(what string, off int64, lens ...int) {
	s.t.Helper()
	iov := s.iov(lens...)
	// Poison the buffers: a backend that leaves a range untouched must
	// not pass for one that read zeros into it.
	for _, b := range iov {
		for i := range b {
			b[i] = 0xa5
		}
	}
	s.mustDo(handler.OpRead, off, handler.IovLen(iov), iov, false)
	s.check(what, off, gather(iov))
}

// verifyAll reads the whole device back in 1 MiB reads.
func (s *session) verifyAll(what string) {
	s.t.Helper()
	s.buf.reset()
	for off := int64(0); off < s.size; off += 1 << 20 {
		n := min(1<<20, s.size-off)
		s.read(what, off, int(n))
		s.buf.reset()
	}
}

// fillAll writes generation gen over the whole device.
func (s *session) fillAll(gen int) {
	s.t.Helper()
	s.buf.reset()
	for off := int64(0); off < s.size; off += 1 << 20 {
		n := min(1<<20, s.size-off)
		s.write(off, gen, false, int(n))
		s.buf.reset()
	}
}

// wantErrno fails unless err is an error that keeps an errno, which the
// handler needs to choose the SCSI status.
func wantErrno(t testing.TB, what string, err error) {
	t.Helper()
	var errno syscall.Errno
	switch {
	case err == nil:
		t.Errorf("%s: succeeded, want an error", what)
	case !errors.As(err, &errno):
		t.Errorf("%s: error %q keeps no errno", what, err)
	}
}
