//go:build !nautilus

package rbd

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
)

// The C heap is trimmed after a client is shut down, after its last image,
// and not while another image still uses the client (trim.go says why);
// the clients of a burst of closes (a daemon stopping) share one trim,
// trimDelay after the last.
func TestClientShutdownTrimsTheCHeap(t *testing.T) {
	var trims atomic.Int32
	oldTrim, oldDelay := trimCHeap, trimDelay
	trimCHeap = func() { trims.Add(1) }
	trimDelay = 50 * time.Millisecond
	t.Cleanup(func() { trimCHeap, trimDelay = oldTrim, oldDelay })

	p := newClientPool(2)
	newClient := func(key connKey, images int) *client {
		conn, err := rados.NewConn()
		if err != nil {
			t.Fatal(err)
		}
		c := &client{key: key, conn: conn, images: images}
		p.mu.Lock()
		p.clients[key] = append(p.clients[key], c)
		p.mu.Unlock()
		return c
	}
	c := newClient(connKey{}, 2)
	p.put(c)
	time.Sleep(2 * trimDelay)
	if n := trims.Load(); n != 0 || len(p.clients[connKey{}]) != 1 {
		t.Fatalf("after the first of two images: %d trims, %d clients; want 0 and 1", n, len(p.clients[connKey{}]))
	}
	p.put(c)
	if len(p.clients) != 0 {
		t.Fatalf("after the last image: %d client keys, want 0", len(p.clients))
	}
	deadline := time.Now().Add(5 * time.Second)
	for trims.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := trims.Load(); n != 1 {
		t.Fatalf("after the last image's client shut down: %d trims, want 1", n)
	}
	// Five clients shut down in a burst: one trim, after the last.
	var burst []*client
	for i := range 5 {
		burst = append(burst, newClient(connKey{id: fmt.Sprint(i)}, 1))
	}
	for _, c := range burst {
		p.put(c)
		time.Sleep(trimDelay / 5)
	}
	if n := trims.Load(); n != 1 {
		t.Errorf("during a burst of 5 client shutdowns %d trims more, want none yet", n-1)
	}
	time.Sleep(3 * trimDelay)
	if n := trims.Load(); n != 2 {
		t.Errorf("a burst of 5 client shutdowns trimmed %d times, want once", n-1)
	}
}
