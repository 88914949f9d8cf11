package uiotest_test

import (
	"context"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// TestRegionInMappedMemory lays the region out in an anonymous mapping,
// as a test of a cgo backend needs (data-area pointers handed to C must
// not be Go heap), and serves a command through it.
func TestRegionInMappedMemory(t *testing.T) {
	region, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(region) })
	for i := range region {
		region[i] = 0xee // New must not rely on fresh memory being zero
	}
	k := uiotest.New(t, uiotest.Config{RingSize: 16 << 10, DataSize: 64 << 10, Region: region})
	if got := unsafe.SliceData(k.Mem()); got != unsafe.SliceData(region) {
		t.Fatalf("Mem starts at %p, want the given region at %p", got, unsafe.SliceData(region))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go serve(ctx, k.Ring(), k)
	id := submit(t, k, uiotest.Request{CDB: read10(1), DataInLen: 512})
	c := completion(t, k)
	if c.ID != id || c.Status != 0 || len(c.DataIn) != 512 || c.DataIn[1] != 1 {
		t.Fatalf("completion through the mapped region: %+v", c)
	}
}

// TestNoDataIn serves a read with neither the poison fill nor the copy
// out: the completion carries status and no data.
func TestNoDataIn(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{NoDataIn: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go serve(ctx, k.Ring(), k)
	id := submit(t, k, uiotest.Request{CDB: read10(1), DataInLen: 512})
	if c := completion(t, k); c.ID != id || c.Status != 0 || c.DataIn != nil {
		t.Fatalf("completion without Data-In: %+v", c)
	}
	data := k.Mem()[k.DataOff() : k.DataOff()+512]
	if data[0] != 0 || data[511] != 0xff {
		t.Fatalf("the handler's data is not in the buffer: % x ... % x", data[:4], data[508:])
	}
}
