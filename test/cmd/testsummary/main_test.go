package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// events renders test2json events, one a line.
func events(t *testing.T, evs ...event) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range evs {
		j, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func run1(t *testing.T, in string) (summary string, rc int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "summary.txt")
	var out, errOut strings.Builder
	rc = run([]string{"-summary", path}, strings.NewReader(in), &out, &errOut)
	if errOut.Len() > 0 {
		t.Errorf("stderr: %s", errOut.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), rc
}

func out(test, s string) event { return event{Action: "output", Test: test, Output: s} }

func TestSummaryLines(t *testing.T) {
	const top = "TestFaults"
	in := events(t,
		event{Action: "run", Test: top},
		out(top, "=== RUN   TestFaults\n"),
		event{Action: "run", Test: top + "/gotcmu_starts"},
		event{Action: "pass", Test: top + "/gotcmu_starts"},
		event{Action: "run", Test: top + "/delete"},
		event{Action: "run", Test: top + "/delete/targetcli_deleted_the_backstore"},
		out(top+"/delete/targetcli_deleted_the_backstore", "    faults_test.go:12: deleted in 39 s (targetcli exit 0)\n"),
		event{Action: "pass", Test: top + "/delete/targetcli_deleted_the_backstore"},
		event{Action: "run", Test: top + "/delete/gotcmu_still_running"},
		out(top+"/delete/gotcmu_still_running", "    faults_test.go:40: gotcmu exited: signal: killed\n"),
		out(top+"/delete/gotcmu_still_running", "        its log: x\n"),
		out(top+"/delete/gotcmu_still_running", "--- FAIL: TestFaults/delete/gotcmu_still_running (0.00s)\n"),
		event{Action: "fail", Test: top + "/delete/gotcmu_still_running"},
		event{Action: "fail", Test: top + "/delete"},
		event{Action: "run", Test: top + "/tiny-data-area"},
		event{Action: "run", Test: top + "/tiny-data-area/TASK_SET_FULL"},
		out(top+"/tiny-data-area/TASK_SET_FULL", "    faults_test.go:99: no count: no tracefs in the guest kernel\n"),
		event{Action: "skip", Test: top + "/tiny-data-area/TASK_SET_FULL"},
		event{Action: "pass", Test: top + "/tiny-data-area"},
		event{Action: "run", Test: top + "/osd-restart"},
		out(top+"/osd-restart", "    faults_test.go:7: no user:rbd LUN"),
		event{Action: "fail", Test: top + "/osd-restart"},
		event{Action: "fail", Test: top},
		event{Action: "fail"},
	)
	got, rc := run1(t, in)
	want := `PASS gotcmu starts
PASS delete: targetcli deleted the backstore (deleted in 39 s (targetcli exit 0))
FAIL delete: gotcmu still running: gotcmu exited: signal: killed
SKIP tiny-data-area: TASK SET FULL: no count: no tracefs in the guest kernel
FAIL osd-restart: no user:rbd LUN
`
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	if rc != 1 {
		t.Errorf("exit status %d, want 1", rc)
	}
}

// TestVerdicts: the exit status, and the lines for what is not a plain
// test result.
func TestVerdicts(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want string // the summary
		rc   int
	}{
		{"every check passed, a name with a slash", events(t,
			event{Action: "run", Test: "TestHA"},
			event{Action: "run", Test: "TestHA/fio"},
			event{Action: "pass", Test: "TestHA/fio"},
			event{Action: "run", Test: "TestHA/I/O_resumed"},
			event{Action: "pass", Test: "TestHA/I/O_resumed"},
			event{Action: "pass", Test: "TestHA"},
			out("", "PASS\n"),
			event{Action: "pass"},
		), "PASS fio\nPASS I/O resumed\n", 0},
		// A panic or -test.timeout ends the binary with tests running:
		// each is a FAIL, with the binary's last words.
		{"tests that never ended", events(t,
			event{Action: "run", Test: "TestFaults"},
			event{Action: "run", Test: "TestFaults/a"},
			event{Action: "pass", Test: "TestFaults/a"},
			event{Action: "run", Test: "TestFaults/sigkill"},
			event{Action: "run", Test: "TestFaults/sigkill/file"},
			out("", "panic: test timed out after 35m0s\n"),
			event{Action: "fail"},
		), "PASS a\nFAIL sigkill: file: did not end (the test binary ended first: panic: test timed out after 35m0s)\n", 1},
		{"a binary failing with no test failing", events(t,
			event{Action: "run", Test: "TestX"},
			event{Action: "pass", Test: "TestX"},
			out("", "exit status 3\n"),
			event{Action: "fail"},
		), "PASS TestX\nFAIL the test binary failed with no test failing: exit status 3\n", 1},
		{"no events", "", "FAIL no test passed\n", 1},
		{"only skips", events(t, event{Action: "run", Test: "TestX"}, out("TestX", "    x_test.go:3: no tracefs\n"),
			event{Action: "skip", Test: "TestX"}), "SKIP TestX: no tracefs\nFAIL no test passed\n", 1},
		{"no test binary", "not json\n", "FAIL no test passed\n", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, rc := run1(t, c.in); got != c.want || rc != c.rc {
				t.Errorf("got %q, exit %d; want %q, exit %d", got, rc, c.want, c.rc)
			}
		})
	}
}
