//go:build !nautilus

package rbd

import (
	"bytes"
	"errors"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"

	"github.com/gotcmu/gotcmu/handler"
)

func countFDs(t *testing.T) int {
	t.Helper()
	return fdKinds(t)[""]
}

// TestNoLeaksAfterClose opens, uses and closes images and checks that the
// process is back to its goroutine and fd counts: the drain goroutine, the
// eventfd and the client's sockets all go away.
func TestNoLeaksAfterClose(t *testing.T) {
	needCeph(t)
	const size = 4 << 20
	name := newImage(t, "rbd", size, 22)
	buf := fill(mmapBuf(t, 64<<10), 'l')
	cycle := func(h handler.Handler) {
		im := openDevice(t, h, "rbd/"+name, size)
		for i := 0; i < 50; i++ {
			if _, err := do(im, handler.OpWrite, int64(i)*4096, 64<<10, i%5 == 0, buf); err != nil {
				t.Fatal(err)
			}
			data := mmapBuf(t, 512)
			copy(data[256:], make([]byte, 256))
			do(im, handler.OpCompareAndWrite, 0, 256, false, data[:512])
		}
		if err := im.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Warm up: librados and Go keep some process-wide state (log and
	// crypto setup, netpoller fds) from the first client on.
	cycle(Handler(Options{}))
	runtime.GC()
	fds, gs := countFDs(t), runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		cycle(Handler(Options{}))
		cycle(Handler(Options{ImagesPerClient: 4}))
	}
	var gotFDs, gotGs int
	// Goroutines of finished cgo calls and timers exit asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		gotFDs, gotGs = countFDs(t), runtime.NumGoroutine()
		if (gotFDs <= fds && gotGs <= gs) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if gotFDs > fds || gotGs > gs {
		buf := make([]byte, 1<<16)
		t.Errorf("after 6 open/IO/close cycles: %d fds (was %d), %d goroutines (was %d)\n%s",
			gotFDs, fds, gotGs, gs, buf[:runtime.Stack(buf, true)])
	}
	t.Logf("fds %d -> %d, goroutines %d -> %d", fds, gotFDs, gs, gotGs)
}

// TestImageRemovedUnderOpenDevice deletes the image's objects behind the
// back of an open device (rbd rm refuses an image with watchers): IO must
// fail or succeed cleanly, never hang, and Close must work.
func TestImageRemovedUnderOpenDevice(t *testing.T) {
	admin := needCeph(t)
	const size = 8 << 20
	name := newImage(t, "rbd", size, 20)
	// The micro cluster's heartbeat grace+interval is 6 s: 7 s is the
	// shortest op timeout the rule accepts, so stuck writes fail after 21 s.
	im := openDevice(t, Handler(Options{}), "rbd/"+name+";osd_op_timeout=7", size)
	data := fill(mmapBuf(t, 1<<20), 'd')
	if _, err := do(im, handler.OpWrite, 0, 1<<20, false, data); err != nil {
		t.Fatal(err)
	}
	ioctx, err := admin.OpenIOContext("rbd")
	if err != nil {
		t.Fatal(err)
	}
	defer ioctx.Destroy()
	var removed []string
	err = ioctx.ListObjects(func(oid string) {
		removed = append(removed, oid)
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := rbdID(im.image)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, oid := range removed {
		if oid == "rbd_header."+id || oid == "rbd_id."+name || bytes.HasPrefix([]byte(oid), []byte("rbd_data."+id)) {
			if err := ioctx.Delete(oid); err != nil && !errors.Is(err, rados.ErrNotFound) {
				t.Fatalf("delete %s: %v", oid, err)
			}
			n++
		}
	}
	if n < 3 {
		t.Fatalf("deleted %d objects of the image, want header, id and data", n)
	}
	// librbd notices when its header watch fails: reads then fail (it
	// cannot refresh the header), and a write needs the exclusive lock,
	// which librbd waits for forever once its watch is gone; the backend
	// fails such a write after three op timeouts. Every IO must return
	// within that bound, and writes must end up failing.
	limit := stuckIOLimit(7*time.Second) + 3*time.Second
	start := time.Now()
	var writeErr, readErr error
	for i := 0; writeErr == nil && time.Since(start) < 2*limit; i++ {
		t0 := time.Now()
		_, writeErr = do(im, handler.OpWrite, int64(i%256)*4096, 4096, true, data[:4096])
		_, err := do(im, handler.OpRead, 0, 4096, false, data[4096:8192])
		if err != nil && readErr == nil {
			readErr = err
			t.Logf("first read error after %v: %v", time.Since(start), err)
		}
		if took := time.Since(t0); took > limit {
			t.Errorf("IO on a removed image took %v, want at most %v", took, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("write error after %v: %v", time.Since(start), writeErr)
	if writeErr == nil {
		t.Error("writes to a removed image keep succeeding")
	}
	// Reads of deleted data objects return zeros unless librbd failed to
	// refresh the header first: either is clean.
	t.Logf("reads: %v", readErr)
	if _, _, err := im.Status(t.Context(), 0, size); err != nil {
		t.Logf("status after removal: %v", err)
	}
	// librbd keeps the failed write forever: Close refuses to close the
	// handle (librbd may crash closing it), at once and with EBUSY.
	start = time.Now()
	err = im.Close()
	t.Logf("close after removal: %v after %v", err, time.Since(start))
	if !errors.Is(err, syscall.EBUSY) {
		t.Errorf("Close with a stuck write = %v, want EBUSY", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v", took)
	}
}

// TestOSDStoppedUnderIO stops the only OSD while IO runs: commands must
// fail with ETIMEDOUT within osd_op_timeout (plus scheduling slack), never
// hang, and IO must work again, with the data intact, once the OSD is back.
func TestOSDStoppedUnderIO(t *testing.T) {
	needCeph(t)
	if cluster.dir == "" {
		t.Skip("CEPH_CONF names a cluster not started by test/micro-ceph.sh: cannot stop its OSD")
	}
	const size, timeout = 16 << 20, 8 * time.Second
	name := newImage(t, "rbd", size, 20)
	im := openDevice(t, Handler(Options{}), "rbd/"+name+";osd_op_timeout=8", size)
	model := fill(mmapBuf(t, size), 'm')
	if _, err := do(im, handler.OpWrite, 0, size, false, split(model, 1<<20)...); err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var mu sync.Mutex
	var timedOut int
	var worst time.Duration
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		buf := mmapBuf(t, 4096)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				off := int64((w*1000+i)%(size/4096)) * 4096
				start := time.Now()
				_, err := do(im, handler.OpRead, off, 4096, false, buf)
				took := time.Since(start)
				mu.Lock()
				worst = max(worst, took)
				switch {
				case errors.Is(err, syscall.ETIMEDOUT):
					timedOut++
				case err != nil:
					t.Errorf("read during OSD outage: %v, want ETIMEDOUT", err)
				case !bytes.Equal(buf, model[off:off+4096]):
					t.Errorf("read at %d returned wrong data", off)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	if out, err := exec.Command(microCeph(), "stop-osd", cluster.dir).CombinedOutput(); err != nil {
		t.Fatalf("stop osd: %v\n%s", err, out)
	}
	outage := time.Now()
	// Long enough for every reader to time out at least once.
	time.Sleep(timeout + 4*time.Second)
	if out, err := exec.Command(microCeph(), "start-osd", cluster.dir).CombinedOutput(); err != nil {
		t.Fatalf("start osd: %v\n%s", err, out)
	}
	t.Logf("osd down for %v", time.Since(outage))
	// Recovery: a read succeeds within two timeouts of the OSD's return.
	back := time.Now()
	buf := mmapBuf(t, 4096)
	for {
		_, err := do(im, handler.OpRead, 0, 4096, false, buf)
		if err == nil {
			break
		}
		if time.Since(back) > 2*timeout {
			t.Fatalf("IO does not recover after the OSD returned: %v", err)
		}
	}
	t.Logf("IO recovered %v after the OSD returned", time.Since(back))
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	t.Logf("%d reads timed out; slowest read %v (osd_op_timeout %v)", timedOut, worst, timeout)
	if timedOut == 0 {
		t.Error("no read timed out while the OSD was down")
	}
	if worst > timeout+5*time.Second {
		t.Errorf("slowest read took %v, want at most osd_op_timeout %v plus 5 s", worst, timeout)
	}
	mu.Unlock()
	if st := im.ServiceStatus(); st.CmdTimedOutCnt == 0 {
		t.Errorf("service status %+v counts no timed-out command", st)
	}
	// Writes work again and everything written before is intact.
	data := fill(mmapBuf(t, 1<<20), 'w')
	if _, err := do(im, handler.OpWrite, 0, 1<<20, true, data); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	copy(model, data)
	if got := readBack(t, im, 0, size); !bytes.Equal(got, model) {
		t.Error("image content differs from the model after the OSD restart")
	}
}
