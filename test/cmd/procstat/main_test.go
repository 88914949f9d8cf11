package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseStatCommandWithSpacesAndParens(t *testing.T) {
	line := "812 (a (b) c) S 1 812 812 0 -1 4194560 2519 0 0 0 1520 3311 0 0 20 0 14 0 1234 0 0\n"
	u, s, err := parseStat(line)
	if err != nil || u != 1520 || s != 3311 {
		t.Fatalf("parseStat = %d, %d, %v; want 1520, 3311", u, s, err)
	}
	for _, bad := range []string{"812 no parens", "812 (x) S 1 2", "812 (x) S 1 2 3 4 5 6 7 8 9 10 x 11 12"} {
		if _, _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) took it", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	st := "Name:\tgotcmu\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n"
	task, err := parseStatus([]byte(st))
	if err != nil || task.Vcsw != 120 || task.Ivcsw != 7 || task.Name != "gotcmu" {
		t.Fatalf("parseStatus = %+v, %v", task, err)
	}
	if _, err := parseStatus([]byte("Name:\tx\nvoluntary_ctxt_switches:\t1\n")); err == nil {
		t.Error("took a status without nonvoluntary_ctxt_switches")
	}
	if _, err := parseStatus([]byte("voluntary_ctxt_switches:\tx\nnonvoluntary_ctxt_switches:\t1\n")); err == nil {
		t.Error("took a non-number")
	}
}

func TestParseBlockStat(t *testing.T) {
	// 6.1: 17 fields.
	d, err := parseBlockStat("    1000        3    8000      500     2000        0    16000     900        0     700    1400      5    0    40    1     9    10\n")
	if err != nil || d != (DevIOs{Read: 1000, Write: 2000, Discard: 5, Flush: 9}) {
		t.Fatalf("parseBlockStat = %+v, %v", d, err)
	}
	// An old kernel's 11 fields: no discard, no flush.
	d, err = parseBlockStat("1 0 8 0 2 0 16 0 0 0 0")
	if err != nil || d != (DevIOs{Read: 1, Write: 2}) {
		t.Fatalf("11 fields: %+v, %v", d, err)
	}
	if _, err := parseBlockStat("1 2 3"); err == nil {
		t.Error("took 3 fields")
	}
}

// A fake /proc and /sys under -root.
func TestSnapshotFromFakeRoot(t *testing.T) {
	root := t.TempDir()
	put := func(path, body string) {
		t.Helper()
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("proc/77/stat", "77 (gotcmu) S 1 77 77 0 -1 0 0 0 0 0 10 20 0 0 20 0 3 0 1 0 0\n")
	put("proc/77/task/77/status", "voluntary_ctxt_switches:\t5\nnonvoluntary_ctxt_switches:\t1\n")
	put("proc/77/task/77/schedstat", "123456 0 9\n")
	put("proc/77/task/78/status", "voluntary_ctxt_switches:\t50\nnonvoluntary_ctxt_switches:\t2\n")
	put("sys/block/sdb/stat", "10 0 80 0 20 0 160 0 0 0 0 0 0 0 0 0 0\n")
	var out, errOut bytes.Buffer
	if rc := run([]string{"-root", root, "-pid", "77", "-dev", "/dev/sdb", "-hz", "250"}, &out, &errOut); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errOut.String())
	}
	var s Snapshot
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	want := Snapshot{PID: 77, HZ: 250, Utime: 10, Stime: 20, Tasks: map[string]Task{
		"77": {Vcsw: 5, Ivcsw: 1, RunNs: 123456}, "78": {Vcsw: 50, Ivcsw: 2}},
		Dev: "sdb", DevIOs: &DevIOs{Read: 10, Write: 20}, TimeUs: s.TimeUs}
	if got, _ := json.Marshal(s); !bytes.Equal(got, mustJSON(want)) {
		t.Errorf("snapshot %s\nwant     %s", got, mustJSON(want))
	}
	if rc := run([]string{"-root", root, "-pid", "79"}, &out, &errOut); rc != 1 {
		t.Errorf("missing process: exit %d, want 1", rc)
	}
	if rc := run(nil, &out, &errOut); rc != 2 {
		t.Errorf("no -pid, no -dev: exit %d, want 2", rc)
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// The real /proc: this test process has threads and CPU time.
func TestSnapshotOfSelf(t *testing.T) {
	var out, errOut bytes.Buffer
	if rc := run([]string{"-pid", strconv.Itoa(os.Getpid())}, &out, &errOut); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errOut.String())
	}
	var s Snapshot
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Tasks) == 0 || s.HZ != 100 || !strings.Contains(out.String(), `"tasks"`) {
		t.Errorf("snapshot of self: %s", out.String())
	}
}
