package mem

import (
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const (
	// chunkSize is the unit of allocation, of discard that frees memory,
	// and of GET LBA STATUS answers. 1 MiB keeps the table small (8
	// bytes per MiB) and the first-write cost (one mmap) rare.
	chunkShift = 20
	chunkSize  = 1 << chunkShift
	chunkMask  = chunkSize - 1

	// A leaf holds the chunk pointers of 512 MiB of device, and is only
	// allocated once something in that range is written, so the table of
	// an untouched 1 TiB device is 2048 nil pointers.
	leafShift = 9
	leafLen   = 1 << leafShift
)

// chunk is 1 MiB of device data. Its memory is an anonymous mapping,
// not Go heap: the pointer is only a typed view of it.
type chunk = [chunkSize]byte

type leaf [leafLen]atomic.Pointer[chunk]

// table maps chunk numbers to chunks. Lookups and allocation are lock
// free (atomic loads, compare-and-swap); freeing a chunk and growing the
// table need the caller to exclude every other user (Backend.mu).
type table struct {
	leaves []atomic.Pointer[leaf]
	// chunks counts allocated chunks.
	chunks atomic.Int64
}

// leavesFor returns how many leaves cover size bytes.
func leavesFor(size int64) int {
	chunks := (size + chunkMask) >> chunkShift
	return int((chunks + leafLen - 1) >> leafShift)
}

// grow makes room for a device of size bytes. The caller excludes all
// other users.
func (t *table) grow(size int64) {
	n := leavesFor(size)
	if n <= len(t.leaves) {
		return
	}
	leaves := make([]atomic.Pointer[leaf], n)
	for i := range t.leaves {
		leaves[i].Store(t.leaves[i].Load())
	}
	t.leaves = leaves
}

// get returns chunk i, or nil if it was never written (it reads as zeros).
func (t *table) get(i int64) *chunk {
	l := t.leaves[i>>leafShift].Load()
	if l == nil {
		return nil
	}
	return l[i&(leafLen-1)].Load()
}

// getOrAlloc returns chunk i, mapping zeroed memory for it on first use.
// Concurrent callers for the same chunk agree on one of their mappings
// and the others unmap theirs.
func (t *table) getOrAlloc(i int64) (*chunk, error) {
	lp := &t.leaves[i>>leafShift]
	l := lp.Load()
	if l == nil {
		fresh := new(leaf)
		if lp.CompareAndSwap(nil, fresh) {
			l = fresh
		} else {
			l = lp.Load()
		}
	}
	cp := &l[i&(leafLen-1)]
	if c := cp.Load(); c != nil {
		return c, nil
	}
	c, err := mapChunk()
	if err != nil {
		return nil, err
	}
	if !cp.CompareAndSwap(nil, c) {
		unmapChunk(c)
		return cp.Load(), nil
	}
	t.chunks.Add(1)
	return c, nil
}

// free unmaps chunk i if it is allocated. The caller excludes all other
// users: a reader may be copying out of the chunk.
func (t *table) free(i int64) {
	l := t.leaves[i>>leafShift].Load()
	if l == nil {
		return
	}
	if c := l[i&(leafLen-1)].Swap(nil); c != nil {
		unmapChunk(c)
		t.chunks.Add(-1)
	}
}

// freeAll unmaps every chunk and drops the table.
func (t *table) freeAll() {
	for i := range t.leaves {
		l := t.leaves[i].Load()
		if l == nil {
			continue
		}
		for j := range l {
			if c := l[j].Swap(nil); c != nil {
				unmapChunk(c)
				t.chunks.Add(-1)
			}
		}
	}
	t.leaves = nil
}

// mapChunk maps a zeroed chunk. The kernel backs it with the zero page
// until it is written, and the first write to each page is a page fault;
// that is the price of not holding memory for unwritten data.
func mapChunk() (*chunk, error) {
	mem, err := unix.Mmap(-1, 0, chunkSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map 1 MiB of memory: %w", err)
	}
	return (*chunk)(mem), nil
}

// unmapChunk returns a chunk's memory to the kernel. munmap fails only for
// arguments that did not come from mapChunk.
func unmapChunk(c *chunk) {
	if err := unix.Munmap(c[:]); err != nil {
		panic("mem: unmap chunk: " + err.Error())
	}
}
