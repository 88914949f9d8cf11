package rbd

import (
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// TestAnsweredIOsWakeNoOne holds what the answer on librbd's thread is
// for: while the device's loop polls the image, a read librbd completes
// reaches the initiator (GOOD through the ring and the C doorbell) without
// the image's eventfd being signalled, so the loop is not woken for it;
// the loop's next Poll settles it (IO.Answered). A failed read still
// signals the eventfd.
func TestAnsweredIOsWakeNoOne(t *testing.T) {
	needCeph(t)
	const (
		size = 4 << 20
		n    = 16
		bs   = 4096
	)
	name := newImage(t, "rbd", size, 22)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)
	k := uiotest.New(t, uiotest.Config{DataSize: 1 << 20, DoorbellFD: true, Region: mmapBuf(t, 2<<20)})
	go func() {
		for c := range k.Completions() {
			c.Tag.(chan uiotest.Completion) <- c
		}
	}()
	im.SetPolled(true)
	defer im.SetPolled(false)
	// The drain goroutine notices at the end of its current poll(2), at
	// most sweepInterval from now; until then it would reap too.
	time.Sleep(sweepInterval + 200*time.Millisecond)
	var efd [8]byte
	unix.Read(im.efd, efd[:]) // whatever opening signalled

	var settled atomic.Int64
	chans := make([]chan uiotest.Completion, n)
	for i := range n {
		chans[i] = make(chan uiotest.Completion, 1)
		if _, err := k.Submit(uiotest.Request{CDB: []byte{0x28, 0, 0, 0, 0, byte(i * 8), 0, 0, 8, 0}, DataInLen: bs, Tag: chans[i]}); err != nil {
			t.Fatal(err)
		}
	}
	r := k.Ring()
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		c := uio.NewCommand()
		if ok, err := r.Next(c); !ok || err != nil {
			t.Fatalf("Next %d: %v %v", i, ok, err)
		}
		io := handler.NewIO(func(_ *handler.IO, err error) {
			if err != nil {
				t.Errorf("read %d: %v", i, err)
			}
			settled.Add(1)
		})
		io.Op, io.Off, io.Len, io.Iov, io.Fast = handler.OpRead, int64(i)*bs, bs, c.Iov, r.FastAnswer(c)
		im.Submit(io)
	}
	for i := range n {
		select {
		case c := <-chans[i]:
			if c.Status != 0 {
				t.Fatalf("read %d: status %#x", i, c.Status)
			}
		case <-time.After(time.Minute):
			t.Fatalf("read %d: not answered", i)
		}
	}
	if _, err := unix.Read(im.efd, efd[:]); err != unix.EAGAIN {
		t.Errorf("the eventfd was signalled for reads answered on librbd's thread (read: %v)", err)
	}
	if settled.Load() != 0 {
		t.Fatalf("%d reads settled before the loop polled", settled.Load())
	}
	im.Poll()
	if got := settled.Load(); got != n {
		t.Fatalf("Poll settled %d of %d answered reads", got, n)
	}

	// An IO without Fast (what a failure, FUA or any other operation
	// takes) signals the eventfd.
	done := make(chan error, 1)
	io := handler.NewIO(func(_ *handler.IO, err error) { done <- err })
	io.Op, io.Off, io.Len, io.Iov = handler.OpRead, 0, bs, [][]byte{mmapBuf(t, bs)}
	im.Submit(io)
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := unix.Read(im.efd, efd[:]); err == nil {
			break
		}
		if time.Now().After(deadline) {
			select {
			case err := <-done:
				t.Fatalf("a completion for Go did not signal the eventfd; it was done already: %v", err)
			default:
			}
			t.Fatal("a completion for Go did not signal the eventfd")
		}
		time.Sleep(time.Millisecond)
	}
	im.signal() // what was read above, for Poll's own read
	im.Poll()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
