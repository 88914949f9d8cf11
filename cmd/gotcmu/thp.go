package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// setHugepages applies tcmu.conf's transparent_hugepages to the daemon's
// memory: prctl(PR_SET_THP_DISABLE) holds for the whole process, the Go
// heap, librados' and librbd's heap and every thread's stack; memory
// already backed by huge pages keeps them.
//
// Why off by default: librados starts some 16 threads per image, each
// with an 8 MiB stack of which it touches tens of KiB, and where the
// kernel's THP is "always" (Debian's kernels) khugepaged collapses some of
// those stacks into 2 MiB pages. In the 256-LUN boot of make scale of
// 2026-12-06 04:46, 41 of gotcmu's 4,017 stacks held 82 MiB that way and
// 24 of tcmu-runner's 4,101 held 48 MiB, against 98 and 48 MiB for all
// the other stacks.
func setHugepages(on bool) error {
	disable := uintptr(1)
	if on {
		disable = 0
	}
	if err := unix.Prctl(unix.PR_SET_THP_DISABLE, disable, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_THP_DISABLE %d: %w", disable, err)
	}
	return nil
}
