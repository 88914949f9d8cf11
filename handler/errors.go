package handler

import (
	"errors"
	"syscall"
)

// fail answers a command whose IO failed, mapping the error's errno to
// SCSI status and sense as tcmu-runner's rbd handler does
// (its rbd.c: tcmu_rbd_handle_timedout_cmd and the error
// paths). It also tells the device's error hooks
// (lock lost, connection lost) what happened.
func (c *Cmd) fail(err error) result {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		errno = syscall.EIO
	}
	c.dev.countError(c, errno)
	c.dev.noteIOError(errno)
	switch errno {
	case syscall.EILSEQ:
		// COMPARE AND WRITE miscompare: INFORMATION is the offset of the
		// first differing byte (SBC-3 5.2).
		return c.checkInfo(keyMiscompare, ascMiscompareDuringVerify, uint64(c.io.MiscompareOffset))
	case syscall.ETIMEDOUT, syscall.EAGAIN, syscall.EBUSY, syscall.ENOTCONN, syscall.ECONNRESET,
		// Ceph reports a blocklisted client as ESHUTDOWN (EBLOCKLISTED)
		// and a lost exclusive lock as EROFS.
		syscall.ESHUTDOWN, syscall.EROFS:
		// The initiator retries BUSY; lock loss and timeouts are handled
		// by the device (reopen, failover) while it does, for as long as
		// the error's bound (busy.go).
		class, _ := busyClassOf(errno)
		return c.busy(class, errno)
	case syscall.ENOMEM, syscall.ENOBUFS:
		return c.status(statusTaskSetFull)
	case syscall.ENOSPC, syscall.EDQUOT:
		return c.check(keyDataProtect, ascSpaceAllocationFailed)
	case syscall.EINVAL, syscall.ERANGE:
		return c.check(keyIllegalRequest, ascInvalidFieldInCDB)
	}
	if c.io.Op == OpRead {
		return c.check(keyMediumError, ascUnrecoveredReadError)
	}
	return c.check(keyMediumError, ascWriteError)
}
