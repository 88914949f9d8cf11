// Package rbd is gotcmu's user:rbd backend: it serves a Ceph RBD image to a
// TCMU device through librbd's asynchronous API.
//
// go-ceph provides the cluster connection, configuration, IO contexts and
// mon commands. The package's own cgo opens the image on go-ceph's IO
// context and drives rbd_aio_readv, writev, discard, flush, writesame and
// compare_and_write with iovecs that point straight into the device's
// mmapped data area: the daemon copies no READ or WRITE data. Completions
// are not delivered by C-to-Go callbacks: librbd signals an eventfd
// (rbd_set_image_notification) and one goroutine per image collects them
// with rbd_poll_io_events. librbd 16 does not queue compare-and-write
// completions there, so those pass through a small C callback that queues
// them for the same goroutine (aio.h). Per-IO C state (the iovec array)
// lives in a pool of slots indexed by the id each completion carries, so a
// command costs no malloc and no goroutine.
//
// Exclusive-lock operations, image metadata and diff iteration are own cgo
// too, because they must act on the very image handle that does the I/O and
// go-ceph keeps its handle private.
//
// Never a hang: every RADOS operation is bounded by osd_op_timeout (chosen
// by tcmu-runner's rule, see osdOpTimeout), and a non-read IO that librbd
// holds for three timeouts anyway is failed with ETIMEDOUT (stuckIOLimit).
// Never a late write: a write failed with ETIMEDOUT may still reach an OSD,
// so it is failed only once its client is on the OSD blocklist, and the
// client that replaces it waits for the OSD map carrying that entry
// (fence.go).
//
// Clients (rados_t) are shared between images up to Options.ImagesPerClient
// (default one per image); each image registers in Ceph's service map as
// tcmu-runner does, so `ceph -s`, gwcli and the dashboard see it.
//
// Errors keep librbd's errno as a wrapped syscall.Errno; this package never
// builds SCSI status or sense. Image methods are safe for concurrent use.
//
// Files that use cgo carry go-ceph's build constraint for the releases whose
// lock API they need (!nautilus); the Makefile builds with -tags pacific
// for Debian's librbd 16.2.
package rbd
