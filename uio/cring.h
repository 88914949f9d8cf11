// The completion side of a TCMU command ring, in C so that a backend's own
// C threads can answer a command without entering Go: librbd's callback
// thread writes a successful IO's response and rings the doorbell itself,
// as tcmu-runner does (rbd/aio.h), and the Go side (uio/ring.go) takes and
// completes every other command through the same functions, under the
// same lock. One implementation of the rules, two callers.
//
// Layout (offsets into the mapping) as in uio/layout.go and the kernel's
// include/uapi/linux/target_core_user.h; TestCRingLayout holds the two
// together.
//
// Every function takes the ring's lock itself. The mapping is shared with
// the kernel and may be corrupted by anyone who can write it: every offset
// read from it is checked before use, and a header that is no longer what
// Next validated marks the ring broken instead of writing on.

#ifndef GOTCMU_CRING_H
#define GOTCMU_CRING_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOTCMU_MB_CMD_HEAD_OFF 12
#define GOTCMU_MB_CMD_TAIL_OFF 64
#define GOTCMU_HDR_CMD_ID_OFF 4
#define GOTCMU_HDR_UFLAGS_OFF 7
#define GOTCMU_RSP_STATUS_OFF 8
#define GOTCMU_RSP_READ_LEN_OFF 12
#define GOTCMU_RSP_SENSE_OFF 16
#define GOTCMU_SENSE_BUFFERSIZE 96
#define GOTCMU_OP_PAD 0
#define GOTCMU_OP_TMR 2
#define GOTCMU_OP_MASK 0x7u
#define GOTCMU_UFLAG_UNKNOWN_OP 0x1
#define GOTCMU_UFLAG_READ_LEN 0x2

typedef struct {
	pthread_mutex_t mu;
	uint8_t *mem;       // the mapping: mailbox, command ring, data area
	uint32_t cmdr_off;  // the command ring's offset in mem
	uint32_t cmdr_size; // and its size
	int doorbell_fd;    // the uio fd, or -1: kicks from C are left to Go

	// Under mu.
	uint32_t tail;        // our copy of the mailbox's cmd_tail
	uint32_t outstanding; // commands taken and not completed
	uint64_t gen;         // bumped by reset: older completions are dropped
	// A bit per cmd_id taken and not yet completed (see uio.Ring.held).
	uint64_t held[1 << 16 >> 6];

	// Atomics (Go reads and writes them with sync/atomic too).
	uint32_t fetched;      // how far the fetch side has read (offset)
	uint32_t broken;       // a header changed under us: Next must fail
	uint32_t kick_pending; // completions written since the last doorbell
	uint32_t kicking;      // someone is ringing the doorbell
} gotcmu_ring;

static inline gotcmu_ring *gotcmu_ring_new(uint8_t *mem, uint32_t cmdr_off, uint32_t cmdr_size) {
	gotcmu_ring *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	r->mem = mem;
	r->cmdr_off = cmdr_off;
	r->cmdr_size = cmdr_size;
	r->doorbell_fd = -1;
	return r;
}

static inline void gotcmu_ring_free(gotcmu_ring *r) {
	if (!r)
		return;
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static inline uint32_t *gotcmu_ring_u32(gotcmu_ring *r, uint32_t off) {
	return (uint32_t *)(r->mem + off);
}

static inline uint32_t gotcmu_ring_dist(gotcmu_ring *r, uint32_t from, uint32_t to) {
	return to >= from ? to - from : r->cmdr_size - from + to;
}

static inline void gotcmu_ring_set_broken(gotcmu_ring *r) {
	__atomic_store_n(&r->broken, 1, __ATOMIC_SEQ_CST);
}

// gotcmu_ring_entry_at re-reads and checks the header of the entry at pos,
// which Next validated when it fetched it (the kernel never rewrites a fetched entry, but the region is shared and
// a corrupted header must not send the tail past what was fetched).
static inline int gotcmu_ring_entry_at(gotcmu_ring *r, uint32_t pos, uint32_t fetched, uint32_t *len, uint32_t *op) {
	uint32_t len_op;
	memcpy(&len_op, r->mem + r->cmdr_off + pos, sizeof(len_op));
	*len = len_op & ~GOTCMU_OP_MASK;
	*op = len_op & GOTCMU_OP_MASK;
	return *len != 0 && *len <= r->cmdr_size - pos && *len <= gotcmu_ring_dist(r, pos, fetched);
}

// gotcmu_ring_skip_no_reply moves the tail past PAD and TMR entries, never
// past what was fetched; 0 if a header is no longer valid (ring broken).
static inline int gotcmu_ring_skip_no_reply(gotcmu_ring *r, uint32_t fetched) {
	while (r->tail != fetched) {
		uint32_t len, op;
		if (!gotcmu_ring_entry_at(r, r->tail, fetched, &len, &op)) {
			gotcmu_ring_set_broken(r);
			return 0;
		}
		if (op != GOTCMU_OP_PAD && op != GOTCMU_OP_TMR)
			return 1;
		r->tail = (r->tail + len) % r->cmdr_size;
	}
	return 1;
}

// gotcmu_ring_reset_behind reports, with mu held, whether the ring was
// reset behind our back (see uio.Ring.checkTail): cmd_tail is not what we
// stored, or cmd_head is behind what was fetched. The second catches a
// reset while the tail was at 0; it misses one after which new commands
// already reach past the fetch position, a window of the time it takes the
// kernel to queue them. That window is why a handler resets its ring
// itself, with the device blocked (uio.Ring.Reset), and nobody else should.
static inline int gotcmu_ring_reset_behind(gotcmu_ring *r, uint32_t fetched) {
	uint32_t t = __atomic_load_n(gotcmu_ring_u32(r, GOTCMU_MB_CMD_TAIL_OFF), __ATOMIC_SEQ_CST);
	uint32_t h = __atomic_load_n(gotcmu_ring_u32(r, GOTCMU_MB_CMD_HEAD_OFF), __ATOMIC_SEQ_CST);
	return t != r->tail || h >= r->cmdr_size || gotcmu_ring_dist(r, t, h) < gotcmu_ring_dist(r, t, fetched);
}

// gotcmu_ring_take_n makes the n cmd_ids of entries fetched in one batch
// ours (uio.Ring's take-ahead) and returns the ring's generation: all are
// taken, or, if one of them cannot have been issued now (0, held already,
// or twice in the batch), the ring is broken, none is, and it returns -1.
static inline int64_t gotcmu_ring_take_n(gotcmu_ring *r, const uint16_t *ids, uint32_t n) {
	int64_t gen = -1;
	uint32_t i;
	pthread_mutex_lock(&r->mu);
	for (i = 0; i < n; i++) {
		uint16_t id = ids[i];
		uint64_t bit = (uint64_t)1 << (id % 64);
		if (id == 0 || (r->held[id / 64] & bit))
			break;
		r->held[id / 64] |= bit;
	}
	if (i < n) {
		// Undo what this batch took: a duplicate stops at its second
		// occurrence, whose bit the first one set.
		while (i-- > 0)
			r->held[ids[i] / 64] &= ~((uint64_t)1 << (ids[i] % 64));
		gotcmu_ring_set_broken(r);
	} else {
		r->outstanding += n;
		gen = (int64_t)r->gen;
	}
	pthread_mutex_unlock(&r->mu);
	return gen;
}

// gotcmu_ring_complete writes the response of command id, taken in
// generation gen, into the oldest unanswered slot and advances cmd_tail
// past it (uio.Ring.Complete). Returns 1 when written (a kick is pending),
// 0 when dropped (a generation before a reset, or id not ours), -1 when the
// ring turned out broken. sense may be NULL (sense_len 0).
static inline int gotcmu_ring_complete_locked(gotcmu_ring *r, uint16_t id, uint64_t gen, uint8_t uflags,
		uint8_t status, uint32_t read_len, const uint8_t *sense, uint32_t sense_len) {
	int rc = -1;
	uint64_t bit = (uint64_t)1 << (id % 64);
	if (gen != r->gen || r->outstanding == 0 || !(r->held[id / 64] & bit)) {
		rc = 0;
		goto out;
	}
	r->outstanding--;
	uint32_t fetched = __atomic_load_n(&r->fetched, __ATOMIC_SEQ_CST);
	if (gotcmu_ring_reset_behind(r, fetched)) {
		// The slot at our tail may hold a newer command by now.
		gotcmu_ring_set_broken(r);
		goto out;
	}
	if (!gotcmu_ring_skip_no_reply(r, fetched) || r->tail == fetched) {
		gotcmu_ring_set_broken(r);
		goto out;
	}
	uint32_t len, op;
	if (!gotcmu_ring_entry_at(r, r->tail, fetched, &len, &op)) {
		gotcmu_ring_set_broken(r);
		goto out;
	}
	uint8_t *slot = r->mem + r->cmdr_off + r->tail;
	memcpy(slot + GOTCMU_HDR_CMD_ID_OFF, &id, sizeof(id));
	slot[GOTCMU_HDR_UFLAGS_OFF] = uflags;
	if (len > GOTCMU_RSP_STATUS_OFF)
		slot[GOTCMU_RSP_STATUS_OFF] = status;
	if ((uflags & GOTCMU_UFLAG_READ_LEN) && len >= GOTCMU_RSP_READ_LEN_OFF + 4)
		memcpy(slot + GOTCMU_RSP_READ_LEN_OFF, &read_len, sizeof(read_len));
	if (len > GOTCMU_RSP_SENSE_OFF) {
		// The kernel copies all TCMU_SENSE_BUFFERSIZE bytes to the
		// initiator; clear what sense does not cover, which still holds
		// the stolen slot's iovecs.
		uint32_t room = len - GOTCMU_RSP_SENSE_OFF;
		if (room > GOTCMU_SENSE_BUFFERSIZE)
			room = GOTCMU_SENSE_BUFFERSIZE;
		uint32_t n = sense_len < room ? sense_len : room;
		if (n)
			memcpy(slot + GOTCMU_RSP_SENSE_OFF, sense, n);
		memset(slot + GOTCMU_RSP_SENSE_OFF + n, 0, room - n);
	}
	r->tail = (r->tail + len) % r->cmdr_size;
	gotcmu_ring_skip_no_reply(r, fetched);
	// Release: the response above is visible before the new tail.
	__atomic_store_n(gotcmu_ring_u32(r, GOTCMU_MB_CMD_TAIL_OFF), r->tail, __ATOMIC_SEQ_CST);
	r->held[id / 64] &= ~bit;
	__atomic_store_n(&r->kick_pending, 1, __ATOMIC_SEQ_CST);
	rc = 1;
out:
	return rc;
}

static inline int gotcmu_ring_complete(gotcmu_ring *r, uint16_t id, uint64_t gen, uint8_t uflags, uint8_t status,
		uint32_t read_len, const uint8_t *sense, uint32_t sense_len) {
	pthread_mutex_lock(&r->mu);
	int rc = gotcmu_ring_complete_locked(r, id, gen, uflags, status, read_len, sense, sense_len);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

// gotcmu_ring_release advances cmd_tail past PAD and TMR entries with no
// command behind them (uio.Ring.Release); 1 if it moved cmd_tail.
static inline int gotcmu_ring_release_locked(gotcmu_ring *r) {
	int moved = 0;
	uint32_t t = r->tail;
	uint32_t fetched = __atomic_load_n(&r->fetched, __ATOMIC_SEQ_CST);
	if (gotcmu_ring_reset_behind(r, fetched)) {
		gotcmu_ring_set_broken(r);
	} else {
		gotcmu_ring_skip_no_reply(r, fetched);
		if (r->tail != t) {
			__atomic_store_n(gotcmu_ring_u32(r, GOTCMU_MB_CMD_TAIL_OFF), r->tail, __ATOMIC_SEQ_CST);
			__atomic_store_n(&r->kick_pending, 1, __ATOMIC_SEQ_CST);
			moved = 1;
		}
	}
	return moved;
}

static inline int gotcmu_ring_release(gotcmu_ring *r) {
	pthread_mutex_lock(&r->mu);
	int moved = gotcmu_ring_release_locked(r);
	pthread_mutex_unlock(&r->mu);
	return moved;
}

// gotcmu_answer is one response that uio.Ring.CompleteLater kept for
// gotcmu_ring_complete_n: plain data (no pointers), so that Go can hand C
// an array of them.
typedef struct {
	uint64_t gen;
	uint32_t read_len;
	uint32_t sense_len;
	uint16_t id;
	uint8_t uflags;
	uint8_t status;
	uint8_t sense[GOTCMU_SENSE_BUFFERSIZE];
} gotcmu_answer;

// gotcmu_ring_complete_n writes n responses as gotcmu_ring_complete would,
// one after the other under one lock, then moves the tail past PAD and TMR
// entries as gotcmu_ring_release does (the end of a drained batch).
static inline void gotcmu_ring_complete_n(gotcmu_ring *r, const gotcmu_answer *a, uint32_t n) {
	pthread_mutex_lock(&r->mu);
	for (uint32_t i = 0; i < n; i++)
		gotcmu_ring_complete_locked(r, a[i].id, a[i].gen, a[i].uflags, a[i].status, a[i].read_len, a[i].sense,
			a[i].sense_len < GOTCMU_SENSE_BUFFERSIZE ? a[i].sense_len : GOTCMU_SENSE_BUFFERSIZE);
	gotcmu_ring_release_locked(r);
	pthread_mutex_unlock(&r->mu);
}

// gotcmu_ring_check_tail checks that cmd_tail is what we last stored
// (uio.Ring.checkTail) and marks the ring broken if not. It returns the
// tail found in the high 32 bits and ours in the low: equal halves mean
// all is well.
static inline uint64_t gotcmu_ring_check_tail(gotcmu_ring *r) {
	pthread_mutex_lock(&r->mu);
	uint32_t found = __atomic_load_n(gotcmu_ring_u32(r, GOTCMU_MB_CMD_TAIL_OFF), __ATOMIC_SEQ_CST);
	uint32_t ours = r->tail;
	if (found != ours)
		gotcmu_ring_set_broken(r);
	pthread_mutex_unlock(&r->mu);
	return (uint64_t)found << 32 | ours;
}

// gotcmu_ring_reset forgets every outstanding command and starts at tail
// (uio.Ring.Reset and resync).
static inline void gotcmu_ring_reset(gotcmu_ring *r, uint32_t tail, int new_gen) {
	pthread_mutex_lock(&r->mu);
	if (new_gen)
		r->gen++;
	r->outstanding = 0;
	r->tail = tail;
	__atomic_store_n(&r->fetched, tail, __ATOMIC_SEQ_CST);
	__atomic_store_n(&r->broken, 0, __ATOMIC_SEQ_CST);
	memset(r->held, 0, sizeof(r->held));
	pthread_mutex_unlock(&r->mu);
}

static inline uint32_t gotcmu_ring_outstanding(gotcmu_ring *r) {
	pthread_mutex_lock(&r->mu);
	uint32_t n = r->outstanding;
	pthread_mutex_unlock(&r->mu);
	return n;
}

// gotcmu_ring_kick rings the doorbell from C if completions are pending,
// with the same coalescing as uio.Ring.Kick (the two share kick_pending and
// kicking): a 4-byte write to the uio fd runs tcmu_irqcontrol. Returns 0 or
// the negative errno of the write. Without a doorbell fd the kick stays
// pending for Go.
static inline int gotcmu_ring_kick(gotcmu_ring *r) {
	int err = 0;
	if (r->doorbell_fd < 0)
		return 0;
	for (;;) {
		if (!__atomic_load_n(&r->kick_pending, __ATOMIC_SEQ_CST))
			return err;
		uint32_t idle = 0;
		if (!__atomic_compare_exchange_n(&r->kicking, &idle, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return err;
		if (__atomic_exchange_n(&r->kick_pending, 0, __ATOMIC_SEQ_CST)) {
			uint32_t bell = 0;
			ssize_t n;
			do {
				n = write(r->doorbell_fd, &bell, sizeof(bell));
			} while (n < 0 && errno == EINTR);
			if (n < 0 && !err)
				err = -errno;
		}
		__atomic_store_n(&r->kicking, 0, __ATOMIC_SEQ_CST);
	}
}

#endif
