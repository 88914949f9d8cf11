package handler

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestInFlightWait(t *testing.T) {
	var f inFlight
	if err := f.wait(context.Background()); err != nil {
		t.Fatalf("wait with nothing in flight: %v", err)
	}
	f.add(2)
	done := make(chan error, 1)
	go func() { done <- f.wait(context.Background()) }()
	f.add(-1)
	select {
	case err := <-done:
		t.Fatalf("wait returned (%v) with one IO in flight", err)
	case <-time.After(20 * time.Millisecond):
	}
	f.add(-1)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not return when the count reached zero")
	}
	f.add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := f.wait(ctx); err != context.DeadlineExceeded {
		t.Fatalf("wait past its context: %v", err)
	}
	f.add(-1)
}

// Many IOs coming and going while waiters wait: every waiter returns, and
// none returns while the count is above zero for good.
func TestInFlightWaitUnderChurn(t *testing.T) {
	var f inFlight
	f.add(1) // held until the end
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				f.add(1)
				f.add(-1)
			}
		}()
	}
	returned := make(chan struct{})
	for range 4 {
		go func() {
			f.wait(context.Background())
			returned <- struct{}{}
		}()
	}
	wg.Wait()
	select {
	case <-returned:
		t.Fatal("a waiter returned with an IO still in flight")
	case <-time.After(20 * time.Millisecond):
	}
	f.add(-1)
	for range 4 {
		select {
		case <-returned:
		case <-time.After(5 * time.Second):
			t.Fatal("a waiter never returned")
		}
	}
}
