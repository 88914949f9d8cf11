//go:build !nautilus

package rbd

/*
#include "aio.h"
*/
import "C"

import (
	"sync"
	"time"
	"unsafe"

	"github.com/gotcmu/gotcmu/handler"
)

const (
	// slotIovecs is the iovec capacity a slot starts with: a 512 KiB
	// transfer (ceph-iscsi's hw_max_sectors=1024) over 4 KiB data-area
	// blocks the kernel did not merge needs 128. A larger IO grows its
	// slot's array once and the slot keeps it.
	slotIovecs = 128
	// maxIovecs bounds one IO's iovec count: more than a 64 MiB transfer in
	// 16 KiB pieces is not a command the kernel builds.
	maxIovecs = 4096
	// maxBounce bounds the bounce buffer of a write-same block or a
	// compare-and-write pair.
	maxBounce = 1 << 20
)

// stage is what an IO's slot is waiting for.
type stage uint8

const (
	stageIdle stage = iota
	stageOp         // the operation itself
	stageFUA        // the flush after a FUA write
)

// slots is the pool of C-side IO state, indexed by the slot id that rides
// in each completion's callback argument. Slots are allocated on demand
// and reused, so a command in flight costs no malloc once the pool has
// grown to the queue depth. Safe for concurrent use.
type slots struct {
	cbq *C.gotcmu_cbq // the image's callback queue, for new slots

	mu        sync.Mutex
	c         []*C.gotcmu_slot
	io        []*handler.IO
	stage     []stage
	started   []time.Time
	abandoned []bool // Done already called; librbd still owns the slot
	free      []uint32
}

// get takes a slot for io.
func (s *slots) get(io *handler.IO) (uint32, *C.gotcmu_slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var id uint32
	if n := len(s.free); n > 0 {
		id = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		cs := (*C.gotcmu_slot)(C.calloc(1, C.sizeof_gotcmu_slot))
		cs.iov = (*C.struct_iovec)(C.calloc(slotIovecs, C.sizeof_struct_iovec))
		cs.iov_cap = slotIovecs
		id = uint32(len(s.c))
		cs.id = C.uint64_t(id)
		cs.q = s.cbq
		s.c = append(s.c, cs)
		s.io = append(s.io, nil)
		s.stage = append(s.stage, stageIdle)
		s.started = append(s.started, time.Time{})
		s.abandoned = append(s.abandoned, false)
	}
	s.io[id] = io
	s.stage[id] = stageOp
	s.started[id] = time.Now()
	return id, s.c[id]
}

// slotState is what finish found in a slot.
type slotState uint8

const (
	slotLive      slotState = iota // an IO waits for this completion
	slotAbandoned                  // the IO was failed by sweep; drop the result
	slotInvalid                    // no operation was in flight in this slot
)

// finish is called for a completion of slot id. Under the pool's lock it
// asks next for the slot's following stage; it frees the slot unless that
// is not stageIdle, and returns the slot's IO and the stage that completed.
// An abandoned slot is freed without asking next.
func (s *slots) finish(id uint64, next func(*handler.IO, stage, *C.gotcmu_slot) stage) (*handler.IO, stage, slotState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id >= uint64(len(s.c)) || s.stage[id] == stageIdle {
		return nil, stageIdle, slotInvalid
	}
	io, st := s.io[id], s.stage[id]
	if s.abandoned[id] {
		s.freeLocked(uint32(id))
		return nil, st, slotAbandoned
	}
	if n := next(io, st, s.c[id]); n != stageIdle {
		s.stage[id] = n
		return io, st, slotLive
	}
	s.freeLocked(uint32(id))
	return io, st, slotLive
}

func (s *slots) freeLocked(id uint32) {
	s.io[id] = nil
	s.stage[id] = stageIdle
	s.abandoned[id] = false
	s.free = append(s.free, id)
}

// sweep abandons the IOs that have waited longer than limit for librbd,
// except reads, and returns them for the caller to fail. Their slots stay
// taken until librbd completes them. Only IOs whose buffers librbd no
// longer reads may be abandoned: librbd copies write data when the
// operation starts (rbd_disable_zero_copy_writes, forced on in connect),
// but a read writes into the data area when it completes, so a read is
// never given back to the handler early.
func (s *slots) sweep(now time.Time, limit time.Duration) []*handler.IO {
	s.mu.Lock()
	defer s.mu.Unlock()
	var stuck []*handler.IO
	for id, st := range s.stage {
		if st == stageIdle || s.abandoned[id] || s.io[id].Op == handler.OpRead || now.Sub(s.started[id]) < limit {
			continue
		}
		if !claimSlot(s.c[id]) {
			// aio.h's callback answered it a moment ago; its slot
			// waits in the answered list.
			continue
		}
		s.abandoned[id] = true
		stuck = append(stuck, s.io[id])
	}
	return stuck
}

// put frees a slot whose operation never started.
func (s *slots) put(id uint32) {
	s.mu.Lock()
	s.freeLocked(id)
	s.mu.Unlock()
}

// inFlight counts slots in use.
func (s *slots) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.c) - len(s.free)
}

// live counts slots whose IO still waits for librbd: in use and not
// abandoned.
func (s *slots) live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, st := range s.stage {
		if st != stageIdle && !s.abandoned[id] {
			n++
		}
	}
	return n
}

// abandonedCount counts the IOs failed by sweep that librbd still holds.
func (s *slots) abandonedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, a := range s.abandoned {
		if a && s.stage[id] != stageIdle {
			n++
		}
	}
	return n
}

// release frees the C memory of every slot. Only after the image is
// closed: librbd no longer holds any slot's iovecs.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cs := range s.c {
		C.free(unsafe.Pointer(cs.iov))
		C.free(unsafe.Pointer(cs.bounce))
		C.free(unsafe.Pointer(cs))
	}
	s.c, s.io, s.stage, s.started, s.abandoned, s.free = nil, nil, nil, nil, nil, nil
}

// setIovecs points the slot's iovecs at iov, growing the array if needed,
// and returns how many it set. Empty buffers are skipped: they have no
// address and librbd needs none.
func setIovecs(cs *C.gotcmu_slot, iov [][]byte) C.int {
	if len(iov) > int(cs.iov_cap) {
		C.free(unsafe.Pointer(cs.iov))
		cs.iov = (*C.struct_iovec)(C.calloc(C.size_t(len(iov)), C.sizeof_struct_iovec))
		cs.iov_cap = C.int(len(iov))
	}
	vec := unsafe.Slice(cs.iov, int(cs.iov_cap))
	n := 0
	for _, b := range iov {
		if len(b) == 0 {
			continue
		}
		// b is a slice of the mmapped data area (handler.IO), not Go
		// heap, so librbd may keep this pointer until the IO completes.
		vec[n].iov_base = unsafe.Pointer(unsafe.SliceData(b))
		vec[n].iov_len = C.size_t(len(b))
		n++
	}
	return C.int(n)
}

// contiguous returns a C pointer to the n bytes at the start of iov: into
// the data area when the first buffer holds them, else into the slot's
// bounce buffer after copying them there. write-same and compare-and-write
// take flat buffers, not iovecs.
func contiguous(cs *C.gotcmu_slot, iov [][]byte, n int) *C.char {
	for len(iov) > 0 && len(iov[0]) == 0 {
		iov = iov[1:]
	}
	if len(iov) > 0 && len(iov[0]) >= n {
		return (*C.char)(unsafe.Pointer(unsafe.SliceData(iov[0])))
	}
	if uintptr(cs.bounce_cap) < uintptr(n) {
		C.free(unsafe.Pointer(cs.bounce))
		cs.bounce = (*C.char)(C.malloc(C.size_t(n)))
		cs.bounce_cap = C.size_t(n)
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(cs.bounce)), n)
	off := 0
	for _, b := range iov {
		off += copy(dst[off:], b)
		if off == n {
			break
		}
	}
	return cs.bounce
}
