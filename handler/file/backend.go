package file

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
)

const (
	// maxWriteSameBytes bounds one WRITE SAME, which a worker writes
	// out in a loop: 32 MiB (LIO's default of 0xFFFF blocks at 512
	// bytes) keeps one command well inside the kernel's 30 s
	// cmd_time_out on a slow disk.
	maxWriteSameBytes = 32 << 20
	// maxDiscardBytes bounds one discard. Punching a hole is quick at
	// any size; the bound is for filesystems without hole punching,
	// where discard writes zeros.
	maxDiscardBytes = 1 << 30
)

// Backend serves a device from a file. See the package documentation.
type Backend struct {
	log  zerolog.Logger
	path string
	fd   int
	// blockDev: the path is a block device, which cannot grow.
	blockDev    bool
	granularity uint32
	size        atomic.Int64

	q       *queue
	workers sync.WaitGroup

	// mu makes COMPARE AND WRITE atomic with respect to every other
	// change of the data (SBC-3 5.2): writes, WRITE SAME and discard hold
	// it shared, COMPARE AND WRITE exclusively. Reads do not take it.
	mu sync.RWMutex

	// noDSync and noPunch record that the file rejected pwritev2's
	// RWF_DSYNC or hole punching, so the fallback is used from then on.
	noDSync atomic.Bool
	noPunch atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

var (
	_ handler.Backend     = (*Backend)(nil)
	_ handler.LBAStatuser = (*Backend)(nil)
	_ handler.Resizer     = (*Backend)(nil)
)

// Limits reports discard (hole punching, or zeros where the filesystem
// cannot punch: reads return zeros either way), WRITE SAME and COMPARE AND
// WRITE as native. Whether the medium rotates is unknown here, so it is
// not claimed.
func (b *Backend) Limits() handler.Limits {
	return handler.Limits{
		Discard:            true,
		DiscardZeroes:      true,
		WriteSame:          true,
		CompareAndWrite:    true,
		DiscardGranularity: b.granularity,
		MaxDiscardBytes:    maxDiscardBytes,
		MaxWriteSameBytes:  maxWriteSameBytes,
	}
}

// Submit queues io for a worker. An IO that cannot be valid is completed
// at once, before Submit returns.
func (b *Backend) Submit(io *handler.IO) {
	if err := b.check(io); err != nil {
		io.Done(err)
		return
	}
	if !b.q.push(io) {
		io.Done(handler.ErrBackendClosed)
	}
}

// check validates io's range against the device and its iovecs against
// the bytes the operation needs. The handler checks LBA ranges itself;
// this keeps a bug there from reading or extending the file past the
// device.
func (b *Backend) check(io *handler.IO) error {
	var need int64
	switch io.Op {
	case handler.OpFlush:
		return nil
	case handler.OpRead, handler.OpWrite:
		need = io.Len
	case handler.OpDiscard:
		need = 0
	case handler.OpWriteSame:
		need = 1
	case handler.OpCompareAndWrite:
		need = 2 * io.Len
	default:
		return fmt.Errorf("file backend: %s: %w", io.Op, syscall.EOPNOTSUPP)
	}
	size := b.size.Load()
	if io.Off < 0 || io.Len < 0 || io.Off > size-io.Len {
		return fmt.Errorf("range %d+%d outside the %d-byte device: %w", io.Off, io.Len, size, syscall.EINVAL)
	}
	if have := handler.IovLen(io.Iov); have < need {
		return fmt.Errorf("iovecs hold %d bytes, operation needs %d: %w", have, need, syscall.EINVAL)
	}
	return nil
}

// Status reports whether the file has data at off (SEEK_DATA) and how far
// that lasts (SEEK_HOLE, or the next data), up to length. Filesystems
// without sparse files report everything as data. Block devices cannot
// seek data and holes (EINVAL): all of one is reported mapped, which is
// all that can be told from here.
func (b *Backend) Status(ctx context.Context, off, length int64) (mapped bool, extent int64, err error) {
	if err := ctx.Err(); err != nil {
		return false, 0, err
	}
	size := b.size.Load()
	if length <= 0 || off < 0 || off >= size {
		return false, 0, fmt.Errorf("status of %d+%d on the %d-byte device: %w", off, length, size, syscall.EINVAL)
	}
	length = min(length, size-off)
	if b.blockDev {
		return true, length, nil
	}
	data, err := unix.Seek(b.fd, off, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO):
		// No data from off to the end of the file.
		return false, length, nil
	case err != nil:
		return false, 0, fmt.Errorf("seek data in %s from %d: %w", b.path, off, err)
	case data > off:
		return false, min(data-off, length), nil
	}
	hole, err := unix.Seek(b.fd, off, unix.SEEK_HOLE)
	if err != nil {
		return false, 0, fmt.Errorf("seek hole in %s from %d: %w", b.path, off, err)
	}
	return true, min(hole-off, length), nil
}

// Resize changes the device size. Growing extends a shorter regular file
// sparsely; a block device must already be large enough. Shrinking does
// not truncate: the tail stays in the file, so a mistaken shrink loses
// nothing (and a later grow serves the old tail again).
func (b *Backend) Resize(size int64) error {
	if size < 0 {
		return fmt.Errorf("resize %s to %d bytes: %w", b.path, size, syscall.EINVAL)
	}
	if err := b.ensureSize(size); err != nil {
		return err
	}
	b.size.Store(size)
	return nil
}

// Close stops the workers, once they have finished what is queued, syncs
// and closes the file. Initiators flush when they need to (SYNCHRONIZE
// CACHE), but once the device is gone none can, so what it wrote is made
// stable here rather than left to writeback.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.q.close()
		b.workers.Wait()
		b.closeErr = errors.Join(b.sync(), closeFD(b.fd, b.path))
	})
	return b.closeErr
}

func closeFD(fd int, path string) error {
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
