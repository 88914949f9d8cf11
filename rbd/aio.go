//go:build !nautilus

package rbd

/*
#cgo LDFLAGS: -lrbd
#include "aio.h"
*/
import "C"

import (
	"unsafe"
)

// The functions below start one asynchronous librbd operation each, with
// a completion whose argument is the slot id and that has no callback
// (see aio.h). They return librbd's negative errno when the operation
// could not be started; otherwise the result arrives through pollEvents.

// aioReadv reads into the slot's iovecs.
//
// Implements:
//
//	int rbd_aio_readv(rbd_image_t image, const struct iovec *iov,
//	                  int iovcnt, uint64_t off, rbd_completion_t c);
func aioReadv(image C.rbd_image_t, id uint32, cs *C.gotcmu_slot, iovcnt C.int, off int64) error {
	return getError(C.gotcmu_aio_readv(image, C.uintptr_t(id), cs, iovcnt, C.uint64_t(off)))
}

// aioWritev writes the slot's iovecs.
//
// Implements:
//
//	int rbd_aio_writev(rbd_image_t image, const struct iovec *iov,
//	                   int iovcnt, uint64_t off, rbd_completion_t c);
func aioWritev(image C.rbd_image_t, id uint32, cs *C.gotcmu_slot, iovcnt C.int, off int64) error {
	return getError(C.gotcmu_aio_writev(image, C.uintptr_t(id), cs, iovcnt, C.uint64_t(off)))
}

// aioDiscard deallocates a range.
//
// Implements:
//
//	int rbd_aio_discard(rbd_image_t image, uint64_t off, uint64_t len,
//	                    rbd_completion_t c);
func aioDiscard(image C.rbd_image_t, id uint32, off, length int64) error {
	return getError(C.gotcmu_aio_discard(image, C.uintptr_t(id), C.uint64_t(off), C.uint64_t(length)))
}

// aioFlush waits for the writes completed so far to be stable.
//
// Implements:
//
//	int rbd_aio_flush(rbd_image_t image, rbd_completion_t c);
func aioFlush(image C.rbd_image_t, id uint32) error {
	return getError(C.gotcmu_aio_flush(image, C.uintptr_t(id)))
}

// aioWriteSame writes the dataLen bytes at buf over [off, off+length).
//
// Implements:
//
//	int rbd_aio_writesame(rbd_image_t image, uint64_t off, size_t len,
//	                      const char *buf, size_t data_len,
//	                      rbd_completion_t c, int op_flags);
func aioWriteSame(image C.rbd_image_t, id uint32, off, length int64, buf *C.char, dataLen int) error {
	return getError(C.gotcmu_aio_writesame(image, C.uintptr_t(id), C.uint64_t(off), C.uint64_t(length), buf, C.size_t(dataLen)))
}

// aioCompareAndWrite compares [off, off+length) with cmp and writes buf
// only if they are equal; on a mismatch the completion returns -EILSEQ and
// librbd stores the first differing offset in the slot's mismatch_off. Its
// completion arrives through the slot's callback queue (see aio.h).
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

// pollBatch is how many completions one pollEvents call takes.
const pollBatch = 64

// pollEvents takes up to pollBatch finished completions off the image's
// event queue into ids and rets (slot id and librbd's return value) and
// releases them; comps is C memory for pollBatch completions.
//
// Implements:
//
//	int rbd_poll_io_events(rbd_image_t image, rbd_completion_t *comps,
//	                       int numcomp);
//	void *rbd_aio_get_arg(rbd_completion_t c);
//	ssize_t rbd_aio_get_return_value(rbd_completion_t c);
//	void rbd_aio_release(rbd_completion_t c);
func pollEvents(image C.rbd_image_t, comps unsafe.Pointer, ids *[pollBatch]uint64, rets *[pollBatch]int64) (int, error) {
	n := C.gotcmu_poll(image, (*C.rbd_completion_t)(comps),
		(*C.uint64_t)(unsafe.Pointer(&ids[0])), (*C.int64_t)(unsafe.Pointer(&rets[0])), pollBatch)
	if err := getError(n); err != nil {
		return 0, err
	}
	return int(n), nil
}

// takeCallbacks moves up to pollBatch completions of the callback queue
// into ids and rets.
func takeCallbacks(q *C.gotcmu_cbq, ids *[pollBatch]uint64, rets *[pollBatch]int64) int {
	return int(C.gotcmu_take_cb(q, (*C.uint64_t)(unsafe.Pointer(&ids[0])), (*C.int64_t)(unsafe.Pointer(&rets[0])), pollBatch))
}

// setImageNotification makes librbd signal fd (an eventfd) whenever a
// completion is queued for rbd_poll_io_events.
//
// Implements:
//
//	int rbd_set_image_notification(rbd_image_t image, int fd, int type);
func setImageNotification(image C.rbd_image_t, fd int) error {
	return getError(C.rbd_set_image_notification(image, C.int(fd), C.EVENT_TYPE_EVENTFD))
}
