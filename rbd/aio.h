// C side of gotcmu's rbd_aio_* calls. Every helper creates the completion
// itself with the IO's slot id as its argument and no callback: librbd
// queues the finished completion to the image's eventfd
// (rbd_set_image_notification) and gotcmu_poll collects it, so no librbd
// thread ever calls into Go. A helper that fails to start an operation
// releases the completion and returns the negative errno.

#ifndef GOTCMU_AIO_H
#define GOTCMU_AIO_H

#include <stdint.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <rbd/librbd.h>

// gotcmu_slot is the C memory of one IO in flight, reused across IOs: the
// iovec array handed to librbd (pointing into the TCMU data area), the
// compare-and-write mismatch offset librbd writes when the IO completes,
// and a bounce buffer for the rare write-same or compare-and-write whose
// data is split over several iovecs.
typedef struct {
	struct iovec *iov;
	int iov_cap;
	uint64_t mismatch_off;
	char *bounce;
	size_t bounce_cap;
} gotcmu_slot;

static inline int gotcmu_aio_readv(rbd_image_t image, uintptr_t id, gotcmu_slot *s, int iovcnt, uint64_t off) {
	rbd_completion_t c;
	int r = rbd_aio_create_completion((void *)id, NULL, &c);
	if (r < 0)
		return r;
	r = rbd_aio_readv(image, s->iov, iovcnt, off, c);
	if (r < 0)
		rbd_aio_release(c);
	return r;
}

static inline int gotcmu_aio_writev(rbd_image_t image, uintptr_t id, gotcmu_slot *s, int iovcnt, uint64_t off) {
	rbd_completion_t c;
	int r = rbd_aio_create_completion((void *)id, NULL, &c);
	if (r < 0)
		return r;
	r = rbd_aio_writev(image, s->iov, iovcnt, off, c);
	if (r < 0)
		rbd_aio_release(c);
	return r;
}

static inline int gotcmu_aio_discard(rbd_image_t image, uintptr_t id, uint64_t off, uint64_t len) {
	rbd_completion_t c;
	int r = rbd_aio_create_completion((void *)id, NULL, &c);
	if (r < 0)
		return r;
	r = rbd_aio_discard(image, off, len, c);
	if (r < 0)
		rbd_aio_release(c);
	return r;
}

static inline int gotcmu_aio_flush(rbd_image_t image, uintptr_t id) {
	rbd_completion_t c;
	int r = rbd_aio_create_completion((void *)id, NULL, &c);
	if (r < 0)
		return r;
	r = rbd_aio_flush(image, c);
	if (r < 0)
		rbd_aio_release(c);
	return r;
}

static inline int gotcmu_aio_writesame(rbd_image_t image, uintptr_t id, uint64_t off, uint64_t len,
		const char *buf, size_t data_len) {
	rbd_completion_t c;
	int r = rbd_aio_create_completion((void *)id, NULL, &c);
	if (r < 0)
		return r;
	r = rbd_aio_writesame(image, off, len, buf, data_len, c, 0);
	if (r < 0)
		rbd_aio_release(c);
	return r;
}

static inline int gotcmu_aio_compare_and_write(rbd_image_t image, uintptr_t id, gotcmu_slot *s,
		uint64_t off, uint64_t len, const char *cmp, const char *buf) {
	rbd_completion_t c;
	int r = rbd_aio_create_completion((void *)id, NULL, &c);
	if (r < 0)
		return r;
	s->mismatch_off = 0;
	ssize_t rr = rbd_aio_compare_and_write(image, off, len, cmp, buf, c, &s->mismatch_off, 0);
	if (rr < 0) {
		rbd_aio_release(c);
		return (int)rr;
	}
	return 0;
}

// gotcmu_poll takes up to n finished completions off the image's event
// queue, records each one's slot id and return value, and releases it:
// one cgo call per batch instead of three per IO.
static inline int gotcmu_poll(rbd_image_t image, rbd_completion_t *comps, uint64_t *ids, int64_t *rets, int n) {
	int got = rbd_poll_io_events(image, comps, n);
	for (int i = 0; i < got; i++) {
		ids[i] = (uint64_t)(uintptr_t)rbd_aio_get_arg(comps[i]);
		rets[i] = (int64_t)rbd_aio_get_return_value(comps[i]);
		rbd_aio_release(comps[i]);
	}
	return got;
}

#endif
