//go:build !nautilus

package rbd

/*
#cgo LDFLAGS: -lrbd
#include <errno.h>
#include <stdlib.h>
#include <rbd/librbd.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// These are go-ceph's lock calls (rbd/locks.go) on this package's own
// image handle: exclusive-lock ownership belongs to a handle, so the lock
// must be taken by the handle that writes.

// IsExclusiveLockOwner reports whether this image handle holds the
// image's exclusive lock. ESHUTDOWN means the client is blocklisted.
//
// Implements:
//
//	int rbd_is_exclusive_lock_owner(rbd_image_t image, int *is_owner);
func (im *Image) IsExclusiveLockOwner() (bool, error) {
	var owner C.int
	if err := getError(C.rbd_is_exclusive_lock_owner(im.image, &owner)); err != nil {
		im.noteError(err)
		return false, fmt.Errorf("check lock owner of %s: %w", im.cfg.ImageSpec(), err)
	}
	im.svc.setLockOwner(owner != 0)
	return owner != 0, nil
}

// lockOwners returns the clients holding the image's exclusive lock.
//
// Implements:
//
//	int rbd_lock_get_owners(rbd_image_t image, rbd_lock_mode_t *lock_mode,
//	                        char **lock_owners, size_t *max_lock_owners);
//	void rbd_lock_get_owners_cleanup(char **lock_owners,
//	                                 size_t lock_owner_count);
func (im *Image) lockOwners() ([]string, error) {
	// go-ceph starts with 8 and retries on ERANGE; an exclusive lock has
	// one owner, so 8 is never short in practice.
	for n := C.size_t(8); ; n *= 2 {
		owners := make([]*C.char, n)
		var mode C.rbd_lock_mode_t
		count := n
		ret := C.rbd_lock_get_owners(im.image, &mode, &owners[0], &count)
		if ret == -C.ERANGE && n < 1024 {
			continue
		}
		if ret == -C.ENOENT {
			return nil, nil
		}
		if err := getError(ret); err != nil {
			return nil, err
		}
		list := make([]string, 0, count)
		for _, o := range owners[:count] {
			list = append(list, C.GoString(o))
		}
		C.rbd_lock_get_owners_cleanup(&owners[0], count)
		return list, nil
	}
}

// BreakAndAcquire takes the image's exclusive lock for this handle, as
// tcmu-runner's tcmu_rbd_lock does: break the current owner's lock, which
// makes librbd blocklist the owner's client so it can never write again,
// then acquire. It blocks for up to about two osd_op_timeouts; call it off
// the I/O path.
//
// Implements:
//
//	int rbd_lock_break(rbd_image_t image, rbd_lock_mode_t lock_mode,
//	                   const char *lock_owner);
//	int rbd_lock_acquire(rbd_image_t image, rbd_lock_mode_t lock_mode);
func (im *Image) BreakAndAcquire() error {
	owner, err := im.IsExclusiveLockOwner()
	if err != nil {
		return err
	}
	if owner {
		return nil
	}
	owners, err := im.lockOwners()
	if err != nil {
		im.noteError(err)
		return fmt.Errorf("get lock owners of %s: %w", im.cfg.ImageSpec(), err)
	}
	for _, o := range owners {
		cOwner := C.CString(o)
		ret := C.rbd_lock_break(im.image, C.RBD_LOCK_MODE_EXCLUSIVE, cOwner)
		C.free(unsafe.Pointer(cOwner))
		// ENOENT: the owner released the lock meanwhile.
		if err := getError(ret); err != nil && !errors.Is(err, syscall.ENOENT) {
			im.noteError(err)
			return fmt.Errorf("break lock of %s held by %s: %w", im.cfg.ImageSpec(), o, err)
		}
		im.log.Info().Str("owner", o).Msg("broke exclusive lock")
	}
	if err := getError(C.rbd_lock_acquire(im.image, C.RBD_LOCK_MODE_EXCLUSIVE)); err != nil {
		im.noteError(err)
		return fmt.Errorf("acquire exclusive lock of %s: %w", im.cfg.ImageSpec(), err)
	}
	im.svc.setLockOwner(true)
	return nil
}

// ReleaseLock gives up the exclusive lock if this handle holds it.
//
// Implements:
//
//	int rbd_lock_release(rbd_image_t image);
func (im *Image) ReleaseLock() error {
	if err := getError(C.rbd_lock_release(im.image)); err != nil && !errors.Is(err, syscall.EINVAL) {
		im.noteError(err)
		return fmt.Errorf("release exclusive lock of %s: %w", im.cfg.ImageSpec(), err)
	}
	im.svc.setLockOwner(false)
	return nil
}
