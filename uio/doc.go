// Package uio is gotcmu's only way into a TCMU device: the /dev/uioN file,
// its mmapped command ring and data area, and the device's sysfs and configfs
// files.
//
// Open maps a device and returns a Device: its Ring, and Wait, which blocks
// until the kernel signals the ring. Scan lists the TCMU devices that exist
// at start-up so a daemon can adopt them; Configfs reads a device's
// attributes, info, unit serial and ALUA groups and writes its block_dev and
// reset_ring actions. Roots points all of them at a temporary tree in tests.
//
// The ring logic (Ring) works over a plain []byte and a doorbell function so
// that the same code runs against the kernel's mapping and against the fake
// kernel in package uio/uiotest; both the Device and the fake implement
// Waiter. Every value read from the shared region is untrusted: offsets,
// lengths and iovecs are bounds-checked against the map before they are
// touched, a malformed command entry fails that command only (Command.Err),
// and a malformed ring structure is reported as ErrBrokenRing so the caller
// can reset the ring (Ring.Reset, then Configfs.ResetRing). Files under
// sysfs and configfs are untrusted too: every read is bounded in size and
// every value parsed strictly. Nothing in this package builds SCSI sense
// data; errors keep their errno for the handler to translate.
//
// Faults in the data area: the kernel allocates data pages lazily and
// answers a touch of a page that no pending iovec refers to with SIGBUS
// (tcmu_vma_fault). The Ring only touches the mailbox and the command area,
// but a handler that reads or writes a Command's Iov touches data pages. A
// goroutine doing so should call debug.SetPanicOnFault(true) first, so that
// a fault becomes a recoverable panic in that goroutine instead of killing
// the daemon; this package does not, because the setting belongs to the
// caller's goroutine.
//
// The layout follows include/uapi/linux/target_core_user.h (mailbox version 2).
package uio
