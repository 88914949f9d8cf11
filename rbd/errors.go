//go:build !nautilus

package rbd

import (
	"errors"
	"syscall"
)

// getError turns a librbd/librados return value into an error that wraps
// its syscall.Errno, or nil for ret >= 0. It is the one conversion used by
// this package's own cgo.
func getError[T ~int | ~int32 | ~int64](ret T) error {
	if ret >= 0 {
		return nil
	}
	return syscall.Errno(-ret)
}

// cephErrno makes an error from go-ceph answer errors.Is with the
// syscall.Errno it carries: go-ceph's errors keep the errno but only expose
// it through an ErrorCode method (internal/errutil).
func cephErrno(err error) error {
	var coded interface{ ErrorCode() int }
	if err == nil || !errors.As(err, &coded) || coded.ErrorCode() >= 0 {
		return err
	}
	return &errnoError{err: err, errno: syscall.Errno(-coded.ErrorCode())}
}

type errnoError struct {
	err   error
	errno syscall.Errno
}

func (e *errnoError) Error() string   { return e.err.Error() }
func (e *errnoError) Unwrap() []error { return []error{e.err, e.errno} }
