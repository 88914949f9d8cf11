// Package uio is gotcmu's only way into a TCMU device: the /dev/uioN file,
// its mmapped command ring and data area, and the device's sysfs and configfs
// files.
//
// The ring logic (Ring) works over a plain []byte and a doorbell function so
// that the same code runs against the kernel's mapping and against the fake
// kernel in package uio/uiotest. Every value read from the shared region is
// untrusted: offsets, lengths and iovecs are bounds-checked against the map
// before they are touched, a malformed command entry fails that command
// only, and a malformed ring structure is reported as ErrBrokenRing so the
// caller can reset the ring. Nothing in this package builds SCSI sense data.
//
// The layout follows include/uapi/linux/target_core_user.h (mailbox version 2).
package uio
