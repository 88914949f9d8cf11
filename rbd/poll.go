//go:build !nautilus

package rbd

/*
#include "aio.h"
*/
import "C"

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
)

var (
	_ handler.Poller      = (*Image)(nil)
	_ handler.AnswerWaker = (*Image)(nil)
)

// PollFD implements handler.Poller: the eventfd librbd and the callback
// queue signal when completions wait.
func (im *Image) PollFD() int { return im.efd }

// SetPolled implements handler.Poller. While polled, the device's command
// loop reaps through Poll and the drain goroutine sleeps; otherwise the
// drain goroutine waits for the eventfd itself.
func (im *Image) SetPolled(on bool) {
	if im.polled.Swap(on) != on {
		// While polled, an answer in C waits for the loop's next
		// wake-up; otherwise the drain goroutine must hear of it.
		if on {
			wakeOnAnswer(im.slots.cbq, -1)
		} else {
			wakeOnAnswer(im.slots.cbq, 1)
		}
	}
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

// reap reads the eventfd, then delivers every finished completion: the
// commands answered in C (their bookkeeping, IO.Answered) and those left
// to Go (Done, or the flush that follows a FUA write); and, every
// sweepInterval, fails the IOs librbd sits on. Called with reapMu held.
func (im *Image) reap() {
	unix.Read(im.efd, im.efdCount[:])
	for {
		n := takeAnswered(im.slots.cbq, &im.ids, &im.rets)
		for i := 0; i < n; i++ {
			im.answered(im.ids[i], im.rets[i])
		}
		m := takeCallbacks(im.slots.cbq, &im.ids, &im.rets)
		for i := 0; i < m; i++ {
			im.complete(im.ids[i], im.rets[i])
		}
		if n < pollBatch && m < pollBatch {
			break
		}
	}
	im.closeRetired()
	if now := time.Now(); now.Sub(im.lastSweep) >= sweepInterval {
		im.lastSweep = now
		im.sweep()
	}
}

// answered settles the IO of slot id, which aio.h's callback answered GOOD
// at doneNS (CLOCK_MONOTONIC).
func (im *Image) answered(id uint64, doneNS int64) {
	io, _, state := im.slots.finish(id, func(*handler.IO, stage, *C.gotcmu_slot) stage { return stageIdle })
	if state != slotLive {
		im.log.Error().Uint64("slot", id).Msg("rbd answer for a free or abandoned slot")
		return
	}
	im.answeredC.Add(1)
	io.Answered(im.timeBase.Add(time.Duration(doneNS - im.monoBase)))
}

// WakeOnAnswer implements handler.AnswerWaker: while on, every command
// answered in C signals the eventfd, so that the loop (or the drain
// goroutine) settles it at once; turning it on reaps what waits already.
func (im *Image) WakeOnAnswer(on bool) {
	if on {
		wakeOnAnswer(im.slots.cbq, 1)
		im.signal()
	} else {
		wakeOnAnswer(im.slots.cbq, -1)
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
