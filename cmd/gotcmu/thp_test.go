package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

// transparent_hugepages reaches the kernel: off sets the process' THP
// disable flag, on clears it.
func TestSetHugepages(t *testing.T) {
	get := func() int {
		v, _, errno := unix.Syscall6(unix.SYS_PRCTL, unix.PR_GET_THP_DISABLE, 0, 0, 0, 0, 0)
		if errno != 0 {
			t.Fatalf("prctl PR_GET_THP_DISABLE: %v", errno)
		}
		return int(v)
	}
	was := get()
	t.Cleanup(func() { _ = setHugepages(was == 0) })
	for _, on := range []bool{false, true, false} {
		if err := setHugepages(on); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 1, true: 0}[on]; get() != want {
			t.Errorf("transparent_hugepages %v: PR_GET_THP_DISABLE %d, want %d", on, get(), want)
		}
	}
}
