package handler

import (
	"testing"
	"time"
)

// A device being closed waits for the copies of other devices that use
// its backend, and refuses new ones.
func TestCopyUsersClose(t *testing.T) {
	var u copyUsers
	for i := 0; i < 2; i++ {
		if !u.acquire() {
			t.Fatalf("acquire %d of an open device failed", i+1)
		}
	}
	closed := make(chan struct{})
	go func() {
		u.close()
		close(closed)
	}()
	u.release()
	select {
	case <-closed:
		t.Fatal("close returned with a copy still running")
	case <-time.After(20 * time.Millisecond):
	}
	u.release()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return once the copies ended")
	}
	if u.acquire() {
		t.Fatal("acquire of a closed device succeeded")
	}
}

func TestScratchPool(t *testing.T) {
	var p scratchPool
	var bufs [][]byte
	for range scratchIdle + 2 {
		b, err := p.get()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != scratchSize {
			t.Fatalf("buffer of %d bytes, want %d", len(b), scratchSize)
		}
		b[0], b[len(b)-1] = 1, 1 // mapped and writable
		bufs = append(bufs, b)
	}
	for _, b := range bufs {
		p.put(b)
	}
	if len(p.free) != scratchIdle {
		t.Fatalf("%d buffers kept, want %d", len(p.free), scratchIdle)
	}
	b, err := p.get()
	if err != nil || &b[0] != &bufs[len(bufs)-3][0] {
		t.Fatalf("get did not reuse the last kept buffer (err %v)", err)
	}
	p.close()
	if len(p.free) != 0 {
		t.Fatal("close kept buffers")
	}
	p.put(b)
	if len(p.free) != 0 {
		t.Fatal("a buffer put back after close was kept")
	}
}
