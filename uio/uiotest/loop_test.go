package uiotest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// TestDeviceLoop runs a device loop written against uio.Waiter and
// *uio.Ring, as the handler's is, unchanged against the fake kernel, and
// stops it the two ways a real one stops.
func TestDeviceLoop(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, k.Ring(), k) }()

	for i := range 3 {
		id, err := k.Submit(uiotest.Request{CDB: read10(1), DataInLen: 512, Tag: i})
		if err != nil {
			t.Fatal(err)
		}
		c := completion(t, k)
		if c.ID != id || c.Tag != i || c.Status != 0 || len(c.DataIn) != 512 || c.DataIn[0] != 0 || c.DataIn[511] != 0xff {
			t.Fatalf("completion %d: %+v", i, c)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("loop after cancel: %v", err)
	}

	go func() { done <- serve(context.Background(), k.Ring(), k) }()
	k.Remove()
	select {
	case err := <-done:
		if !errors.Is(err, uio.ErrDeviceGone) {
			t.Fatalf("loop after Remove: %v, want ErrDeviceGone", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("loop did not stop when the device was removed")
	}
}

// serve is a minimal device loop: wait, fetch up to cmd_head, answer,
// reclaim PAD and TMR space, ring the doorbell once per batch.
func serve(ctx context.Context, ring *uio.Ring, w uio.Waiter) error {
	c := uio.NewCommand()
	for {
		if err := w.Wait(ctx); err != nil {
			return err
		}
		if err := ring.Refresh(); err != nil {
			return err
		}
		for {
			ok, err := ring.Next(c)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			i := 0
			for _, b := range c.Iov {
				for j := range b {
					b[j] = byte(i)
					i++
				}
			}
			ring.Complete(c)
		}
		ring.Release()
		if err := ring.Kick(); err != nil {
			return err
		}
	}
}
