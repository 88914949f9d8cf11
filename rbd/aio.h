// C side of gotcmu's rbd_aio_* calls. Every helper creates the completion
// itself, with the IO's slot as its argument and gotcmu_done_cb as its
// callback, which runs on a librbd thread when the operation finishes and
// never calls into Go:
//
//   - a successful read or write whose slot names a command to answer
//     (slot.ring, set by the handler through uio.FastAnswer) is answered
//     there: GOOD in the TCMU ring and the doorbell (uio/cring.h), as
//     tcmu-runner completes on librbd's thread. The slot is then linked
//     into the image's answered list, which the device's loop takes at
//     its next Poll, with a wake-up it has anyway (its bookkeeping: the
//     slot, the in-flight count, the latency), so such an IO wakes no Go
//     thread at all; the
//     eventfd is written only while someone waits for it (cbq.wake: the
//     loop is not running, or the device waits for its IO to drain).
//   - every other completion (a failure, which fencing and the lock gate
//     handle in Go; the other operations; a slot without a command) is
//     linked into the callback queue and the eventfd is written.
//
// Completions never go through librbd's event queue
// (rbd_set_image_notification is not used): librbd would queue a
// completion there as well as call its callback.
//
// A helper that fails to start an operation releases the completion and
// returns the negative errno.

#ifndef GOTCMU_AIO_H
#define GOTCMU_AIO_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>
#include <rbd/librbd.h>

#include "../uio/cring.h"

// gotcmu_slot is the C memory of one IO in flight, reused across IOs: the
// iovec array handed to librbd (pointing into the TCMU data area), the
// compare-and-write mismatch offset librbd writes when the IO completes,
// and a bounce buffer for the rare write-same or compare-and-write whose
// data is split over several iovecs.
typedef struct gotcmu_slot gotcmu_slot;

// gotcmu_cbq is an image's queues of finished slots.
typedef struct {
	pthread_mutex_t mu;
	gotcmu_slot *head;     // completions for Go (the eventfd is written)
	gotcmu_slot *answered; // answered in C, waiting for Go's bookkeeping
	int efd;
	uint32_t wake; // > 0: write the eventfd for answered slots too
} gotcmu_cbq;

// Slot states, for a slot that names a command to answer.
enum {
	GOTCMU_SLOT_GO = 0,       // Go answers (no command named, or not yet)
	GOTCMU_SLOT_FAST = 1,     // in flight; C answers it if it succeeds
	GOTCMU_SLOT_ANSWERED = 2, // C answered it
	GOTCMU_SLOT_ABANDONED = 3 // Go failed it as stuck; C must not answer
};

struct gotcmu_slot {
	struct iovec *iov;
	int iov_cap;
	uint64_t mismatch_off;
	char *bounce;
	size_t bounce_cap;
	// For gotcmu_done_cb.
	uint64_t id;
	gotcmu_cbq *q;
	gotcmu_slot *cb_next;
	int64_t cb_ret;
	// The command to answer on success (ring NULL: none), its state
	// (GOTCMU_SLOT_*, atomic) and when it was answered (CLOCK_MONOTONIC).
	gotcmu_ring *ring;
	uint16_t cmd_id;
	uint64_t gen;
	uint32_t state;
	int64_t done_ns;
};

static inline int64_t gotcmu_now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void gotcmu_done_cb(rbd_completion_t c, void *arg) {
	gotcmu_slot *s = arg;
	gotcmu_cbq *q = s->q;
	s->cb_ret = (int64_t)rbd_aio_get_return_value(c);
	rbd_aio_release(c);
	int answered = 0, broken = 0;
	uint32_t fast = GOTCMU_SLOT_FAST;
	if (s->cb_ret >= 0 && s->ring &&
			__atomic_compare_exchange_n(&s->state, &fast, GOTCMU_SLOT_ANSWERED, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
		// A ring broken meanwhile is the loop's to repair: wake it.
		broken = gotcmu_ring_complete(s->ring, s->cmd_id, s->gen, 0, 0, 0, NULL, 0) < 0;
		gotcmu_ring_kick(s->ring);
		s->done_ns = gotcmu_now_ns();
		answered = 1;
	}
	pthread_mutex_lock(&q->mu);
	if (answered) {
		s->cb_next = q->answered;
		q->answered = s;
	} else {
		s->cb_next = q->head;
		q->head = s;
	}
	int wake = !answered || broken || __atomic_load_n(&q->wake, __ATOMIC_SEQ_CST) > 0;
	pthread_mutex_unlock(&q->mu);
	if (wake) {
		uint64_t one = 1;
		// Nothing to do if this fails: the eventfd counter cannot
		// overflow (it would take 2^64-1 signals), and the fd lives
		// until after rbd_close, which waits for this callback.
		(void)!write(q->efd, &one, sizeof(one));
	}
}

// gotcmu_take_cb moves up to n completions for Go into ids and rets.
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

// gotcmu_take_answered moves up to n slots answered in C into ids and
// done (when each was answered, CLOCK_MONOTONIC ns).
static inline int gotcmu_take_answered(gotcmu_cbq *q, uint64_t *ids, int64_t *done, int n) {
	int got = 0;
	pthread_mutex_lock(&q->mu);
	while (q->answered && got < n) {
		gotcmu_slot *s = q->answered;
		q->answered = s->cb_next;
		s->cb_next = NULL;
		ids[got] = s->id;
		done[got] = s->done_ns;
		got++;
	}
	pthread_mutex_unlock(&q->mu);
	return got;
}

// gotcmu_cbq_wake adds delta to the count of those who want the eventfd
// written for answered slots too.
static inline void gotcmu_cbq_wake(gotcmu_cbq *q, int delta) {
	__atomic_add_fetch(&q->wake, (uint32_t)delta, __ATOMIC_SEQ_CST);
}

// gotcmu_slot_arm names the command a slot answers on success (ring NULL:
// none), before its operation starts.
static inline void gotcmu_slot_arm(gotcmu_slot *s, void *ring, uint16_t cmd_id, uint64_t gen) {
	s->ring = ring;
	s->cmd_id = cmd_id;
	s->gen = gen;
	__atomic_store_n(&s->state, ring ? GOTCMU_SLOT_FAST : GOTCMU_SLOT_GO, __ATOMIC_SEQ_CST);
}

// gotcmu_slot_claim takes a slot's answer away from C (sweep failing a
// stuck IO): 1 if C will not answer it, 0 if C has already.
static inline int gotcmu_slot_claim(gotcmu_slot *s) {
	uint32_t fast = GOTCMU_SLOT_FAST;
	if (__atomic_compare_exchange_n(&s->state, &fast, GOTCMU_SLOT_ABANDONED, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return 1;
	return __atomic_load_n(&s->state, __ATOMIC_SEQ_CST) != GOTCMU_SLOT_ANSWERED;
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

// gotcmu_completion creates the completion of an operation on slot s.
static inline int gotcmu_completion(gotcmu_slot *s, rbd_completion_t *c) {
	return rbd_aio_create_completion(s, gotcmu_done_cb, c);
}

static inline int gotcmu_aio_readv(rbd_image_t image, gotcmu_slot *s, int iovcnt, uint64_t off) {
	rbd_completion_t c;
	int r = gotcmu_completion(s, &c);
	if (r < 0)
		return r;
	r = rbd_aio_readv(image, s->iov, iovcnt, off, c);
	if (r < 0)
		rbd_aio_release(c);
	return r;
}

static inline int gotcmu_aio_writev(rbd_image_t image, gotcmu_slot *s, int iovcnt, uint64_t off) {
	rbd_completion_t c;
	int r = gotcmu_completion(s, &c);
	if (r < 0)
		return r;
	r = rbd_aio_writev(image, s->iov, iovcnt, off, c);
	if (r < 0)
		rbd_aio_release(c);
	return r;
}

static inline int gotcmu_aio_discard(rbd_image_t image, gotcmu_slot *s, uint64_t off, uint64_t len) {
	rbd_completion_t c;
	int r = gotcmu_completion(s, &c);
	if (r < 0)
		return r;
	r = rbd_aio_discard(image, off, len, c);
	if (r < 0)
		rbd_aio_release(c);
	return r;
}

static inline int gotcmu_aio_flush(rbd_image_t image, gotcmu_slot *s) {
	rbd_completion_t c;
	int r = gotcmu_completion(s, &c);
	if (r < 0)
		return r;
	r = rbd_aio_flush(image, c);
	if (r < 0)
		rbd_aio_release(c);
	return r;
}

static inline int gotcmu_aio_writesame(rbd_image_t image, gotcmu_slot *s, uint64_t off, uint64_t len,
		const char *buf, size_t data_len) {
	rbd_completion_t c;
	int r = gotcmu_completion(s, &c);
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
	int r = gotcmu_completion(s, &c);
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

#endif
