package handler

import (
	"context"
	"sync"
	"sync/atomic"
)

// inFlight counts a device's IOs in flight (backend operations, and
// commands queued behind a range lock or in a helper goroutine) and is the
// one signal for "nothing in flight": shutdown, ring repair and the lock
// gate's reopen wait on it instead of polling the count. The hot path pays
// one atomic add; only a decrement to zero with a waiter present takes the
// mutex.
type inFlight struct {
	n       atomic.Int64
	waiters atomic.Int32
	mu      sync.Mutex
	zero    chan struct{} // closed at the next zero; nil when no one waits
}

func (f *inFlight) add(delta int64) {
	if f.n.Add(delta) == 0 && f.waiters.Load() > 0 {
		f.mu.Lock()
		if f.zero != nil {
			close(f.zero)
			f.zero = nil
		}
		f.mu.Unlock()
	}
}

func (f *inFlight) load() int64 { return f.n.Load() }

// wait returns once nothing is in flight, or ctx's error.
func (f *inFlight) wait(ctx context.Context) error {
	f.waiters.Add(1)
	defer f.waiters.Add(-1)
	for {
		f.mu.Lock()
		if f.n.Load() == 0 {
			f.mu.Unlock()
			return nil
		}
		if f.zero == nil {
			f.zero = make(chan struct{})
		}
		ch := f.zero
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
