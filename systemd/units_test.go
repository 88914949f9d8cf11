// Package systemd_test checks the files in systemd/: that systemd accepts
// the unit and that the unit, the D-Bus activation file and the policy
// agree on names and paths. The policy file itself is exercised by the
// D-Bus tests in cmd/gotcmu/internal/dbusapi, which run a dbus-daemon with
// it.
package systemd_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// iniValues returns every key=value of an ini-style file, in order.
func iniValues(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vals := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not key=value", path, line)
		}
		vals[k] = append(vals[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vals
}

// TestUnitVerifies runs systemd-analyze verify on the unit, with ExecStart
// pointed at an executable that exists (gotcmu is not installed here).
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd): ", err)
	}
	unit, err := os.ReadFile("gotcmu.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "gotcmu")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(unit), "ExecStart=/usr/bin/gotcmu", "ExecStart="+bin, 1)
	if text == string(unit) {
		t.Fatal("the unit has no ExecStart=/usr/bin/gotcmu to rewrite")
	}
	path := filepath.Join(dir, "gotcmu.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Warnings (an unknown or misspelt key, a bad value) do not change
	// the exit status; every line about our unit is one. A host with
	// tcmu-runner installed adds a line about its unit owning the same
	// bus name, which is expected.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, path) || strings.HasPrefix(line, "gotcmu.service") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

// TestNamesAgree checks that the unit, the activation file and the policy
// name the same bus name, binary and unit.
func TestNamesAgree(t *testing.T) {
	const busName = "org.kernel.TCMUService1"
	unit := iniValues(t, "gotcmu.service")
	act := iniValues(t, "org.kernel.TCMUService1.service")
	policy, err := os.ReadFile("org.kernel.TCMUService1.conf")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what, got, want string
	}{
		{"unit Type", strings.Join(unit["Type"], ","), "dbus"},
		{"unit BusName", strings.Join(unit["BusName"], ","), busName},
		{"unit Alias", strings.Join(unit["Alias"], ","), "tcmu-runner.service"},
		{"activation Name", strings.Join(act["Name"], ","), busName},
		{"activation SystemdService", strings.Join(act["SystemdService"], ","), "gotcmu.service"},
		{"activation Exec", strings.Join(act["Exec"], ","), strings.Join(unit["ExecStart"], ",")},
		{"activation User", strings.Join(act["User"], ","), "root"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if !strings.Contains(string(policy), `<allow own="`+busName+`"/>`) {
		t.Errorf("policy does not let root own %s", busName)
	}
}
