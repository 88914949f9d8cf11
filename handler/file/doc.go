// Package file is the file backend, user:file with config string
// "file/<absolute path>" as in tcmu-runner's file handler: a regular file
// (created, sparse, when missing) or a block device holds the device's
// data at the same offsets.
//
// I/O goes through the page cache, as LIO's fileio backstore does by
// default, with preadv/pwritev straight from the TCMU data area (no copy
// in userspace). Each device has a fixed pool of worker goroutines that
// make the system calls; Submit only queues, so the command loop never
// waits for the disk, and no goroutine is started per command.
//
// FUA writes use pwritev2(RWF_DSYNC), SYNCHRONIZE CACHE fdatasync, discard
// fallocate(PUNCH_HOLE), GET LBA STATUS lseek(SEEK_DATA/SEEK_HOLE). WRITE
// SAME and COMPARE AND WRITE are native: the first writes a pattern buffer
// in a loop, the second compares and writes under a device-wide lock that
// every write holds shared.
//
// A Backend is safe for concurrent use.
package file
