package main

import (
	"os"
	"runtime"
)

// minProcs is the fewest Ps (GOMAXPROCS) gotcmu runs with.
//
// A device's loop spends much of each wake-up inside librbd (rbd_aio_*
// through cgo), and a goroutine in a cgo call holds its P. With as many Ps
// as CPUs, a gateway's busy loops queue for the few Ps while others sit in
// librbd, and the runtime's sysmon keeps taking Ps back from cgo calls to
// run them (runtime/proc.go, retake), polling every 20 µs after each time
// it does. make scale at 64 user:rbd LUNs, one guest boot of 2 CPUs, in
// ABBA order (2026-12-06 13:20; test/results/scale-data/run10/notes.md):
// GOMAXPROCS 2 gave 353 and 430 IOPS, 2,164 and 2,334 µs of the daemon's
// CPU per IO, sysmon 0.72 and 0.80 wake-ups per IO; GOMAXPROCS 8 498 and
// 507 IOPS (1.28x), 1,891 and 1,940 µs (0.85x), sysmon 0.51 and 0.51. One
// LUN (make bench, 2026-12-06 13:38, two rounds, ABBA): every row's IOPS
// and CPU per IO within the range of GOMAXPROCS 2's (e.g. 4k randwrite QD32
// 561-632 IOPS, 915-971 µs, against 527-581 and 837-1,040).
const minProcs = 8

// raiseProcs sets GOMAXPROCS to procsFor's choice.
func raiseProcs() {
	cur := runtime.GOMAXPROCS(0)
	if n := procsFor(os.Getenv("GOMAXPROCS"), cur); n != cur {
		runtime.GOMAXPROCS(n)
	}
}

// procsFor returns the Ps to run with: current (the runtime's choice) when
// the environment sets GOMAXPROCS (the operator's), at least minProcs
// otherwise.
func procsFor(env string, current int) int {
	if env != "" {
		return current
	}
	return max(current, minProcs)
}
