package handler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gotcmu/gotcmu/uio"
)

// A ring that breaks again and again is not repaired at once forever:
// after maxRepairs within repairWindow the device's command loop gives up
// (the kernel then fails its commands once they time out), so a ring that
// a bug or a hostile writer corrupts continuously cannot spin the daemon.
const (
	maxRepairs   = 5
	repairWindow = time.Minute
)

// A device whose command loop gave up (its ring broken too often, or a
// fault the loop recovered from) is retried after a backoff, doubling from
// giveUpRetryMin to giveUpRetryMax while it keeps giving up, instead of
// staying dead until the daemon restarts. Each retry resets the ring as a
// repair does. A loop that then serves for giveUpRetryMax starts the
// backoff again from the minimum.
const (
	giveUpRetryMin = time.Second
	giveUpRetryMax = 5 * time.Minute
	// giveUpIdleWait bounds a retry's wait for the backend's IO to
	// drain before the ring is reset: an IO whose command faulted may
	// never complete, and the retry then waits for the next backoff
	// instead of hanging.
	giveUpIdleWait = 30 * time.Second
)

// loopState is what `gotcmu status` and the metrics show of a device's
// command loop after it gave up.
type loopState struct {
	mu      sync.Mutex
	givenUp bool
	at      time.Time // the last give-up
	next    time.Time // the next retry
	lastErr error
	// giveUps counts the times the loop gave up, over the device's life.
	giveUps uint64
}

// reason is the Status line of a given-up loop ("" when it serves).
func (s *loopState) reason(now time.Time) (givenUp bool, reason string, giveUps uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.givenUp {
		return false, "", s.giveUps
	}
	return true, fmt.Sprintf("command loop given up %s ago (%d times so far), next retry in %s: %v",
		now.Sub(s.at).Round(time.Second), s.giveUps, max(s.next.Sub(now), 0).Round(time.Second), s.lastErr), s.giveUps
}

// serve runs a device's command loop until ctx is cancelled or the device
// is gone. A broken ring (uio.ErrBrokenRing: a corrupt entry header, a
// cmd_id the kernel still holds, a reset_ring someone else wrote) does not
// end it: the ring is reset the way a restarted daemon adopts a device,
// every command in it fails with BUSY for the initiator to retry, and
// serving goes on. A loop that gives up is retried after a backoff.
func (m *Manager) serve(ctx context.Context, md *managed) error {
	log := md.dev.log
	var recent []time.Time
	var delay time.Duration
	for {
		started := time.Now()
		err := md.dev.Run(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		now := time.Now()
		if errors.Is(err, uio.ErrBrokenRing) {
			recent = slices.DeleteFunc(recent, func(t time.Time) bool { return now.Sub(t) > repairWindow })
			if len(recent) < maxRepairs {
				recent = append(recent, now)
				log.Error().Err(err).Msg("command ring broken: resetting it (its commands fail with BUSY and are retried)")
				rerr := m.repairRing(ctx, md, 0)
				if rerr == nil {
					log.Info().Msg("command ring reset; serving again")
					continue
				}
				err = errors.Join(err, rerr)
			} else {
				err = fmt.Errorf("ring broken %d times within %v: %w", len(recent)+1, repairWindow, err)
			}
		}
		if !m.present(md.ref) {
			// Removed under us (its REMOVED event still to come or
			// lost): nothing to retry.
			return err
		}
		if now.Sub(started) >= m.giveUpMax() {
			delay = 0
		}
		for {
			delay = min(max(2*delay, m.giveUpMin()), m.giveUpMax())
			md.loop.giveUp(err, now, delay)
			log.Error().Err(err).Dur("retry_in", delay).Msg("command loop given up: retrying after a backoff")
			select {
			case <-ctx.Done():
				return err
			case <-m.giveUpTimer(delay):
			}
			// The retry resets the ring, and counts as a repair: a
			// ring broken again at once gives up again, with a longer
			// backoff.
			rerr := m.repairRing(ctx, md, giveUpIdleWait)
			if ctx.Err() != nil {
				return err
			}
			if rerr == nil {
				recent = append(recent, time.Now())
				md.loop.retried()
				log.Info().Msg("command loop given up earlier: ring reset, serving again")
				break
			}
			err, now = fmt.Errorf("retry: %w", rerr), time.Now()
		}
	}
}

// giveUp records that the loop gave up with err and is retried after
// delay.
func (s *loopState) giveUp(err error, now time.Time, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.givenUp, s.at, s.next, s.lastErr = true, now, now.Add(delay), err
	s.giveUps++
}

// retried records a retry that serves again.
func (s *loopState) retried() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.givenUp = false
}

// isGivenUp reports whether the loop waits for a retry.
func (s *loopState) isGivenUp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.givenUp
}

func (m *Manager) giveUpMin() time.Duration {
	if d := time.Duration(m.giveUpLo.Load()); d > 0 {
		return d
	}
	return giveUpRetryMin
}

func (m *Manager) giveUpMax() time.Duration {
	if d := time.Duration(m.giveUpHi.Load()); d > 0 {
		return max(d, m.giveUpMin())
	}
	return max(giveUpRetryMax, m.giveUpMin())
}

// giveUpTimer is time.After unless a test replaces it.
func (m *Manager) giveUpTimer(d time.Duration) <-chan time.Time {
	if f := m.giveUpAfter.Load(); f != nil {
		return (*f)(d)
	}
	return time.After(d)
}

// repairRing resets a broken ring: block_dev, wait until the backend has
// no IO in flight, Ring.Reset, reset_ring, unblock (Ring.Reset documents
// the order). The wait matters: reset_ring frees the data-area blocks of
// every command in the ring and gives them to new commands, so a read
// still in flight would write into another command's buffer and a write
// in flight could take another command's data. A wait longer than
// idleWait (0: no bound) fails the repair with the ring untouched.
func (m *Manager) repairRing(ctx context.Context, md *managed, idleWait time.Duration) error {
	log := md.dev.log
	if err := md.files.BlockDev(true); err != nil {
		log.Warn().Err(err).Msg("block device for ring reset")
	}
	defer func() {
		if err := md.files.BlockDev(false); err != nil {
			log.Error().Err(err).Msg("unblock device after ring reset")
		}
	}()
	wctx := ctx
	if idleWait > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, idleWait)
		defer cancel()
	}
	if err := md.dev.WaitIdle(wctx); err != nil {
		return fmt.Errorf("wait for %d IOs in flight: %w", md.dev.InFlight(), err)
	}
	md.dev.ring.Reset()
	if err := md.files.ResetRing(); err != nil {
		return fmt.Errorf("reset ring: %w", err)
	}
	return nil
}
