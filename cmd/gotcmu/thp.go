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
// The trade, measured by make scale at 64 user:rbd LUNs in one boot
// (2026-12-06 05:28, test/results/scale.md): with huge pages off gotcmu's
// anonymous memory was 188.7 MiB against 221.9 with them (tcmu-runner,
// which leaves them on, 197.0): glibc's arenas 21 MiB smaller and the
// thread stacks 12 MiB (librados starts some 16 threads per image, and
// khugepaged collapses some of their 8 MiB stacks into 2 MiB pages where
// a thread touches tens of KiB). Each IO cost 7 % more of the daemon's CPU
// (2862 us against 2664, under the aggregate load). So the default leaves
// the kernel's policy alone, and a gateway short of memory turns them off.
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
