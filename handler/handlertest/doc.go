// Package handlertest checks that a handler.Backend keeps the contract of
// handler/backend.go, the way testing/fstest.TestFS checks an fs.FS: every
// backend (mem, file, rbd) runs the same TestBackend from its own tests,
// and BenchmarkBackend measures any of them the same way.
//
// The suite hands backends buffers from an anonymous mmap, never from the
// Go heap, as the TCMU data area is: a backend may pass them straight to C
// (librbd) or to the kernel.
//
// It never touches a real device; whatever storage the backend needs is
// the caller's open function's business.
package handlertest
