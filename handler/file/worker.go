package file

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime/debug"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
)

const (
	// iovMax is UIO_MAXIOV (include/uapi/linux/uio.h): the most iovecs
	// one preadv/pwritev takes. Longer lists go in several calls.
	iovMax = 1024
	// scratchSize is each worker's buffer for WRITE SAME patterns and
	// COMPARE AND WRITE reads.
	scratchSize = 256 << 10
)

// zeros is what discard writes where the filesystem cannot punch holes.
// It is never written, so its pages stay the kernel's shared zero page.
var zeros [scratchSize]byte

// worker makes one device's system calls, one IO at a time. Its buffers
// are allocated once, so the steady state does not allocate.
type worker struct {
	b *Backend
	// vec is the iovec array handed to preadv/pwritev.
	vec []unix.Iovec
	// one and sub are iovec lists built over scratch or part of an IO.
	one [1][]byte
	sub [][]byte
	// scratch holds WRITE SAME patterns and COMPARE AND WRITE reads.
	scratch []byte
}

func newWorker(b *Backend) *worker {
	return &worker{b: b, vec: make([]unix.Iovec, iovMax), scratch: make([]byte, scratchSize)}
}

func (w *worker) run() {
	defer w.b.workers.Done()
	// The iovecs point into the TCMU data area; a page there that no
	// pending command refers to raises SIGBUS when Go code touches it
	// (the kernel's own copies fail with EFAULT instead). Make that an
	// IO error rather than the end of the daemon; see do.
	debug.SetPanicOnFault(true)
	for {
		io, ok := w.b.q.pop()
		if !ok {
			return
		}
		io.Done(w.do(io))
	}
}

// do performs io and returns its result. A memory fault while touching
// the iovecs fails the IO with EFAULT; any other panic is a bug and goes
// on.
func (w *worker) do(io *handler.IO) (err error) {
	defer func() {
		if p := recover(); p != nil {
			fault, ok := p.(interface{ Addr() uintptr })
			if !ok {
				panic(p)
			}
			err = fmt.Errorf("%s: fault at %#x in the data area: %w", io.Op, fault.Addr(), syscall.EFAULT)
		}
	}()
	b := w.b
	switch io.Op {
	case handler.OpRead:
		if err := w.transfer(false, io.Iov, io.Off, io.Len, false); err != nil {
			return fmt.Errorf("preadv %s: %w", b.path, err)
		}
		return nil
	case handler.OpWrite:
		b.mu.RLock()
		defer b.mu.RUnlock()
		return w.write(io.Iov, io.Off, io.Len, io.FUA)
	case handler.OpFlush:
		return b.sync()
	case handler.OpDiscard:
		b.mu.RLock()
		defer b.mu.RUnlock()
		return w.discard(io.Off, io.Len, io.FUA)
	case handler.OpWriteSame:
		b.mu.RLock()
		defer b.mu.RUnlock()
		return w.writeSame(io)
	case handler.OpCompareAndWrite:
		b.mu.Lock()
		defer b.mu.Unlock()
		return w.compareAndWrite(io)
	}
	return fmt.Errorf("file backend: %s: %w", io.Op, syscall.EOPNOTSUPP)
}

// write writes n bytes of iov at off; with fua, they are stable before it
// returns: pwritev2(RWF_DSYNC) writes and syncs in one call (Linux 4.7),
// and where the file refuses the flag, pwritev is followed by fdatasync.
func (w *worker) write(iov [][]byte, off, n int64, fua bool) error {
	b := w.b
	if fua && !b.noDSync.Load() {
		err := w.transfer(true, iov, off, n, true)
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
			if err != nil {
				return fmt.Errorf("pwritev2 %s: %w", b.path, err)
			}
			return nil
		}
		if !b.noDSync.Swap(true) {
			b.log.Warn().Err(err).Msg("pwritev2 with RWF_DSYNC unsupported; FUA writes use pwritev and fdatasync")
		}
	}
	if err := w.transfer(true, iov, off, n, false); err != nil {
		return fmt.Errorf("pwritev %s: %w", b.path, err)
	}
	if fua {
		return b.sync()
	}
	return nil
}

// sync makes every completed write stable.
func (b *Backend) sync() error {
	for {
		err := unix.Fdatasync(b.fd)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("fdatasync %s: %w", b.path, err)
		}
		return nil
	}
}

// discard deallocates [off, off+n) by punching a hole; the file keeps its
// size, and the hole reads as zeros. Filesystems that cannot punch holes
// get zeros written instead, which reads the same.
func (w *worker) discard(off, n int64, fua bool) error {
	b := w.b
	if !b.noPunch.Load() {
		err := fallocate(b.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		if !errors.Is(err, unix.EOPNOTSUPP) {
			if err != nil {
				return fmt.Errorf("punch hole %d+%d in %s: %w", off, n, b.path, err)
			}
			if fua {
				return b.sync()
			}
			return nil
		}
		if !b.noPunch.Swap(true) {
			b.log.Warn().Msg("file system cannot punch holes; discard writes zeros")
		}
	}
	return w.writeZeros(off, n, fua)
}

// writeZeros writes n zero bytes at off.
func (w *worker) writeZeros(off, n int64, fua bool) error {
	for done := int64(0); done < n; {
		k := min(n-done, int64(len(zeros)))
		w.one[0] = zeros[:k]
		if err := w.transfer(true, w.one[:], off+done, k, false); err != nil {
			return fmt.Errorf("write zeros to %s: %w", w.b.path, err)
		}
		done += k
	}
	if fua {
		return w.b.sync()
	}
	return nil
}

func fallocate(fd int, mode uint32, off, n int64) error {
	for {
		err := unix.Fallocate(fd, mode, off, n)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// writeSame fills [io.Off, io.Off+io.Len) with the block in io.Iov: the
// block is repeated through a scratch buffer once, which is then written
// as often as needed.
func (w *worker) writeSame(io *handler.IO) error {
	p := int(handler.IovLen(io.Iov))
	span := max(p, len(w.scratch)/p*p)
	if len(w.scratch) < span {
		// A block larger than the scratch buffer: not a block size
		// LIO allows (at most 64 KiB), but a malformed IO must not
		// break the worker.
		w.scratch = make([]byte, span)
	}
	buf := w.scratch[:span]
	k := 0
	for _, seg := range io.Iov {
		k += copy(buf[k:], seg)
	}
	for k < len(buf) {
		k += copy(buf[k:], buf[:k])
	}
	for done := int64(0); done < io.Len; {
		n := min(io.Len-done, int64(span))
		w.one[0] = buf[:n]
		if err := w.transfer(true, w.one[:], io.Off+done, n, false); err != nil {
			return fmt.Errorf("write same to %s: %w", w.b.path, err)
		}
		done += n
	}
	if io.FUA {
		return w.b.sync()
	}
	return nil
}

// compareAndWrite reads [io.Off, io.Off+io.Len) in scratch-sized pieces,
// compares it with the first half of io.Iov and, if equal, writes the
// second half. The caller holds mu exclusively, so no write can come
// between the read and the write.
func (w *worker) compareAndWrite(io *handler.IO) error {
	cur := handler.NewIovCursor(io.Iov)
	for done := int64(0); done < io.Len; {
		n := min(io.Len-done, int64(len(w.scratch)))
		have := w.scratch[:n]
		w.one[0] = have
		if err := w.transfer(false, w.one[:], io.Off+done, n, false); err != nil {
			return fmt.Errorf("compare and write: pread %s: %w", w.b.path, err)
		}
		for i := 0; i < len(have); {
			want := cur.Next(len(have) - i)
			if j := firstDiff(have[i:i+len(want)], want); j >= 0 {
				io.MiscompareOffset = done + int64(i+j)
				return handler.ErrMiscompare
			}
			i += len(want)
		}
		done += n
	}
	w.sub = w.sub[:0]
	for rem := io.Len; rem > 0; {
		seg := cur.Next(int(min(rem, 1<<30)))
		w.sub = append(w.sub, seg)
		rem -= int64(len(seg))
	}
	return w.write(w.sub, io.Off, io.Len, io.FUA)
}

// firstDiff returns the index of the first byte where have and want
// differ, or -1.
func firstDiff(have, want []byte) int {
	if string(have) == string(want) {
		return -1
	}
	for i := range want {
		if have[i] != want[i] {
			return i
		}
	}
	return -1
}

// transfer reads (write false) or writes the first n bytes of iov at off,
// in as many preadv/pwritev calls as iovMax and short transfers need.
// With dsync the writes are pwritev2(RWF_DSYNC). A read that meets the end
// of the file (someone truncated it under the device) fills the rest with
// zeros, as a sparse file would read. iov is not modified: the handler
// owns it.
func (w *worker) transfer(write bool, iov [][]byte, off, n int64, dsync bool) error {
	idx, skip := 0, 0 // the first byte not yet transferred: iov[idx][skip]
	for n > 0 {
		cnt := 0
		left := n
		for i := idx; i < len(iov) && cnt < iovMax && left > 0; i++ {
			seg := iov[i]
			if i == idx {
				seg = seg[skip:]
			}
			if int64(len(seg)) > left {
				seg = seg[:left]
			}
			if len(seg) == 0 {
				continue
			}
			w.vec[cnt].Base = &seg[0]
			w.vec[cnt].SetLen(len(seg))
			cnt++
			left -= int64(len(seg))
		}
		if cnt == 0 {
			return fmt.Errorf("iovecs end %d bytes early: %w", n, syscall.EINVAL)
		}
		done, err := rw(write, w.b.fd, w.vec[:cnt], off, dsync)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return err
		case done == 0 && write:
			return fmt.Errorf("write at %d made no progress: %w", off, syscall.EIO)
		case done == 0:
			zeroFrom(iov, idx, skip, n)
			return nil
		}
		off += int64(done)
		n -= int64(done)
		for done > 0 {
			if rest := len(iov[idx]) - skip; done < rest {
				skip += done
				done = 0
			} else {
				done -= rest
				idx++
				skip = 0
			}
		}
	}
	return nil
}

// zeroFrom clears n bytes of iov starting at iov[idx][skip].
func zeroFrom(iov [][]byte, idx, skip int, n int64) {
	for i := idx; i < len(iov) && n > 0; i++ {
		seg := iov[i]
		if i == idx {
			seg = seg[skip:]
		}
		if int64(len(seg)) > n {
			seg = seg[:n]
		}
		clear(seg)
		n -= int64(len(seg))
	}
}

// rw is one preadv, pwritev or pwritev2(RWF_DSYNC) system call. x/sys's
// Preadv and Pwritev build their iovec array on the heap beyond 8
// iovecs; the worker keeps its own.
func rw(write bool, fd int, vec []unix.Iovec, off int64, dsync bool) (int, error) {
	trap := uintptr(unix.SYS_PREADV)
	flags := uintptr(0)
	switch {
	case dsync:
		trap, flags = unix.SYS_PWRITEV2, unix.RWF_DSYNC
	case write:
		trap = unix.SYS_PWRITEV
	}
	// The offset goes in two registers, low and high half of a long
	// (fs/read_write.c, pos_from_hilo); on 64-bit the high one is 0.
	lo, hi := uintptr(off), uintptr(uint64(off)>>(bits.UintSize-1)>>1)
	r, _, errno := unix.Syscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&vec[0])), uintptr(len(vec)), lo, hi, flags)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
