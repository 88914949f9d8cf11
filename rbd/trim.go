//go:build !nautilus

package rbd

// #include <malloc.h>
import "C"

// trimCHeap gives the pages of glibc malloc's free chunks back to the
// kernel (malloc_trim(3): every arena, not only the main one's top). A
// RADOS client's shutdown frees what its dozen or so threads allocated,
// but malloc keeps it in the arenas those threads used; measured against
// the micro Ceph (40 reopens of one image, each with a fresh client), the
// C heap in use stayed at 6.0-6.3 MiB while the arenas grew from 17 to
// 119 MiB and RssAnon from 11 to 22-31 MiB; trimmed every fifth reopen,
// RssAnon stayed at 11-16.5 MiB. A variable, so tests can count the calls.
var trimCHeap = func() { C.malloc_trim(0) }

// cHeapInUse returns the bytes glibc malloc has allocated, in every arena
// and in mmapped chunks (mallinfo2): what librados, librbd and gotcmu's
// cgo hold, without the free memory the arenas keep (BenchmarkImageCost).
func cHeapInUse() uint64 {
	mi := C.mallinfo2()
	return uint64(mi.uordblks) + uint64(mi.hblkhd)
}
