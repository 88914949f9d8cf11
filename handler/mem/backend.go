package mem

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"syscall"

	"github.com/gotcmu/gotcmu/handler"
)

// Backend is a sparse RAM disk. See the package documentation.
type Backend struct {
	// mu is held shared by reads, writes and WRITE SAME, which allocate
	// chunks lock-free, and exclusively by what must see no other IO:
	// COMPARE AND WRITE (atomic with respect to every write, SBC-3
	// 5.2), discard and resize (they unmap chunks a reader could be
	// copying from) and Close.
	mu     sync.RWMutex
	size   int64
	tab    table
	closed bool
}

var (
	_ handler.Backend     = (*Backend)(nil)
	_ handler.LBAStatuser = (*Backend)(nil)
	_ handler.Resizer     = (*Backend)(nil)
)

// maxSize bounds the device size: the chunk table of an untouched 1 PiB
// device is already 16 MiB, and larger sizes only come from mistakes.
const maxSize = 1 << 50

// New returns an empty RAM disk of size bytes: it reads as zeros and holds
// no memory for data until written.
func New(size int64) (*Backend, error) {
	if err := checkSize(size); err != nil {
		return nil, fmt.Errorf("create memory backend: %w", err)
	}
	b := &Backend{size: size}
	b.tab.grow(size)
	return b, nil
}

func checkSize(size int64) error {
	if size < 0 || size > maxSize {
		return fmt.Errorf("size %d bytes, want 0 to 1 PiB: %w", size, syscall.EINVAL)
	}
	return nil
}

// Limits reports every operation as native. Discard frees whole chunks
// and zeros the rest, so discarded blocks read as zeros (LBPRZ) and the
// granularity that actually frees memory is the chunk.
func (b *Backend) Limits() handler.Limits {
	return handler.Limits{
		Discard:            true,
		DiscardZeroes:      true,
		WriteSame:          true,
		CompareAndWrite:    true,
		DiscardGranularity: chunkSize,
		NonRotational:      true,
		// Memory is the medium: a completed write is as stable as it gets.
		StableWrites: true,
	}
}

// Allocated returns how many bytes of memory the data holds.
func (b *Backend) Allocated() int64 { return b.tab.chunks.Load() * chunkSize }

// Submit performs io and calls io.Done before it returns.
func (b *Backend) Submit(io *handler.IO) { io.Done(b.do(io)) }

// do performs io. The copies touch the TCMU data area from the calling
// goroutine; where that goroutine has debug.SetPanicOnFault (the
// handler's command loop does), a page no pending command refers to
// faults, and the IO fails with EFAULT instead of ending the loop. Any
// other panic is a bug and goes on.
func (b *Backend) do(io *handler.IO) (err error) {
	defer func() {
		if p := recover(); p != nil {
			fault, ok := p.(interface{ Addr() uintptr })
			if !ok {
				panic(p)
			}
			err = fmt.Errorf("memory backend: fault at %#x in the data area: %w", fault.Addr(), syscall.EFAULT)
		}
	}()
	switch io.Op {
	case handler.OpRead:
		b.mu.RLock()
		defer b.mu.RUnlock()
		if err := b.check(io, io.Len); err != nil {
			return err
		}
		b.read(io.Iov, io.Off, io.Len)
		return nil
	case handler.OpWrite:
		b.mu.RLock()
		defer b.mu.RUnlock()
		if err := b.check(io, io.Len); err != nil {
			return err
		}
		return b.write(handler.NewIovCursor(io.Iov), io.Off, io.Len)
	case handler.OpFlush:
		// Memory is as stable as this backend gets.
		return nil
	case handler.OpDiscard:
		b.mu.Lock()
		defer b.mu.Unlock()
		if err := b.check(io, 0); err != nil {
			return err
		}
		b.discard(io.Off, io.Len)
		return nil
	case handler.OpWriteSame:
		b.mu.RLock()
		defer b.mu.RUnlock()
		if err := b.check(io, 1); err != nil {
			return err
		}
		return b.writeSame(io.Iov, io.Off, io.Len)
	case handler.OpCompareAndWrite:
		b.mu.Lock()
		defer b.mu.Unlock()
		if err := b.check(io, 2*io.Len); err != nil {
			return err
		}
		return b.compareAndWrite(io)
	}
	return fmt.Errorf("memory backend: %s: %w", io.Op, syscall.EOPNOTSUPP)
}

// check validates io's range against the device and its iovecs against
// the bytes the operation needs. The handler checks LBA ranges itself;
// this keeps a bug there from reaching outside the chunk table.
func (b *Backend) check(io *handler.IO, need int64) error {
	if b.closed {
		return handler.ErrBackendClosed
	}
	if err := b.checkRange(io.Off, io.Len); err != nil {
		return err
	}
	if have := handler.IovLen(io.Iov); have < need {
		return fmt.Errorf("iovecs hold %d bytes, operation needs %d: %w", have, need, syscall.EINVAL)
	}
	return nil
}

func (b *Backend) checkRange(off, n int64) error {
	if off < 0 || n < 0 || off > b.size-n {
		return fmt.Errorf("range %d+%d outside the %d-byte device: %w", off, n, b.size, syscall.EINVAL)
	}
	return nil
}

// read copies [off, off+n) into iov; unwritten chunks read as zeros.
func (b *Backend) read(iov [][]byte, off, n int64) {
	cur := handler.NewIovCursor(iov)
	for n > 0 {
		co := int(off & chunkMask)
		l := int(min(n, chunkSize-int64(co)))
		c := b.tab.get(off >> chunkShift)
		for rem := l; rem > 0; {
			dst := cur.Next(rem)
			if c == nil {
				clear(dst)
			} else {
				copy(dst, c[co:])
			}
			co += len(dst)
			rem -= len(dst)
		}
		off += int64(l)
		n -= int64(l)
	}
}

// write copies n bytes from cur to [off, off+n). It maps every chunk the
// range needs before copying anything, so running out of memory fails
// the write without changing the device.
func (b *Backend) write(cur handler.IovCursor, off, n int64) error {
	if err := b.alloc(off, n); err != nil {
		return err
	}
	for n > 0 {
		co := int(off & chunkMask)
		l := int(min(n, chunkSize-int64(co)))
		c := b.tab.get(off >> chunkShift)
		for rem := l; rem > 0; {
			src := cur.Next(rem)
			copy(c[co:], src)
			co += len(src)
			rem -= len(src)
		}
		off += int64(l)
		n -= int64(l)
	}
	return nil
}

// alloc maps the chunks covering [off, off+n).
func (b *Backend) alloc(off, n int64) error {
	if n == 0 {
		return nil
	}
	for i := off >> chunkShift; i <= (off+n-1)>>chunkShift; i++ {
		if _, err := b.tab.getOrAlloc(i); err != nil {
			return fmt.Errorf("write at %d: %w", off, err)
		}
	}
	return nil
}

// writeSame fills [off, off+n) with the block in pat, repeated.
func (b *Backend) writeSame(pat [][]byte, off, n int64) error {
	if err := b.alloc(off, n); err != nil {
		return err
	}
	p := handler.IovLen(pat)
	for done := int64(0); done < n; {
		co := int((off + done) & chunkMask)
		l := int(min(n-done, chunkSize-int64(co)))
		dst := b.tab.get((off + done) >> chunkShift)[co : co+l]
		// Lay down one block from the pattern's phase at this point,
		// then double: what is written so far is periodic in p, so
		// copying it after itself continues the pattern.
		cur := handler.NewIovCursor(pat)
		cur.Skip(int(done % p))
		k := 0
		for k < len(dst) && int64(k) < p {
			src := cur.Next(int(min(int64(len(dst)-k), p-int64(k))))
			if len(src) == 0 {
				cur = handler.NewIovCursor(pat)
				continue
			}
			k += copy(dst[k:], src)
		}
		for k < len(dst) {
			k += copy(dst[k:], dst[:k])
		}
		done += int64(l)
	}
	return nil
}

// discard frees the chunks [off, off+n) covers within the device and
// zeros the rest of the range.
func (b *Backend) discard(off, n int64) {
	for n > 0 {
		i := off >> chunkShift
		co := off & chunkMask
		l := min(n, chunkSize-co)
		chunkEnd := min((i+1)<<chunkShift, b.size)
		switch c := b.tab.get(i); {
		case c == nil:
		case co == 0 && off+l >= chunkEnd:
			b.tab.free(i)
		default:
			clear(c[co : co+l])
		}
		off += l
		n -= l
	}
}

// compareAndWrite compares [io.Off, io.Off+io.Len) with the first Len
// bytes of io.Iov and writes the next Len bytes if they are equal. The
// caller holds mu exclusively.
func (b *Backend) compareAndWrite(io *handler.IO) error {
	cur := handler.NewIovCursor(io.Iov)
	for done := int64(0); done < io.Len; {
		off := io.Off + done
		co := int(off & chunkMask)
		c := b.tab.get(off >> chunkShift)
		want := cur.Next(int(min(io.Len-done, chunkSize-int64(co))))
		var have []byte
		if c != nil {
			have = c[co : co+len(want)]
		}
		if i := firstDiff(have, want); i >= 0 {
			io.MiscompareOffset = done + int64(i)
			return handler.ErrMiscompare
		}
		done += int64(len(want))
	}
	return b.write(cur, io.Off, io.Len)
}

// firstDiff returns the index of the first byte where have differs from
// want, or -1. A nil have stands for zeros (an unwritten chunk).
func firstDiff(have, want []byte) int {
	if have == nil {
		for i, c := range want {
			if c != 0 {
				return i
			}
		}
		return -1
	}
	if bytes.Equal(have, want) {
		return -1
	}
	for i := range want {
		if have[i] != want[i] {
			return i
		}
	}
	return -1
}

// Status reports whether the chunk holding off has memory (mapped) and
// how far from off chunks keep that state, up to length.
func (b *Backend) Status(ctx context.Context, off, length int64) (mapped bool, extent int64, err error) {
	if err := ctx.Err(); err != nil {
		return false, 0, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return false, 0, handler.ErrBackendClosed
	}
	if length <= 0 || off < 0 || off >= b.size {
		return false, 0, fmt.Errorf("status of %d+%d on the %d-byte device: %w", off, length, b.size, syscall.EINVAL)
	}
	length = min(length, b.size-off)
	mapped = b.tab.get(off>>chunkShift) != nil
	extent = chunkSize - off&chunkMask
	for extent < length && (b.tab.get((off+extent)>>chunkShift) != nil) == mapped {
		extent += chunkSize
	}
	return mapped, min(extent, length), nil
}

// Resize changes the device size. Growing adds unwritten space; shrinking
// frees the chunks past the end and zeros the rest of the last one, so
// growing again reads zeros there.
func (b *Backend) Resize(size int64) error {
	if err := checkSize(size); err != nil {
		return fmt.Errorf("resize memory backend: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return handler.ErrBackendClosed
	}
	if size < b.size {
		if co := size & chunkMask; co != 0 {
			if c := b.tab.get(size >> chunkShift); c != nil {
				clear(c[co:])
			}
		}
		for i := (size + chunkMask) >> chunkShift; i < (b.size+chunkMask)>>chunkShift; i++ {
			b.tab.free(i)
		}
	}
	b.tab.grow(size)
	b.size = size
	return nil
}

// Close frees all memory. IO submitted afterwards fails with ENXIO.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tab.freeAll()
	b.closed = true
	return nil
}
