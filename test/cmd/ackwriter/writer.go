package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// writeConfig says what a write run does.
type writeConfig struct {
	Header     logHeader
	Depth      int           // concurrent writers, each owning the blocks b with b%Depth == its index
	Duration   time.Duration // no new write starts after this long (0: only MaxWrites stops)
	MaxWrites  int64         // stop after this many acknowledged writes (0: no limit)
	RetryDelay time.Duration // pause before retrying a failed write
	GiveUp     time.Duration // a write failing for this long ends the run with an error
	Seed       uint64
}

// writeStats is what a write run did.
type writeStats struct {
	Issued    int64 // writes sent, including failed ones
	Acked     int64 // writes the device acknowledged
	Errors    int64 // writes that failed and were retried
	Recovered int64 // acknowledged after the last error: proof the device came back
}

// writer runs one write run over dev.
type writer struct {
	cfg    writeConfig
	dev    io.WriterAt
	log    *ackLog
	newBuf func(int) ([]byte, error) // block-sized buffers, suitably aligned for dev
	logf   func(format string, args ...any)

	seq       atomic.Uint64
	issued    atomic.Int64
	acked     atomic.Int64
	errs      atomic.Int64
	recovered atomic.Int64
}

func (w *writer) run(ctx context.Context) (writeStats, error) {
	if w.cfg.Depth < 1 || uint64(w.cfg.Depth) > w.cfg.Header.Blocks {
		return writeStats{}, fmt.Errorf("depth %d must be between 1 and the %d blocks", w.cfg.Depth, w.cfg.Header.Blocks)
	}
	if w.cfg.Duration <= 0 && w.cfg.MaxWrites <= 0 {
		return writeStats{}, errors.New("neither a duration nor a write count bounds the run")
	}
	stopAt := time.Time{}
	if w.cfg.Duration > 0 {
		stopAt = time.Now().Add(w.cfg.Duration)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, w.cfg.Depth)
	var wg sync.WaitGroup
	for i := range w.cfg.Depth {
		wg.Go(func() {
			if err := w.worker(ctx, uint64(i), stopAt); err != nil {
				errc <- err
				cancel()
			}
		})
	}
	wg.Wait()
	close(errc)
	stats := writeStats{Issued: w.issued.Load(), Acked: w.acked.Load(), Errors: w.errs.Load(), Recovered: w.recovered.Load()}
	return stats, <-errc
}

// worker writes random blocks of its own share until the run ends.
func (w *writer) worker(ctx context.Context, idx uint64, stopAt time.Time) error {
	depth := uint64(w.cfg.Depth)
	share := (w.cfg.Header.Blocks - idx + depth - 1) / depth
	rng := rand.New(rand.NewPCG(w.cfg.Seed, idx))
	buf, err := w.newBuf(w.cfg.Header.BlockSize)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		if !stopAt.IsZero() && time.Now().After(stopAt) {
			return nil
		}
		if w.cfg.MaxWrites > 0 && w.acked.Load() >= w.cfg.MaxWrites {
			return nil
		}
		block := rng.Uint64N(share)*depth + idx
		if err := w.writeBlock(ctx, block, buf); err != nil {
			return err
		}
	}
	return nil
}

// writeBlock writes block until the device acknowledges a write of it. Each
// attempt gets a fresh sequence number, because a failed one may still land.
func (w *writer) writeBlock(ctx context.Context, block uint64, buf []byte) error {
	var failingSince time.Time
	off := w.cfg.Header.Offset + int64(block)*int64(w.cfg.Header.BlockSize)
	for {
		seq := w.seq.Add(1)
		encodeBlock(buf, blockHeader{Run: w.cfg.Header.Run, Block: block, Seq: seq})
		if err := w.log.issued(block, seq); err != nil {
			return err
		}
		w.issued.Add(1)
		n, err := w.dev.WriteAt(buf, off)
		if err == nil && n != len(buf) {
			err = io.ErrShortWrite
		}
		if err == nil {
			if err := w.log.acked(block, seq); err != nil {
				return err
			}
			w.acked.Add(1)
			w.recovered.Add(1)
			return nil
		}
		if n := w.errs.Add(1); n <= 20 {
			w.logf("write block %d seq %d: %v (retrying)", block, seq, err)
		}
		w.recovered.Store(0)
		if failingSince.IsZero() {
			failingSince = time.Now()
		} else if time.Since(failingSince) > w.cfg.GiveUp {
			return fmt.Errorf("write block %d: still failing after %v: %w", block, w.cfg.GiveUp, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.cfg.RetryDelay):
		}
	}
}
