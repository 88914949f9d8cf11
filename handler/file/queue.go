package file

import (
	"sync"

	"github.com/gotcmu/gotcmu/handler"
)

// queue hands IOs from Submit to the workers. It never blocks Submit: a
// bounded channel could, and a worker whose completion submits the next
// step of a command (FUA emulation, WRITE AND VERIFY) would then wait on
// a queue only workers drain. Its ring grows to the most IOs ever queued
// at once, which the kernel bounds (commands in the ring), and is reused,
// so the steady state does not allocate.
type queue struct {
	mu     sync.Mutex
	ready  sync.Cond
	ring   []*handler.IO // length is a power of two
	head   int
	n      int
	closed bool
}

func newQueue() *queue {
	q := &queue{ring: make([]*handler.IO, 64)}
	q.ready.L = &q.mu
	return q
}

// push queues io; false means the queue is closed.
func (q *queue) push(io *handler.IO) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	if q.n == len(q.ring) {
		ring := make([]*handler.IO, 2*len(q.ring))
		for i := range q.n {
			ring[i] = q.ring[(q.head+i)&(len(q.ring)-1)]
		}
		q.ring, q.head = ring, 0
	}
	q.ring[(q.head+q.n)&(len(q.ring)-1)] = io
	q.n++
	q.mu.Unlock()
	q.ready.Signal()
	return true
}

// pop waits for an IO; false means the queue is closed and empty.
func (q *queue) pop() (*handler.IO, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n == 0 {
		if q.closed {
			return nil, false
		}
		q.ready.Wait()
	}
	io := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) & (len(q.ring) - 1)
	q.n--
	return io, true
}

// close refuses further pushes; pop drains what is queued, then reports
// the end.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.ready.Broadcast()
}
