package file

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
)

// DefaultWorkers is the number of I/O goroutines per device when Options
// leaves it 0. Buffered 4 KiB I/O is CPU-bound system calls, where more
// workers than cores only add wake-ups; writes that block on the disk
// (FUA, flush, writeback throttling) want several, so that one slow
// system call does not hold up the queue. 8 covers a QD32 initiator on a
// small host; see BenchmarkWorkers.
const DefaultWorkers = 8

// maxWorkers bounds Options.Workers: beyond it a configuration mistake
// would cost thousands of goroutines per device.
const maxWorkers = 256

// Options tune the file backend. The zero value is the default.
type Options struct {
	// Workers is the number of goroutines doing one device's system
	// calls (0: DefaultWorkers).
	Workers int
}

// Open opens (or creates) the file info.Config names and starts its
// workers.
//
// A missing regular file is created with mode 0600, as tcmu-runner's file
// handler does, and a file shorter than info.Size is extended to it with
// ftruncate, so the file is sparse and reads as zeros where never written.
// A longer file is left alone: only its first info.Size bytes are served,
// and nothing is cut off. A block device must hold at least info.Size
// bytes, as it cannot grow.
func Open(info handler.DeviceInfo, opts Options, log zerolog.Logger) (*Backend, error) {
	path := info.Config
	if err := CheckPath(path); err != nil {
		return nil, err
	}
	workers := opts.Workers
	switch {
	case workers == 0:
		workers = DefaultWorkers
	case workers < 0 || workers > maxWorkers:
		return nil, fmt.Errorf("open %s: %d workers; want 1 to %d: %w", path, workers, maxWorkers, syscall.EINVAL)
	}
	if info.Size < 0 {
		return nil, fmt.Errorf("open %s: device size %d: %w", path, info.Size, syscall.EINVAL)
	}
	fd, created, err := openFile(path)
	if err != nil {
		return nil, err
	}
	b := &Backend{
		log:  log.With().Str("path", path).Logger(),
		path: path,
		fd:   fd,
		q:    newQueue(),
	}
	if err := b.setUp(info.Size); err != nil {
		unix.Close(fd)
		return nil, err
	}
	b.size.Store(info.Size)
	b.workers.Add(workers)
	for range workers {
		w := newWorker(b)
		go w.run()
	}
	b.log.Info().Bool("created", created).Bool("block_device", b.blockDev).Int64("size", info.Size).
		Int("workers", workers).Msg("opened file backend")
	return b, nil
}

// openFile opens path for reading and writing, creating a regular file if
// nothing is there. O_NONBLOCK keeps a FIFO (refused below) from blocking
// the open; it is cleared again, though regular files and block devices
// ignore it.
func openFile(path string) (fd int, created bool, err error) {
	const flags = unix.O_RDWR | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK
	for {
		fd, err = unix.Open(path, flags, 0)
		if errors.Is(err, unix.ENOENT) {
			fd, err = unix.Open(path, flags|unix.O_CREAT|unix.O_EXCL, 0o600)
			if errors.Is(err, unix.EEXIST) {
				continue // created by someone else meanwhile
			}
			created = err == nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		break
	}
	if err != nil {
		return -1, false, fmt.Errorf("open %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, false, fmt.Errorf("stat %s: %w", path, err)
	}
	if err := checkType(path, st.Mode); err != nil {
		unix.Close(fd)
		return -1, false, fmt.Errorf("open: %w: %w", err, syscall.EINVAL)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return -1, false, fmt.Errorf("open %s: %w", path, err)
	}
	return fd, created, nil
}

// setUp sizes the file for the device and learns the discard granularity.
func (b *Backend) setUp(size int64) error {
	var st unix.Stat_t
	if err := unix.Fstat(b.fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", b.path, err)
	}
	b.blockDev = st.Mode&unix.S_IFMT == unix.S_IFBLK
	if b.blockDev {
		// Block devices answer discard in their physical blocks; the
		// filesystem block size of /dev says nothing about them.
		pbs, err := unix.IoctlGetUint32(b.fd, unix.BLKPBSZGET)
		if err != nil {
			return fmt.Errorf("get physical block size of %s: %w", b.path, err)
		}
		b.granularity = pbs
	} else {
		var fs unix.Statfs_t
		if err := unix.Fstatfs(b.fd, &fs); err != nil {
			return fmt.Errorf("statfs %s: %w", b.path, err)
		}
		// A hole is punched in whole filesystem blocks; a smaller
		// discard only zeros.
		b.granularity = uint32(fs.Bsize)
	}
	return b.ensureSize(size)
}

// ensureSize makes the file hold at least size bytes: a regular file is
// extended (sparsely), a block device must be large enough already.
func (b *Backend) ensureSize(size int64) error {
	have, err := unix.Seek(b.fd, 0, unix.SEEK_END)
	if err != nil {
		return fmt.Errorf("find the size of %s: %w", b.path, err)
	}
	if have >= size {
		return nil
	}
	if b.blockDev {
		return fmt.Errorf("block device %s holds %d bytes, the device needs %d: %w", b.path, have, size, syscall.ENOSPC)
	}
	for {
		err = unix.Ftruncate(b.fd, size)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("extend %s from %d to %d bytes: %w", b.path, have, size, err)
	}
	b.log.Info().Int64("from", have).Int64("to", size).Msg("extended file to the device size")
	return nil
}
