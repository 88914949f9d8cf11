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
// Off is the default, measured by make scale at 64 user:rbd LUNs: with
// huge pages off gotcmu's anonymous memory was 188.7 MiB against 221.9
// with them (tcmu-runner, which leaves them on, 197.0; boot of 2026-12-06
// 05:28): glibc's arenas 21 MiB smaller and the thread stacks 12 MiB
// (librados starts some 16 threads per image, and khugepaged collapses
// some of their 8 MiB stacks into 2 MiB pages where a thread touches tens
// of KiB). What it costs per IO: nothing measurable. Each setting ran
// twice in one boot, in ABBA order (2026-12-06 08:47): off 1,968 and 1,836
// us of the daemon's CPU per IO, on 1,693 and 2,116 (means 1,902 and
// 1,905), 191 and 193 MiB against 222 and 225. (The 05:28 boot's 7 % more
// CPU with them off was one turn each, the off one first: every boot's
// IOPS rise with a turn's place, test/results/scale.md.)
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
