package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("testsummary", flag.ContinueOnError)
	fl.SetOutput(stderr)
	summary := fl.String("summary", "", "append the summary lines to this `file` too")
	if err := fl.Parse(args); err != nil || fl.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: test2json -p NAME TEST-BINARY -test.v=test2json ... | testsummary [-summary FILE]")
		return 2
	}
	lines := stdout
	if *summary != "" {
		f, err := os.OpenFile(*summary, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "testsummary: %v\n", err)
			return 2
		}
		defer f.Close()
		lines = io.MultiWriter(stdout, f)
	}
	s := newSummariser(stdout, lines)
	if err := s.read(stdin); err != nil {
		fmt.Fprintf(stderr, "testsummary: %v\n", err)
		return 1
	}
	if s.end() {
		return 0
	}
	return 1
}

// event is one line of cmd/test2json's output.
type event struct {
	Action string
	Test   string
	Output string
}

// test is what is known of one test or subtest.
type test struct {
	name        string
	parent      *test
	children    bool
	childFailed bool
	ended       bool
	said        []string // what it logged, one message a line
	partial     string   // output not yet ended by a newline
}

type summariser struct {
	out, lines io.Writer
	tests      map[string]*test
	order      []*test
	pass, fail int
	binaryFail bool
	lastOutput string // the binary's last line of output outside tests
}

func newSummariser(out, lines io.Writer) *summariser {
	return &summariser{out: out, lines: lines, tests: map[string]*test{}}
}

func (s *summariser) read(r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			s.line(line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *summariser) get(name string) *test {
	if t, ok := s.tests[name]; ok {
		return t
	}
	t := &test{name: name}
	// The parent is the longest known test the name extends: a subtest's
	// own name may hold a '/' too, and a parent runs before its subtests.
	for i := strings.LastIndexByte(name, '/'); i > 0; i = strings.LastIndexByte(name[:i], '/') {
		if p, ok := s.tests[name[:i]]; ok {
			t.parent = p
			p.children = true
			break
		}
	}
	s.tests[name] = t
	s.order = append(s.order, t)
	return t
}

func (s *summariser) line(line string) {
	var ev event
	if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Action == "" {
		fmt.Fprint(s.out, line) // not an event: pass it on
		return
	}
	if ev.Test == "" {
		switch ev.Action {
		case "output":
			fmt.Fprint(s.out, ev.Output)
			if l := strings.TrimSpace(ev.Output); l != "" && l != "FAIL" && l != "PASS" {
				s.lastOutput = l
			}
		case "fail":
			s.binaryFail = true
		}
		return
	}
	t := s.get(ev.Test)
	switch ev.Action {
	case "output":
		fmt.Fprint(s.out, ev.Output)
		text := t.partial + ev.Output
		for {
			i := strings.IndexByte(text, '\n')
			if i < 0 {
				break
			}
			t.logged(text[:i])
			text = text[i+1:]
		}
		t.partial = text
	case "pass", "fail", "skip":
		if t.partial != "" {
			t.logged(t.partial)
			t.partial = ""
		}
		t.ended = true
		s.ended(t, ev.Action)
	}
}

// reMessage is a line a test logged: "    file_test.go:123: message".
var reMessage = regexp.MustCompile(`^\s+[\w.-]+\.go:\d+: (.*)$`)

func (t *test) logged(line string) {
	if m := reMessage.FindStringSubmatch(line); m != nil {
		t.said = append(t.said, strings.TrimSpace(m[1]))
	}
}

// ended writes the line of a test that has ended, if it is a check.
func (s *summariser) ended(t *test, action string) {
	if action == "fail" && t.parent != nil {
		t.parent.childFailed = true
	}
	switch {
	case !t.children:
	case action == "fail" && !t.childFailed:
	default:
		return
	}
	name := display(t)
	why := strings.Join(t.said, "; ")
	switch action {
	case "pass":
		s.pass++
		if why != "" {
			name += " (" + why + ")"
		}
		fmt.Fprintf(s.lines, "PASS %s\n", name)
	case "fail":
		s.fail++
		if why == "" {
			why = "failed without saying why"
		}
		fmt.Fprintf(s.lines, "FAIL %s: %s\n", name, why)
	case "skip":
		if why == "" {
			why = "skipped without saying why"
		}
		fmt.Fprintf(s.lines, "SKIP %s: %s\n", name, why)
	}
}

// end writes a FAIL for each test that never ended and for a binary that
// failed with no failing test; it reports whether the run passed.
func (s *summariser) end() bool {
	open := map[*test]bool{} // tests with a subtest that never ended
	for _, t := range s.order {
		if !t.ended && t.parent != nil {
			open[t.parent] = true
		}
	}
	for _, t := range s.order {
		if !t.ended && !open[t] {
			s.fail++
			fmt.Fprintf(s.lines, "FAIL %s: did not end (the test binary ended first: %s)\n", display(t), s.lastOutput)
		}
	}
	if s.binaryFail && s.fail == 0 {
		s.fail++
		fmt.Fprintf(s.lines, "FAIL the test binary failed with no test failing: %s\n", s.lastOutput)
	}
	if s.pass == 0 && s.fail == 0 {
		s.fail++
		fmt.Fprintln(s.lines, "FAIL no test passed")
	}
	return s.fail == 0
}

// display is a test's name as a summary line shows it: the top-level
// test left out (unless it is the test), the names of the subtests joined
// by ": ", underscores as spaces.
func display(t *test) string {
	var parts []string
	for ; t.parent != nil; t = t.parent {
		parts = append([]string{t.name[len(t.parent.name)+1:]}, parts...)
	}
	if len(parts) == 0 {
		parts = []string{t.name}
	}
	return strings.ReplaceAll(strings.Join(parts, ": "), "_", " ")
}
