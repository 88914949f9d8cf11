// Package handler is gotcmu's SCSI target logic: it takes commands off a
// device's ring (package uio), emulates the SBC-3/SPC-4 block command set,
// hands data operations to a Backend, and writes status and sense back.
//
// It is the only layer that turns errors into SCSI status and sense data:
// backends and everything below report errors that keep their errno, and
// handler/errors.go maps them. Which gateway of several may write an
// image is decided by its lock gate (package handler/lockgate), which
// knows no SCSI: handler/gate.go turns its verdicts into status and sense.
//
// A Device owns one ring and runs one command loop goroutine; backends
// complete operations from their own goroutines. The Manager owns every
// Device and is the single client-facing surface for netlink events, D-Bus
// calls and the configuration file.
package handler
