//go:build !nautilus

package rbd

/*
#cgo LDFLAGS: -lrbd -lrados
#include <rados/librados.h>
#include <rbd/librbd.h>
*/
import "C"

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/ceph/go-ceph/rados"

	"github.com/gotcmu/gotcmu/handler"
)

// Image implements handler.Locker: the device's lock gate takes the
// image's exclusive lock through it and replaces a fenced client.
var _ handler.Locker = (*Image)(nil)

// reopenState is what Reopen needs beyond the open image.
type reopenState struct {
	// h opened the image; Reopen registers the new client with it.
	h *rbdHandler
	// timedOutAtOpen is the image's timed-out command count when its
	// client was opened (see Reopen on blocklist entries).
	timedOutAtOpen uint64
}

// reopenPoll is how often Reopen checks that the image's IO drained.
const reopenPoll = 2 * time.Millisecond

// IsLockOwner implements handler.Locker.
func (im *Image) IsLockOwner() (bool, error) {
	im.handle.RLock()
	defer im.handle.RUnlock()
	return im.IsExclusiveLockOwner()
}

// AcquireLock implements handler.Locker with BreakAndAcquire. librbd
// cannot be interrupted: ctx is checked before starting.
func (im *Image) AcquireLock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	im.handle.RLock()
	defer im.handle.RUnlock()
	if im.closed.Load() {
		return fmt.Errorf("acquire lock of closed image %s: %w", im.cfg.ImageSpec(), syscall.ESHUTDOWN)
	}
	return im.BreakAndAcquire()
}

// LockOwner implements handler.Locker: the address of the client holding
// the image's exclusive lock, as rbd_lock_get_owners names it.
func (im *Image) LockOwner() (string, error) {
	im.handle.RLock()
	defer im.handle.RUnlock()
	owners, err := im.lockOwners()
	if err != nil {
		return "", fmt.Errorf("get lock owners of %s: %w", im.cfg.ImageSpec(), err)
	}
	if len(owners) == 0 {
		return "", nil
	}
	return owners[0], nil
}

// Reopen implements handler.Locker, as tcmu-runner's reopen after a lost
// lock or connection does (close and open: a new rados client, which the
// blocklist entry of the old one does not cover). It waits for the IO in
// flight on the old client; IO submitted meanwhile fails with ESHUTDOWN.
// The new client, IO context and image handle are opened before the old
// ones are closed, so a failure leaves the image serving (or failing) on
// the old client.
//
// Once the old client is shut down, its blocklist entry is removed, as
// tcmu-runner removes its own stale entries: nothing can use that address
// any more. That happens in the background after Reopen returns, since the
// monitors take about a second (a Paxos round) to answer. The entry is
// kept when a command of the old client timed out, since the OSDs may
// still hold such a command.
func (im *Image) Reopen(ctx context.Context) error {
	im.handle.Lock()
	stale, err := im.reopenLocked(ctx)
	im.handle.Unlock()
	if stale != "" {
		go im.removeStaleEntry(stale)
	}
	return err
}

// reopenLocked is Reopen with the handle held; it returns the old
// client's address if its blocklist entry is to be removed.
func (im *Image) reopenLocked(ctx context.Context) (stale string, err error) {
	if im.closed.Load() {
		return "", fmt.Errorf("reopen closed image %s: %w", im.cfg.ImageSpec(), syscall.ESHUTDOWN)
	}
	// Wait for the operations librbd may still answer, and for failed
	// writes waiting for the old client's fence: none may be left
	// behind on a client that can still write. Operations sweep gave up
	// on were failed only after that fence, so they are not waited for.
	t := time.NewTicker(reopenPoll)
	defer t.Stop()
	for im.slots.live() > 0 || im.fence.busy() {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("reopen %s: wait for %d operations: %w", im.cfg.ImageSpec(), im.slots.live(), ctx.Err())
		case <-t.C:
		}
	}

	old := im.client
	oldAddr, addrErr := old.conn.GetAddrs()
	// The old client serves no new image, so the pool connects afresh.
	im.pool.markBroken(old)
	cl, ioctx, image, err := im.openHandle(ctx)
	if err != nil {
		return "", err
	}

	// Point of no return: stop completions, close the old handle.
	im.stopReaping()
	im.svc.unbind()
	if n := im.slots.abandonedCount(); n > 0 {
		// rbd_close would wait for them, and librbd 16 was seen to
		// crash closing such a handle (Close): reap collects their
		// completions and closes it afterwards (pollRetired).
		im.log.Warn().Int("stuck", n).Msg("librbd still holds operations of the replaced client; closing its handle once they return")
		im.retired = append(im.retired, retiredHandle{im.image, im.ioctx, old})
	} else {
		if err := rbdClose(im.image); err != nil {
			im.log.Warn().Err(err).Msg("close image on the replaced client")
		}
		im.ioctx.Destroy()
		im.pool.put(old)
	}
	shutDown := im.pool.unused(old)

	im.client, im.ioctx, im.image = cl, ioctx, image
	im.closing.Store(false)
	im.drained = make(chan struct{})
	go im.drain()

	if svc, err := im.reopen.h.register(ctx, im); err != nil {
		im.log.Warn().Err(err).Msg("register the new client in the ceph service map")
	} else {
		im.svc.rebind(svc)
	}
	newAddr, _ := cl.conn.GetAddrs()
	im.log.Info().Str("old_addr", oldAddr).Str("new_addr", newAddr).Msg("rbd image reopened with a new client")
	timedOut := im.svc.get().CmdTimedOutCnt
	defer func() { im.reopen.timedOutAtOpen = timedOut }()
	switch {
	case addrErr != nil:
		im.log.Warn().Err(addrErr).Msg("old client address unknown; its blocklist entry stays")
	case old.isFenced():
		// Writes it timed out on may still reach an OSD that has not
		// seen the entry yet: the entry expires on its own.
		im.log.Info().Str("addr", oldAddr).Msg("old client was fenced by this gateway; its blocklist entry stays")
	case !shutDown:
		im.log.Info().Str("addr", oldAddr).Msg("old client still serves other images; its blocklist entry stays")
	case timedOut != im.reopen.timedOutAtOpen:
		im.log.Info().Str("addr", oldAddr).Msg("old client had commands time out; its blocklist entry stays")
	default:
		return oldAddr, nil
	}
	return "", nil
}

// removeStaleEntry removes a replaced client's blocklist entry, unless the
// image closed meanwhile.
func (im *Image) removeStaleEntry(addr string) {
	im.handle.RLock()
	defer im.handle.RUnlock()
	if im.closed.Load() {
		return
	}
	if err := im.RemoveBlocklistEntry(addr); err != nil {
		im.log.Warn().Err(err).Msg("remove the old client's blocklist entry")
		return
	}
	im.log.Info().Str("addr", addr).Msg("removed the old client's blocklist entry")
}

// openHandle opens a new client, IO context and image handle for the
// image, notifying the image's eventfd, and checks the image's size.
func (im *Image) openHandle(ctx context.Context) (_ *client, _ *rados.IOContext, _ C.rbd_image_t, err error) {
	cl, err := im.pool.get(ctx, keyOf(im.cfg))
	if err != nil {
		return nil, nil, nil, err
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	cleanup = append(cleanup, func() { im.pool.put(cl) })
	// The epoch barrier of a fence (fence.go), as librbd's lock break
	// has it: once the client has the latest OSD map, every operation
	// it sends carries an epoch no older than the blocklist entry of the
	// client it replaces, which an OSD must know before executing it.
	if err := cl.conn.WaitForLatestOSDMap(); err != nil {
		return nil, nil, nil, fmt.Errorf("wait for the latest osd map: %w", cephErrno(err))
	}
	ioctx, err := cl.conn.OpenIOContext(im.cfg.Pool)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open pool %s: %w", im.cfg.Pool, cephErrno(err))
	}
	cleanup = append(cleanup, ioctx.Destroy)
	ioctx.SetNamespace(im.cfg.Namespace)
	image, err := rbdOpen(ioctx, im.cfg.Image)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open image %s: %w", im.cfg.ImageSpec(), err)
	}
	cleanup = append(cleanup, func() {
		if err := rbdClose(image); err != nil {
			im.log.Warn().Err(err).Msg("close image after failed reopen")
		}
	})
	size, err := rbdSize(image)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("get size of %s: %w", im.cfg.ImageSpec(), err)
	}
	if want := im.size.Load(); size != want {
		return nil, nil, nil, fmt.Errorf("reopen %s: the image is %d bytes, the device %d: %w",
			im.cfg.ImageSpec(), size, want, syscall.EINVAL)
	}
	return cl, ioctx, image, nil
}

// retiredHandle is an image handle Reopen replaced while librbd still held
// operations that sweep failed (after fencing its client).
type retiredHandle struct {
	image  C.rbd_image_t
	ioctx  *rados.IOContext
	client *client
}

// close closes the handle and releases its client; librbd holds nothing
// of it any more.
func (r retiredHandle) close(im *Image) {
	if err := rbdClose(r.image); err != nil {
		im.log.Warn().Err(err).Msg("close the handle of a replaced client")
	}
	r.ioctx.Destroy()
	im.pool.put(r.client)
}

// closeRetired closes the retired handles in the background once librbd
// holds no abandoned operation any more (their completions come through
// the slots' callback like any other). Called with reapMu held, from reap.
func (im *Image) closeRetired() {
	if len(im.retired) > 0 && im.slots.abandonedCount() == 0 {
		done := im.retired
		im.retired = nil
		im.log.Info().Int("handles", len(done)).Msg("librbd returned the stuck operations; closing the replaced handles")
		go func() {
			for _, r := range done {
				r.close(im)
			}
		}()
	}
}

// unused reports whether c was shut down: no image uses it any more.
func (p *clientPool) unused(c *client) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.images == 0
}

// unbind stops reporting on the service's connection before the client
// carrying it is shut down; the counters stay for rebind.
func (s *service) unbind() {
	s.mu.Lock()
	s.cluster = C.rados_t(nil)
	own := s.own
	s.own = nil
	s.mu.Unlock()
	if own != nil {
		own.Shutdown()
	}
}

// rebind moves the registration of ns, made on a new client, into s and
// reports s's counters there, so that lock_lost_cnt and the others
// survive a reopen.
func (s *service) rebind(ns *service) {
	ns.mu.Lock()
	cluster, own := ns.cluster, ns.own
	ns.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cluster, s.own = cluster, own
	s.updateLocked()
}
