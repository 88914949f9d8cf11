//go:build !nautilus

package rbd

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
)

var _ handler.Poller = (*Image)(nil)

// PollFD implements handler.Poller: the eventfd librbd and the callback
// queue signal when completions wait.
func (im *Image) PollFD() int { return im.efd }

// SetPolled implements handler.Poller. While polled, the device's command
// loop reaps through Poll and the drain goroutine sleeps; otherwise the
// drain goroutine waits for the eventfd itself.
func (im *Image) SetPolled(on bool) {
	im.polled.Store(on)
	im.kickDrain()
	if !on {
		// Whatever was signalled but not yet reaped is the drain
		// goroutine's now; the eventfd may already have been read.
		im.signal()
	}
}

// Poll implements handler.Poller: one reaping pass on the caller's
// goroutine, which sweeps stuck IOs when due.
func (im *Image) Poll() {
	im.reapMu.Lock()
	defer im.reapMu.Unlock()
	if im.closing.Load() {
		return
	}
	im.reap()
}

// drain is the image's completion goroutine while no device loop polls:
// it waits for the eventfd in poll(2), at least every sweepInterval, and
// reaps. While polled it sleeps until SetPolled(false) or stopReaping.
func (im *Image) drain() {
	defer close(im.drained)
	pfd := []unix.PollFd{{Fd: int32(im.efd), Events: unix.POLLIN}}
	for !im.closing.Load() {
		if im.polled.Load() {
			<-im.wakeDrain
			continue
		}
		if _, err := unix.Poll(pfd, int(sweepInterval/time.Millisecond)); err != nil && err != unix.EINTR {
			im.log.Error().Err(err).Msg("wait for rbd eventfd")
			return
		}
		im.reapMu.Lock()
		im.reap()
		im.reapMu.Unlock()
	}
}

// reap reads the eventfd, then delivers every finished completion (Done,
// or the flush that follows a FUA write) and, every sweepInterval, fails
// the IOs librbd sits on. Called with reapMu held.
func (im *Image) reap() {
	unix.Read(im.efd, im.efdCount[:])
	for {
		n, err := pollEvents(im.image, im.comps, &im.ids, &im.rets)
		if err != nil {
			im.log.Error().Err(err).Msg("poll rbd io events")
			n = 0
		}
		for i := 0; i < n; i++ {
			im.complete(im.ids[i], im.rets[i])
		}
		m := takeCallbacks(im.slots.cbq, &im.ids, &im.rets)
		for i := 0; i < m; i++ {
			im.complete(im.ids[i], im.rets[i])
		}
		r := im.pollRetired()
		if n < pollBatch && m < pollBatch && r < pollBatch {
			break
		}
	}
	if now := time.Now(); now.Sub(im.lastSweep) >= sweepInterval {
		im.lastSweep = now
		im.sweep()
	}
}

// stopReaping ends the drain goroutine after one last pass, and waits for
// a Poll in progress: nothing reaps until the drain goroutine is started
// again (Reopen) or the image is released (Close).
func (im *Image) stopReaping() {
	im.closing.Store(true)
	im.kickDrain()
	im.signal()
	<-im.drained
	im.reapMu.Lock()
	//lint:ignore SA2001 an empty critical section: waits for a Poll in progress
	im.reapMu.Unlock()
}

func (im *Image) kickDrain() {
	select {
	case im.wakeDrain <- struct{}{}:
	default:
	}
}

// signal makes the eventfd readable.
func (im *Image) signal() {
	if _, err := unix.Write(im.efd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		im.log.Error().Err(err).Msg("signal rbd eventfd")
	}
}
