// Command ringload drives gotcmu's rbd path on this machine, with no kernel:
// a handler.Device with the rbd backend, fed through uio/uiotest's fake
// TCMU kernel at a fixed queue depth, block size and pattern for a fixed
// time, and prints IOPS and MB/s. Run beside `fio --ioengine=rbd` on the
// same image (test/bench/host-rbd.sh does), it shows what gotcmu's ring,
// SCSI emulation and librbd aio path cost against librbd used directly.
//
// Every command goes through the whole handler as in the daemon: the fake
// kernel lays the command out in the ring (its region in an anonymous
// mapping, as the kernel's is, since librbd is handed data-area pointers),
// the device loop fetches, decodes and dispatches it, the rbd backend
// starts rbd_aio_readv/writev on iovecs into the data area, the image's
// completion goroutine posts the response, the doorbell hands it back.
// The fake copies Data-Out into the data area as the kernel does; it does
// not poison read buffers nor copy Data-In out unless -datain is given:
// those are its test checks, two passes over the data that neither the
// kernel nor fio's engine makes.
//
// Usage:
//
//	CEPH_CONF=/path/ceph.conf ringload -image rbd/img -rw randread -bs 4096 -qd 32 -runtime 10s
//
// -images img1,img2 runs one device per image at once (each at -qd), all
// drawing clients from one handler, for -images-per-client comparisons.
// -json prints one JSON object instead of the text line; -cpuprofile
// writes a CPU profile of the measured window. Build with -tags pacific
// (the go-ceph tag the Makefile picks).
package main
