// C side of gotcmu's rbd_aio_* calls. Every helper creates the completion
// itself with the IO's slot id as its argument and no callback: librbd
// queues the finished completion to the image's eventfd
// (rbd_set_image_notification) and gotcmu_poll collects it, so no librbd
// thread ever calls into Go. A helper that fails to start an operation
// releases the completion and returns the negative errno.
//
// The exception is compare-and-write: librbd 16 starts it with
// native_async=false (librbd.cc rbd_aio_compare_and_write), so its
// completion never reaches the event queue. It gets a C callback instead,
// gotcmu_cb, which runs on a librbd thread, releases the completion as
// librbd's documentation expects, links the slot into the image's callback
// queue and signals the same eventfd. Still no call into Go.

#ifndef GOTCMU_AIO_H
#define GOTCMU_AIO_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/uio.h>
#include <rbd/librbd.h>

// gotcmu_slot is the C memory of one IO in flight, reused across IOs: the
// iovec array handed to librbd (pointing into the TCMU data area), the
// compare-and-write mismatch offset librbd writes when the IO completes,
// and a bounce buffer for the rare write-same or compare-and-write whose
// data is split over several iovecs.
typedef struct gotcmu_slot gotcmu_slot;

// gotcmu_cbq is an image's queue of slots completed through gotcmu_cb.
typedef struct {
	pthread_mutex_t mu;
	gotcmu_slot *head;
	int efd;
} gotcmu_cbq;

struct gotcmu_slot {
	struct iovec *iov;
	int iov_cap;
	uint64_t mismatch_off;
	char *bounce;
	size_t bounce_cap;
	// For gotcmu_cb.
	uint64_t id;
	gotcmu_cbq *q;
	gotcmu_slot *cb_next;
	int64_t cb_ret;
};

static void gotcmu_cb(rbd_completion_t c, void *arg) {
	gotcmu_slot *s = arg;
	gotcmu_cbq *q = s->q;
	s->cb_ret = (int64_t)rbd_aio_get_return_value(c);
	rbd_aio_release(c);
	pthread_mutex_lock(&q->mu);
	s->cb_next = q->head;
	q->head = s;
	pthread_mutex_unlock(&q->mu);
	uint64_t one = 1;
	// Nothing to do if this fails: the eventfd counter cannot overflow
	// (it would take 2^64-1 signals), and the fd lives until after
	// rbd_close, which waits for this callback.
	(void)!write(q->efd, &one, sizeof(one));
}

// gotcmu_take_cb moves up to n callback completions into ids and rets.
static inline int gotcmu_take_cb(gotcmu_cbq *q, uint64_t *ids, int64_t *rets, int n) {
	int got = 0;
	pthread_mutex_lock(&q->mu);
	while (q->head && got < n) {
		gotcmu_slot *s = q->head;
		q->head = s->cb_next;
		s->cb_next = NULL;
		ids[got] = s->id;
		rets[got] = s->cb_ret;
		got++;
	}
	pthread_mutex_unlock(&q->mu);
	return got;
}

static inline gotcmu_cbq *gotcmu_cbq_new(int efd) {
	gotcmu_cbq *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	pthread_mutex_init(&q->mu, NULL);
	q->efd = efd;
	return q;
}

static inline void gotcmu_cbq_free(gotcmu_cbq *q) {
	if (!q)
		return;
	pthread_mutex_destroy(&q->mu);
	free(q);
}

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

static inline int gotcmu_aio_compare_and_write(rbd_image_t image, gotcmu_slot *s,
		uint64_t off, uint64_t len, const char *cmp, const char *buf) {
	rbd_completion_t c;
	int r = rbd_aio_create_completion(s, gotcmu_cb, &c);
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
