package uiotest

/*
#include "../cring.h"
*/
import "C"

import (
	"sync"

	"github.com/gotcmu/gotcmu/uio"
)

// cMu orders, for the race detector, what a test wrote before
// AnswerFromC before what the fake does when the C doorbell reaches it
// (pipeDoorbell holds it while it rings): C code is invisible to the
// detector, though its lock and the pipe order both for the CPU.
var cMu sync.Mutex

// AnswerFromC answers the command fa names GOOD through the same C
// functions a backend's own thread calls (uio/cring.h), and rings the
// doorbell from C if the ring has a doorbell fd (Config.DoorbellFD):
// for tests of backends that answer without entering Go. It returns
// gotcmu_ring_complete's result: 1 written, 0 dropped (a command of an
// older generation, or not the ring's), -1 the ring found broken.
func AnswerFromC(fa uio.FastAnswer) int {
	cMu.Lock()
	defer cMu.Unlock()
	r := (*C.gotcmu_ring)(fa.Ring)
	rc := C.gotcmu_ring_complete(r, C.uint16_t(fa.ID), C.uint64_t(fa.Gen), 0, 0, 0, nil, 0)
	C.gotcmu_ring_kick(r)
	return int(rc)
}
