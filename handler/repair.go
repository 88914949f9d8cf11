package handler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gotcmu/gotcmu/uio"
)

// A ring that breaks again and again is not repaired forever: after
// maxRepairs within repairWindow the device's command loop stops (the
// kernel then fails its commands once they time out), so a ring that a
// bug or a hostile writer corrupts continuously cannot spin the daemon.
const (
	maxRepairs   = 5
	repairWindow = time.Minute
)

// serve runs a device's command loop until ctx is cancelled or the device
// cannot be served. A broken ring (uio.ErrBrokenRing: a corrupt entry
// header, a cmd_id the kernel still holds, a reset_ring someone else
// wrote) does not end it: the ring is reset the way a restarted daemon
// adopts a device, every command in it fails with BUSY for the initiator
// to retry, and serving goes on.
func (m *Manager) serve(ctx context.Context, md *managed) error {
	var recent []time.Time
	for {
		err := md.dev.Run(ctx)
		if err == nil || ctx.Err() != nil || !errors.Is(err, uio.ErrBrokenRing) {
			return err
		}
		now := time.Now()
		recent = slices.DeleteFunc(recent, func(t time.Time) bool { return now.Sub(t) > repairWindow })
		if len(recent) >= maxRepairs {
			return fmt.Errorf("ring broken %d times within %v, giving up: %w", len(recent)+1, repairWindow, err)
		}
		recent = append(recent, now)
		md.dev.log.Error().Err(err).Msg("command ring broken: resetting it (its commands fail with BUSY and are retried)")
		if rerr := m.repairRing(ctx, md); rerr != nil {
			return errors.Join(err, rerr)
		}
		md.dev.log.Info().Msg("command ring reset; serving again")
	}
}

// repairRing resets a broken ring: block_dev, wait until the backend has
// no IO in flight, Ring.Reset, reset_ring, unblock (Ring.Reset documents
// the order). The wait matters: reset_ring frees the data-area blocks of
// every command in the ring and gives them to new commands, so a read
// still in flight would write into another command's buffer and a write
// in flight could take another command's data.
func (m *Manager) repairRing(ctx context.Context, md *managed) error {
	log := md.dev.log
	if err := md.files.BlockDev(true); err != nil {
		log.Warn().Err(err).Msg("block device for ring reset")
	}
	defer func() {
		if err := md.files.BlockDev(false); err != nil {
			log.Error().Err(err).Msg("unblock device after ring reset")
		}
	}()
	if err := md.dev.WaitIdle(ctx); err != nil {
		return err
	}
	md.dev.ring.Reset()
	if err := md.files.ResetRing(); err != nil {
		return fmt.Errorf("reset ring: %w", err)
	}
	return nil
}
