//go:build !nautilus

package rbd

/*
#cgo LDFLAGS: -lrbd
#include "aio.h"
*/
import "C"

import (
	"unsafe"

	"github.com/gotcmu/gotcmu/uio"
)

// The functions below start one asynchronous librbd operation each on a
// slot, whose completion's callback answers it in C or queues it (see
// aio.h). They return librbd's negative errno when the operation could not
// be started; otherwise the result arrives through takeCallbacks or
// takeAnswered.

// aioReadv reads into the slot's iovecs.
//
// Implements:
//
//	int rbd_aio_readv(rbd_image_t image, const struct iovec *iov,
//	                  int iovcnt, uint64_t off, rbd_completion_t c);
func aioReadv(image C.rbd_image_t, cs *C.gotcmu_slot, iovcnt C.int, off int64) error {
	return getError(C.gotcmu_aio_readv(image, cs, iovcnt, C.uint64_t(off)))
}

// aioWritev writes the slot's iovecs.
//
// Implements:
//
//	int rbd_aio_writev(rbd_image_t image, const struct iovec *iov,
//	                   int iovcnt, uint64_t off, rbd_completion_t c);
func aioWritev(image C.rbd_image_t, cs *C.gotcmu_slot, iovcnt C.int, off int64) error {
	return getError(C.gotcmu_aio_writev(image, cs, iovcnt, C.uint64_t(off)))
}

// aioDiscard deallocates a range.
//
// Implements:
//
//	int rbd_aio_discard(rbd_image_t image, uint64_t off, uint64_t len,
//	                    rbd_completion_t c);
func aioDiscard(image C.rbd_image_t, cs *C.gotcmu_slot, off, length int64) error {
	return getError(C.gotcmu_aio_discard(image, cs, C.uint64_t(off), C.uint64_t(length)))
}

// aioFlush waits for the writes completed so far to be stable.
//
// Implements:
//
//	int rbd_aio_flush(rbd_image_t image, rbd_completion_t c);
func aioFlush(image C.rbd_image_t, cs *C.gotcmu_slot) error {
	return getError(C.gotcmu_aio_flush(image, cs))
}

// aioWriteSame writes the dataLen bytes at buf over [off, off+length).
//
// Implements:
//
//	int rbd_aio_writesame(rbd_image_t image, uint64_t off, size_t len,
//	                      const char *buf, size_t data_len,
//	                      rbd_completion_t c, int op_flags);
func aioWriteSame(image C.rbd_image_t, cs *C.gotcmu_slot, off, length int64, buf *C.char, dataLen int) error {
	return getError(C.gotcmu_aio_writesame(image, cs, C.uint64_t(off), C.uint64_t(length), buf, C.size_t(dataLen)))
}

// aioCompareAndWrite compares [off, off+length) with cmp and writes buf
// only if they are equal; on a mismatch the completion returns -EILSEQ and
// librbd stores the first differing offset in the slot's mismatch_off.
//
// Implements:
//
//	ssize_t rbd_aio_compare_and_write(rbd_image_t image, uint64_t off,
//	                                  size_t len, const char *cmp_buf,
//	                                  const char *buf, rbd_completion_t c,
//	                                  uint64_t *mismatch_off, int op_flags);
func aioCompareAndWrite(image C.rbd_image_t, cs *C.gotcmu_slot, off, length int64, cmp, buf *C.char) error {
	return getError(C.gotcmu_aio_compare_and_write(image, cs, C.uint64_t(off), C.uint64_t(length), cmp, buf))
}

// pollBatch is how many completions one take call moves.
const pollBatch = 64

// takeCallbacks moves up to pollBatch completions of the callback queue
// into ids and rets.
func takeCallbacks(q *C.gotcmu_cbq, ids *[pollBatch]uint64, rets *[pollBatch]int64) int {
	return int(C.gotcmu_take_cb(q, (*C.uint64_t)(unsafe.Pointer(&ids[0])), (*C.int64_t)(unsafe.Pointer(&rets[0])), pollBatch))
}

// takeAnswered moves up to pollBatch slots answered in C into ids and
// done (CLOCK_MONOTONIC ns of each answer).
func takeAnswered(q *C.gotcmu_cbq, ids *[pollBatch]uint64, done *[pollBatch]int64) int {
	return int(C.gotcmu_take_answered(q, (*C.uint64_t)(unsafe.Pointer(&ids[0])), (*C.int64_t)(unsafe.Pointer(&done[0])), pollBatch))
}

// armSlot names the command the slot's operation answers in C on success
// (see handler.IO.Fast); a zero fa names none.
func armSlot(cs *C.gotcmu_slot, fa uio.FastAnswer) {
	C.gotcmu_slot_arm(cs, fa.Ring, C.uint16_t(fa.ID), C.uint64_t(fa.Gen))
}

// claimSlot takes the answer of a slot's command away from C: true if C
// will not answer it, false if it already has.
func claimSlot(cs *C.gotcmu_slot) bool { return C.gotcmu_slot_claim(cs) != 0 }

// wakeOnAnswer adds delta to the count of those who want the eventfd
// written for commands answered in C too.
func wakeOnAnswer(q *C.gotcmu_cbq, delta int) { C.gotcmu_cbq_wake(q, C.int(delta)) }

// monoNow reads CLOCK_MONOTONIC, the clock of the answers' times.
func monoNow() int64 { return int64(C.gotcmu_now_ns()) }
