//go:build !nautilus

package rbd

/*
#include "aio.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/ceph/go-ceph/rados"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
)

// Image is one open RBD image serving a device: a handler.Backend, a
// handler.LBAStatuser and a handler.Resizer, plus the exclusive-lock
// operations the failover logic needs. Safe for concurrent use.
type Image struct {
	cfg    Config
	log    zerolog.Logger
	pool   *clientPool
	client *client
	ioctx  *rados.IOContext
	image  C.rbd_image_t

	size    atomic.Int64
	objSize int64
	limits  handler.Limits
	stuck   time.Duration // see stuckIOLimit

	slots slots
	fence fence // failed writes waiting for their client's fence (fence.go)
	// connLost is the device's lock gate's signal of a lost connection
	// (WatchConnection); nil until the gate registers it.
	connLost atomic.Pointer[func()]

	// Completion side (poll.go): every completion runs aio.h's callback,
	// which answers a successful read or write in C (IO.Fast) and queues
	// the slot to the answered list, or queues it to the callback queue
	// for Go. Both are reaped by the drain goroutine, or by the device's
	// command loop through Poll while polled; reapMu is held by whichever
	// reaps.
	efd       int // eventfd, non-blocking, out of Go's netpoller
	reapMu    sync.Mutex
	ids       [pollBatch]uint64
	rets      [pollBatch]int64
	lastSweep time.Time
	// monoBase and timeBase are one reading of CLOCK_MONOTONIC (aio.h's
	// clock) and of time.Now, taken together: the time of an answer in C.
	monoBase int64
	timeBase time.Time
	// answeredC counts the IOs answered on librbd's thread (tests).
	answeredC atomic.Uint64
	efdCount  [8]byte // the eventfd's count, read and dropped (a field: no allocation in race builds)
	polled    atomic.Bool
	wakeDrain chan struct{} // wakes a drain goroutine parked while polled
	closing   atomic.Bool
	drained   chan struct{}
	closed    atomic.Bool
	closeErr  error
	closeMu   sync.Mutex

	svc *service

	// handle guards client, ioctx and image, which Reopen replaces
	// (locker.go): users of the handle hold it for reading.
	handle sync.RWMutex
	reopen reopenState
	// retired are handles Reopen replaced while librbd still held
	// operations of theirs that sweep failed; reap collects their
	// completions and closes them once none is left (pollRetired).
	retired []retiredHandle
}

var _ interface {
	handler.Backend
	handler.LBAStatuser
	handler.Resizer
} = (*Image)(nil)

// cawSector is the most librbd 16 compares and writes atomically: the range
// must lie within one 512-byte sector (librbd/io/ImageRequest.cc,
// ImageCompareAndWriteRequest::prune_object_extents), so only devices with
// 512-byte blocks get it natively.
const cawSector = 512

// Limits implements handler.Backend.
func (im *Image) Limits() handler.Limits { return im.limits }

// Size returns the image size the device is serving.
func (im *Image) Size() int64 { return im.size.Load() }

// ObjectSize returns the size of the image's RADOS objects.
func (im *Image) ObjectSize() int64 { return im.objSize }

// Submit implements handler.Backend. It starts the librbd operation and
// returns; io.Done is called from the image's drain goroutine, or at once
// if the IO is malformed or librbd refuses to start it.
func (im *Image) Submit(io *handler.IO) {
	if !im.handle.TryRLock() {
		// Reopen is replacing the client.
		io.Done(fmt.Errorf("%s on %s while reopening: %w", io.Op, im.cfg.ImageSpec(), syscall.ESHUTDOWN))
		return
	}
	defer im.handle.RUnlock()
	if im.closed.Load() {
		io.Done(fmt.Errorf("%s on closed image %s: %w", io.Op, im.cfg.ImageSpec(), syscall.ESHUTDOWN))
		return
	}
	if err := im.check(io); err != nil {
		io.Done(err)
		return
	}
	if io.Len == 0 && io.Op != handler.OpFlush {
		io.Done(nil)
		return
	}
	id, cs := im.slots.get(io)
	var err error
	switch io.Op {
	case handler.OpRead:
		armSlot(cs, io.Fast)
		err = aioReadv(im.image, cs, setIovecs(cs, io.Iov), io.Off)
	case handler.OpWrite:
		armSlot(cs, io.Fast)
		err = aioWritev(im.image, cs, setIovecs(cs, io.Iov), io.Off)
	case handler.OpFlush:
		err = aioFlush(im.image, cs)
	case handler.OpDiscard:
		err = aioDiscard(im.image, cs, io.Off, io.Len)
	case handler.OpWriteSame:
		n := handler.IovLen(io.Iov)
		err = aioWriteSame(im.image, cs, io.Off, io.Len, contiguous(cs, io.Iov, int(n)), int(n))
	case handler.OpCompareAndWrite:
		p := contiguous(cs, io.Iov, int(2*io.Len))
		err = aioCompareAndWrite(im.image, cs, io.Off, io.Len, p, (*C.char)(unsafe.Add(unsafe.Pointer(p), io.Len)))
	}
	if err != nil {
		im.slots.put(id)
		io.Done(im.opError(io, err))
	}
}

// check refuses an IO that does not describe a valid operation on this
// image. The handler checks commands against the device size already;
// this guards librbd against a handler bug or a size that changed.
func (im *Image) check(io *handler.IO) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s %d+%d on %s: %s: %w", io.Op, io.Off, io.Len, im.cfg.ImageSpec(),
			fmt.Sprintf(format, args...), syscall.EINVAL)
	}
	if io.Op == handler.OpFlush {
		return nil
	}
	size := im.size.Load()
	if io.Off < 0 || io.Len < 0 || io.Off > size || io.Len > size-io.Off {
		return bad("beyond the image's %d bytes", size)
	}
	if len(io.Iov) > maxIovecs {
		return bad("%d iovecs, at most %d", len(io.Iov), maxIovecs)
	}
	n := handler.IovLen(io.Iov)
	switch io.Op {
	case handler.OpRead, handler.OpWrite:
		if n != io.Len {
			return bad("iovecs hold %d bytes", n)
		}
	case handler.OpDiscard:
	case handler.OpWriteSame:
		if io.Len == 0 {
			return nil
		}
		if n == 0 || n > maxBounce || io.Len%n != 0 {
			return bad("pattern of %d bytes does not tile the range", n)
		}
	case handler.OpCompareAndWrite:
		if n != 2*io.Len {
			return bad("iovecs hold %d bytes, want twice the length", n)
		}
		if io.Off/cawSector != (io.Off+io.Len-1)/cawSector {
			return bad("librbd compares within one %d-byte sector only", cawSector)
		}
	default:
		return bad("unknown operation %d", io.Op)
	}
	return nil
}

// opError wraps librbd's errno with the operation and notes what the
// failure means for the device's state (see noteError).
func (im *Image) opError(io *handler.IO, err error) error {
	im.noteError(err)
	return fmt.Errorf("%s %d+%d on %s: %w", io.Op, io.Off, io.Len, im.cfg.ImageSpec(), err)
}

// noteError counts the failures Ceph's service map reports (tcmu-runner
// rbd.c rbd_finish_aio_generic): a timed-out command, and a lost lock,
// which librbd reports as ESHUTDOWN once the client is blocklisted and as
// EROFS when the exclusive lock was taken away.
func (im *Image) noteError(err error) {
	switch {
	case errors.Is(err, syscall.ETIMEDOUT):
		im.svc.cmdTimedOut()
	case errors.Is(err, syscall.ESHUTDOWN):
		im.pool.markBroken(im.client)
		im.svc.lockLost()
	case errors.Is(err, syscall.EROFS):
		im.svc.lockLost()
	}
}

// startEvents creates the eventfd the completions signal and starts the
// goroutine that drains them.
func (im *Image) startEvents() error {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("create eventfd: %w", err)
	}
	im.slots.cbq = C.gotcmu_cbq_new(C.int(fd))
	if im.slots.cbq == nil {
		unix.Close(fd)
		return fmt.Errorf("allocate callback queue: %w", syscall.ENOMEM)
	}
	// Not polled yet: the drain goroutine reaps, and must hear of every
	// answer (SetPolled).
	wakeOnAnswer(im.slots.cbq, 1)
	im.timeBase, im.monoBase = time.Now(), monoNow()
	// Not in Go's netpoller: the device's command loop watches it in its
	// own epoll set, or the drain goroutine waits for it in poll(2), so a
	// completion wakes one waiter, never a second through the netpoller.
	im.efd = fd
	im.wakeDrain = make(chan struct{}, 1)
	im.drained = make(chan struct{})
	go im.drain()
	return nil
}

// complete finishes one stage of the IO in slot id with librbd's result.
func (im *Image) complete(id uint64, ret int64) {
	var err error
	if ret < 0 {
		err = syscall.Errno(-ret)
	}
	var mismatchOff uint64
	var slot *C.gotcmu_slot
	io, st, state := im.slots.finish(id, func(io *handler.IO, st stage, cs *C.gotcmu_slot) stage {
		// Read before the slot is freed: a new IO may take it at once.
		mismatchOff = uint64(cs.mismatch_off)
		slot = cs
		if st == stageOp && err == nil && io.Op == handler.OpWrite && io.FUA {
			return stageFUA
		}
		return stageIdle
	})
	switch state {
	case slotInvalid:
		im.log.Error().Uint64("slot", id).Int64("ret", ret).Msg("rbd completion for a free slot")
		return
	case slotAbandoned:
		im.log.Warn().Uint64("slot", id).Int64("ret", ret).Msg("rbd operation completed after it was failed as stuck")
		return
	}
	switch {
	case err != nil && io.Op == handler.OpCompareAndWrite && errors.Is(err, syscall.EILSEQ):
		io.MiscompareOffset = im.mismatch(io, int64(mismatchOff))
		io.Done(fmt.Errorf("compare and write %d+%d on %s: miscompare at byte %d: %w",
			io.Off, io.Len, im.cfg.ImageSpec(), io.MiscompareOffset, syscall.EILSEQ))
	case err != nil && st == stageOp && uncertain(io.Op, err):
		// librados gave up waiting; the write may still reach the OSD.
		im.failFenced(im.client, io, im.opError(io, err))
	case err != nil:
		io.Done(im.opError(io, err))
	case st == stageOp && io.Op == handler.OpWrite && io.FUA:
		// SBC-4 5.40 (WRITE(16)): with FUA the data must be on the
		// medium before GOOD; librbd writes are stable once acknowledged
		// with the cache off, and the flush makes that explicit.
		if err := aioFlush(im.image, slot); err != nil {
			im.slots.finish(id, func(*handler.IO, stage, *C.gotcmu_slot) stage { return stageIdle })
			io.Done(im.opError(io, err))
		}
	default:
		io.Done(nil)
	}
}

// sweepInterval is how often reap looks for stuck IOs.
const sweepInterval = time.Second

// stuckIOLimit is how long a non-read IO may wait for librbd before it is
// failed with ETIMEDOUT. Each of librbd's RADOS operations is bounded by
// osd_op_timeout, and an IO needs at most a few in sequence (lock
// acquisition, object map update, the write), so three timeouts mean librbd
// waits for something that does not come: e.g. a write that needs the
// exclusive lock after the image's header was deleted waits for a watch
// that can never be registered again ("watcher not registered - delaying
// request").
func stuckIOLimit(osdOpTimeout time.Duration) time.Duration { return 3 * osdOpTimeout }

// sweep fails the IOs that are stuck in librbd (see slots.sweep); the
// writes among them only once their client is fenced, since librbd may
// still send them (fence.go).
func (im *Image) sweep() {
	for _, io := range im.slots.sweep(time.Now(), im.stuck) {
		im.log.Error().Stringer("op", io.Op).Int64("off", io.Off).Int64("len", io.Len).
			Dur("after", im.stuck).Msg("rbd operation stuck; failing it")
		err := im.opError(io, fmt.Errorf("no answer from librbd in %v: %w", im.stuck, syscall.ETIMEDOUT))
		if uncertain(io.Op, err) {
			im.failFenced(im.client, io, err)
			continue
		}
		io.Done(err)
	}
}

// mismatch converts librbd's mismatch offset to one relative to io.Off.
// librbd 16.2 reports it relative to the compared range already (measured
// by TestCompareAndWrite); later librbd maps it back to an image offset
// (librbd/io/ObjectRequest.cc, extent_to_file), which tcmu-runner
// subtracts the start from. A compared range lies within one 512-byte
// sector at a sector-aligned offset, so the two readings cannot be
// confused unless io.Off is 0, where they agree.
func (im *Image) mismatch(io *handler.IO, off int64) int64 {
	switch {
	case off >= io.Off && off < io.Off+io.Len:
		return off - io.Off
	case off >= 0 && off < io.Len:
		return off
	}
	im.log.Warn().Int64("mismatch_off", off).Int64("off", io.Off).Msg("librbd mismatch offset outside the compared range")
	return 0
}

// Close implements handler.Backend: it stops the drain goroutine, closes
// the image (releasing its exclusive lock if held) and releases the client.
func (im *Image) Close() error {
	im.closeMu.Lock()
	defer im.closeMu.Unlock()
	im.handle.Lock()
	defer im.handle.Unlock()
	if im.closed.Swap(true) {
		return im.closeErr
	}
	if n := im.slots.inFlight(); n > 0 {
		im.log.Warn().Int("in_flight", n).Msg("closing rbd image with IO in flight")
	}
	// Stop reaping (the drain goroutine and Poll); the eventfd stays
	// open until librbd has closed the image, so librbd never signals a
	// closed (and possibly reused) fd number.
	im.stopReaping()
	// A write failed by slots.sweep is still inside librbd, waiting for
	// something that does not come (see stuckIOLimit). rbd_close would
	// wait for it forever, and librbd 16 was seen to crash (SIGSEGV on an
	// io_context_pool thread) while closing an image in that state. So such
	// an image is not closed at all: its handle, client, eventfd and slots
	// are left to librbd, and the leak is logged.
	if n := im.slots.abandonedCount(); n > 0 {
		im.log.Error().Int("stuck", n).Msg("not closing rbd image: librbd still holds operations failed as stuck; leaving its handle and client open")
		im.svc.close()
		im.closeErr = fmt.Errorf("close image %s: librbd still holds %d stuck operations: %w", im.cfg.ImageSpec(), n, syscall.EBUSY)
		return im.closeErr
	}
	// Writes waiting for their client's fence still need the client.
	if im.fence.busy() {
		im.log.Error().Msg("not closing rbd image: failed writes wait for the client's fence; leaving its handle and client open")
		im.svc.close()
		im.closeErr = fmt.Errorf("close image %s: failed writes wait for the client's fence: %w", im.cfg.ImageSpec(), syscall.EBUSY)
		return im.closeErr
	}
	// Otherwise rbd_close waits for the operations librbd holds, each
	// bounded by osd_op_timeout; Close gives up after stuckIOLimit all the
	// same, and the eventfd, slots, IO context and client are then
	// released only if librbd ever returns: they must outlive the handle.
	closed := make(chan error, 1)
	go func() { closed <- rbdClose(im.image) }()
	select {
	case err := <-closed:
		im.closeErr = im.release(err)
	case <-time.After(im.stuck):
		im.log.Error().Dur("after", im.stuck).Int("in_flight", im.slots.inFlight()).
			Msg("librbd does not close the image; its handle and client stay open until it does")
		go func() { im.release(<-closed) }()
		im.closeErr = fmt.Errorf("close image %s: librbd did not return in %v: %w", im.cfg.ImageSpec(), im.stuck, syscall.ETIMEDOUT)
	}
	return im.closeErr
}

// release frees what the image used once rbd_close returned closeErr.
func (im *Image) release(closeErr error) error {
	var errs []error
	if closeErr != nil {
		errs = append(errs, fmt.Errorf("close image %s: %w", im.cfg.ImageSpec(), closeErr))
	}
	if err := unix.Close(im.efd); err != nil {
		errs = append(errs, fmt.Errorf("close eventfd: %w", err))
	}
	for _, r := range im.retired {
		r.close(im)
	}
	im.retired = nil
	im.slots.release()
	C.gotcmu_cbq_free(im.slots.cbq)
	im.svc.close()
	im.ioctx.Destroy()
	im.pool.put(im.client)
	return errors.Join(errs...)
}

// Resize implements handler.Resizer. ceph-iscsi resizes the image before
// it writes the device's new size, so usually the image has that size
// already. A larger size grows the image (nothing is lost). A smaller one
// is refused unless the image was shrunk first (rbd resize --allow-shrink):
// gotcmu never deletes image data because a device size was written.
func (im *Image) Resize(size int64) error {
	im.handle.RLock()
	defer im.handle.RUnlock()
	if size <= 0 {
		return fmt.Errorf("resize %s to %d bytes: %w", im.cfg.ImageSpec(), size, syscall.EINVAL)
	}
	got, err := rbdSize(im.image)
	if err != nil {
		return fmt.Errorf("get size of %s: %w", im.cfg.ImageSpec(), err)
	}
	switch {
	case got < size:
		if err := rbdGrow(im.image, size); err != nil {
			im.noteError(err)
			return fmt.Errorf("grow %s from %d to %d bytes: %w", im.cfg.ImageSpec(), got, size, err)
		}
	case got > size:
		return fmt.Errorf("resize %s to %d bytes: the image is %d bytes; shrink the image first (rbd resize --allow-shrink), gotcmu does not delete image data: %w",
			im.cfg.ImageSpec(), size, got, syscall.EINVAL)
	}
	old := im.size.Swap(size)
	im.log.Info().Int64("old_size", old).Int64("size", size).Int64("image_size", got).Msg("rbd device resized")
	return nil
}
