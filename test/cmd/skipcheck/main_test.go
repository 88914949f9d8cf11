package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const pkg = "github.com/gotcmu/gotcmu/rbd"

// events encodes test2json events, one a line, as `go test -json` writes
// them.
func events(t *testing.T, evs ...event) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range evs {
		if ev.Package == "" && ev.ImportPath == "" {
			ev.Package = pkg
		}
		j, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func out(test, s string) event      { return event{Action: "output", Test: test, Output: s} }
func act(action, test string) event { return event{Action: action, Test: test} }

// check runs skipcheck over stdin with the given list and returns its exit
// status and stdout.
func check(t *testing.T, list, stdin string, args ...string) (int, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "expected-skips.txt")
	if err := os.WriteFile(path, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"-allow", path}, args...), strings.NewReader(stdin), &stdout, &stderr)
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return code, stdout.String()
}

// skippedSubtest is a run whose one subtest skips; the reason arrives in
// two output events, as a long line may.
func skippedSubtest(t *testing.T) string {
	return events(t,
		act("start", ""),
		act("run", "TestBackendConformance"),
		out("TestBackendConformance", "=== RUN   TestBackendConformance\n"),
		act("run", "TestBackendConformance/resize"),
		out("TestBackendConformance/resize", "=== RUN   TestBackendConformance/resize\n"),
		out("TestBackendConformance/resize", "    suite.go:563: backend does not "),
		out("TestBackendConformance/resize", "implement handler.Resizer\n"),
		out("TestBackendConformance/resize", "    --- SKIP: TestBackendConformance/resize (0.09s)\n"),
		act("skip", "TestBackendConformance/resize"),
		out("TestBackendConformance", "--- PASS: TestBackendConformance (3.51s)\n"),
		act("pass", "TestBackendConformance"),
		out("", "PASS\n"),
		out("", "ok  \t"+pkg+"\t3.6s\n"),
		act("pass", ""),
	)
}

func TestSkips(t *testing.T) {
	for _, tt := range []struct {
		name     string
		list     string
		wantCode int
		want     []string // lines stdout must hold
	}{
		{"unlisted_subtest_skip_fails", "# nothing expected\n", 1, []string{
			"skipcheck: SKIP " + pkg + " TestBackendConformance/resize: suite.go:563: backend does not implement handler.Resizer",
			"NOT EXPECTED",
			"skipcheck: 1 skipped, 0 expected, 1 not expected",
		}},
		{"listed_by_package_suffix_passes", "rbd TestBackendConformance/resize shrinking is refused by design; TestResize\n", 0, []string{
			"skipcheck: SKIP " + pkg + " TestBackendConformance/resize: suite.go:563: backend does not implement handler.Resizer",
			"expected: shrinking is refused by design; TestResize",
			"skipcheck: 1 skipped, 1 expected, 0 not expected",
		}},
		{"listed_by_import_path_passes", pkg + " TestBackendConformance/resize by design\n", 0, []string{
			"expected: by design",
		}},
		{"another_package_does_not_match", "handler/rbd TestBackendConformance/resize by design\nrb TestBackendConformance/resize by design\n", 1, []string{
			"NOT EXPECTED",
		}},
		{"the_parent_listed_is_not_the_subtest", "rbd TestBackendConformance by design\n", 1, []string{
			"NOT EXPECTED",
			"skipcheck: note: rbd TestBackendConformance is listed as expected but was not skipped",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout := check(t, tt.list, skippedSubtest(t))
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d; stdout:\n%s", code, tt.wantCode, stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestFailures(t *testing.T) {
	failed := events(t,
		act("start", ""),
		act("run", "TestA"),
		out("TestA", "=== RUN   TestA\n"),
		act("run", "TestA/sub"),
		out("TestA/sub", "=== RUN   TestA/sub\n"),
		out("TestA/sub", "    a_test.go:9: got 1, want 2\n"),
		out("TestA/sub", "    --- FAIL: TestA/sub (0.00s)\n"),
		act("fail", "TestA/sub"),
		out("TestA", "--- FAIL: TestA (0.00s)\n"),
		act("fail", "TestA"),
		act("run", "TestB"),
		out("TestB", "=== RUN   TestB\n"),
		out("TestB", "    b_test.go:3: quiet on success\n"),
		out("TestB", "--- PASS: TestB (0.00s)\n"),
		act("pass", "TestB"),
		out("", "FAIL\n"),
		out("", "FAIL\t"+pkg+"\t0.1s\n"),
		act("fail", ""),
	)
	buildFailed := events(t,
		event{ImportPath: pkg + " [" + pkg + ".test]", Action: "build-output", Output: "rbd/image.go:1:1: expected 'package'\n"},
		event{ImportPath: pkg + " [" + pkg + ".test]", Action: "build-fail"},
		act("start", ""),
		out("", "FAIL\t"+pkg+" [build failed]\n"),
		act("fail", ""),
	)
	for _, tt := range []struct {
		name, stdin string
		want, not   []string
	}{
		{"failed_test_shows_its_output", failed,
			[]string{"    a_test.go:9: got 1, want 2", "--- FAIL: TestA (0.00s)", "FAIL\t" + pkg, "skipcheck: FAIL: tests or builds failed"},
			[]string{"quiet on success"}},
		{"build_failure_shows_the_compiler", buildFailed,
			[]string{"rbd/image.go:1:1: expected 'package'", "skipcheck: FAIL: tests or builds failed"}, nil},
		{"no_events", "", []string{"skipcheck: FAIL: no test events on stdin"}, nil},
		{"not_json", "go: downloading example.com/x v1.0.0\n", []string{"go: downloading", "skipcheck: FAIL: no test events on stdin"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout := check(t, "", tt.stdin)
			if code != 1 {
				t.Errorf("exit status %d, want 1; stdout:\n%s", code, stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(stdout, n) {
					t.Errorf("stdout has %q, which only the log should:\n%s", n, stdout)
				}
			}
		})
	}
}

// TestShowAndLog: -show prints the matching lines only, the indented
// SKIP among them if the pattern allows, and -log gets the whole text
// output as `go test -v` prints it.
func TestShowAndLog(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "test.log")
	stdin := skippedSubtest(t)
	code, stdout := check(t, "rbd TestBackendConformance/resize by design\n", stdin,
		"-log", logPath, "-show", `^(--- |ok )`)
	if code != 0 {
		t.Errorf("exit status %d, want 0; stdout:\n%s", code, stdout)
	}
	if want := "--- PASS: TestBackendConformance (3.51s)\nok  \t" + pkg + "\t3.6s\n"; !strings.HasPrefix(stdout, want) {
		t.Errorf("stdout starts\n%s\nwant\n%s", stdout, want)
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var whole strings.Builder
	for line := range strings.Lines(stdin) {
		var ev event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		whole.WriteString(ev.Output)
	}
	if string(log) != whole.String() {
		t.Errorf("log:\n%s\nwant:\n%s", log, whole.String())
	}
}

func TestBadList(t *testing.T) {
	for _, tt := range []struct{ name, list, want string }{
		{"no_reason", "rbd TestX\n", "expected-skips.txt:1: want PACKAGE TEST REASON"},
		{"twice", "# c\nrbd TestX one\n\nrbd TestX two\n", "expected-skips.txt:4: rbd TestX is listed already on line 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "expected-skips.txt")
			if err := os.WriteFile(path, []byte(tt.list), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{"-allow", path}, strings.NewReader(skippedSubtest(t)), &stdout, &stderr); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.want)
			}
		})
	}
}

// TestRealGoTest reads what this Go's `go test -json` writes for
// testdata/skips: the format skipcheck depends on, not a copy of it.
func TestRealGoTest(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	cmd := exec.Command(goTool, "test", "-json", "-count=1", "./testdata/skips")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.Output()
	if err != nil {
		t.Fatalf("go test -json ./testdata/skips: %v\n%s", err, stderr.String())
	}
	const fixture = "gotcmu/test/cmd/skipcheck/testdata/skips"
	code, stdout := check(t, "skipcheck/testdata/skips TestSkippedWhole needs hardware\n", string(stdin))
	if code != 1 {
		t.Errorf("exit status %d, want 1 (one skip is not listed); stdout:\n%s", code, stdout)
	}
	for _, w := range []string{
		fixture + " TestSkippedWhole: skips_test.go:11: needs a device this machine lacks",
		"expected: needs hardware",
		fixture + " TestWithSubtests/skipped_case: skips_test.go:17: backend does not claim it",
		"NOT EXPECTED",
		"skipcheck: 2 skipped, 1 expected, 1 not expected",
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout)
		}
	}
}
