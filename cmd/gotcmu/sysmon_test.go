package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestKeepSysmonAwake runs this test binary as a child that calls
// keepSysmonAwake and prints its GODEBUG: the child re-executes itself
// with schedtrace added, keeps the GODEBUG settings it had, and leaves an
// operator's own schedtrace alone.
func TestKeepSysmonAwake(t *testing.T) {
	if os.Getenv("GOTCMU_SYSMON_CHILD") == "1" {
		keepSysmonAwake()
		os.Stdout.WriteString("GODEBUG=" + os.Getenv("GODEBUG") + "\n")
		os.Exit(0)
	}
	for _, tc := range []struct{ in, want string }{
		{"", "GODEBUG=" + sysmonGodebug},
		{"madvdontneed=1", "GODEBUG=madvdontneed=1," + sysmonGodebug},
		{"schedtrace=0", "GODEBUG=schedtrace=0"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKeepSysmonAwake$")
		cmd.Env = append(os.Environ(), "GOTCMU_SYSMON_CHILD=1", "GODEBUG="+tc.in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("GODEBUG=%q: child: %v", tc.in, err)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("GODEBUG=%q: the daemon runs with %q, want %q", tc.in, got, tc.want)
		}
	}
}
