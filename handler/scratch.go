package handler

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

const (
	// scratchSize is the size of one scratch buffer: the chunk in which
	// emulated commands read, compare and write. It is a multiple of
	// every supported block size (at most 64 KiB).
	scratchSize = 1 << 20
	// scratchIdle is how many free buffers a device keeps mapped.
	scratchIdle = 4
)

// scratchPool hands out buffers for emulation (the read half of COMPARE
// AND WRITE, VERIFY, the pattern of WRITE SAME, the bounce buffer of
// EXTENDED COPY). The Backend contract lets a backend pass an IO's buffers
// to C for the duration of the operation (librbd aio), which Go heap
// memory must not be without pinning; these buffers are anonymous
// mappings outside the Go heap, like the data area itself. Buffers are
// mapped on first use, so a device that never emulates maps none.
// Safe for concurrent use.
type scratchPool struct {
	mu     sync.Mutex
	free   [][]byte
	closed bool
}

// get returns a buffer of scratchSize bytes.
func (p *scratchPool) get() ([]byte, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return b, nil
	}
	p.mu.Unlock()
	b, err := unix.Mmap(-1, 0, scratchSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map scratch buffer: %w", err)
	}
	return b, nil
}

// put returns a buffer; beyond scratchIdle free buffers, or after close,
// it is unmapped.
func (p *scratchPool) put(b []byte) {
	p.mu.Lock()
	if !p.closed && len(p.free) < scratchIdle {
		p.free = append(p.free, b)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = unix.Munmap(b)
}

// close unmaps the free buffers; buffers still lent out are unmapped when
// they are put back.
func (p *scratchPool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, b := range free {
		_ = unix.Munmap(b)
	}
}
