package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readUsage(t *testing.T, path string) Usage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var u Usage
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return u
}

// A child that burns CPU in threads of its own: the shell's busy loop in a
// subshell is a child of the child, which wait4 counts once the shell has
// waited for it.
func TestRusageCountsTheWholeProcessAndItsChildren(t *testing.T) {
	out := filepath.Join(t.TempDir(), "u.json")
	var so, se bytes.Buffer
	rc := run([]string{"-o", out, "--", "sh", "-c", `i=0; (while [ $i -lt 20000 ]; do i=$((i+1)); done) & wait; echo done; exit 3`},
		strings.NewReader(""), &so, &se)
	if rc != 3 {
		t.Fatalf("exit %d, want the command's 3; stderr %q", rc, se.String())
	}
	if so.String() != "done\n" {
		t.Errorf("stdout %q", so.String())
	}
	u := readUsage(t, out)
	if u.Exit != 3 || u.UtimeUs+u.StimeUs <= 0 || u.MaxRSSKB <= 0 || u.WallUs <= 0 || u.StartUs <= 0 || u.Nvcsw+u.Nivcsw <= 0 {
		t.Errorf("usage %+v: want exit 3, CPU time, context switches, a resident set and a wall time", u)
	}
}

func TestRusageSignalledChild(t *testing.T) {
	out := filepath.Join(t.TempDir(), "u.json")
	var so, se bytes.Buffer
	if rc := run([]string{"-o", out, "sh", "-c", "kill -KILL $$"}, strings.NewReader(""), &so, &se); rc != 128+9 {
		t.Fatalf("exit %d, want 137", rc)
	}
	if u := readUsage(t, out); u.Exit != 137 {
		t.Errorf("exit in file %d, want 137", u.Exit)
	}
}

func TestRusageUsage(t *testing.T) {
	var so, se bytes.Buffer
	for _, args := range [][]string{{}, {"-o", "x"}, {"true"}} {
		if rc := run(args, strings.NewReader(""), &so, &se); rc != 2 {
			t.Errorf("%q: exit %d, want 2", args, rc)
		}
	}
	if rc := run([]string{"-o", filepath.Join(t.TempDir(), "u"), "/nonexistent/cmd"}, strings.NewReader(""), &so, &se); rc != 2 {
		t.Errorf("missing command: exit %d, want 2", rc)
	}
}
