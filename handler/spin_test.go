package handler_test

import (
	"testing"
	"time"
)

// A plugged fake kernel queues commands without raising the uio event, as
// the kernel does while the target core plugs the device: only a loop
// that looks at the ring without being woken can serve them.
func TestSpinWaitServesWithoutWakeup(t *testing.T) {
	tur := make([]byte, 6)
	served := func(d *device, within time.Duration) bool {
		t.Helper()
		d.mustGood(t, tur, nil, 0)
		// Let the loop finish that batch and any wake-up left over from
		// it: it is now spinning (a spin-wait of 10 s), or sleeping in Wait
		// (none, or one of 20 ms, over twice: a wake-up left from the
		// command spun on returns at once and the loop spins again).
		time.Sleep(200 * time.Millisecond)
		d.k.Plug()
		defer d.k.Unplug()
		wait := d.start(t, tur, nil, 0)
		done := make(chan reply, 1)
		go func() { done <- wait() }()
		select {
		case r := <-done:
			if r.Status != statusGood {
				t.Errorf("TEST UNIT READY: status %#x", r.Status)
			}
			return true
		case <-time.After(within):
			d.k.Unplug() // the event it waits for
			select {
			case r := <-done:
				if r.Status != statusGood {
					t.Errorf("TEST UNIT READY after the wake-up: status %#x", r.Status)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("TEST UNIT READY not served even after the wake-up")
			}
			return false
		}
	}
	t.Run("spin", func(t *testing.T) {
		d := newDevice(t, devConfig{spinWait: 10 * time.Second})
		if !served(d, 5*time.Second) {
			t.Error("a command queued while the loop spins waited for a wake-up")
		}
	})
	t.Run("block", func(t *testing.T) {
		d := newDevice(t, devConfig{})
		if served(d, 300*time.Millisecond) {
			t.Error("without a spin-wait a command queued with no wake-up was served: the test cannot tell spinning from sleeping")
		}
	})
	t.Run("spin-expires", func(t *testing.T) {
		// After the spin-wait the loop sleeps: it does not poll for ever.
		d := newDevice(t, devConfig{spinWait: 20 * time.Millisecond})
		if served(d, 300*time.Millisecond) {
			t.Error("a command queued long after the spin-wait ended was served without a wake-up")
		}
	})
}
