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
	"sort"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("skipcheck", flag.ContinueOnError)
	fl.SetOutput(stderr)
	allow := fl.String("allow", "", "the `file` of expected skips (required)")
	logPath := fl.String("log", "", "write the whole test output to this `file`")
	show := fl.String("show", "", "print only the output lines that match this `regexp`")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *allow == "" || fl.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: go test -json ... | skipcheck -allow FILE [-log FILE] [-show REGEXP]")
		return 2
	}
	list, err := readList(*allow)
	if err != nil {
		fmt.Fprintf(stderr, "skipcheck: %v\n", err)
		return 2
	}
	c := &checker{out: stdout, partial: map[testKey]string{}, last: map[testKey]string{},
		held: map[testKey][]string{}, ran: map[string]bool{}}
	if *show != "" {
		if c.show, err = regexp.Compile(*show); err != nil {
			fmt.Fprintf(stderr, "skipcheck: -show: %v\n", err)
			return 2
		}
	}
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			fmt.Fprintf(stderr, "skipcheck: %v\n", err)
			return 2
		}
		defer f.Close()
		w := bufio.NewWriter(f)
		defer w.Flush()
		c.log = w
	}
	if err := c.read(stdin); err != nil {
		fmt.Fprintf(stderr, "skipcheck: read test events: %v\n", err)
		return 1
	}
	if !c.report(list) {
		return 1
	}
	return 0
}

// expected is one line of the list of expected skips.
type expected struct {
	pkg, test, reason string
	line              int
}

// matches reports whether the entry names test of package pkg (an import
// path).
func (e expected) matches(pkg, test string) bool {
	return e.test == test && (e.pkg == pkg || strings.HasSuffix(pkg, "/"+e.pkg))
}

func readList(path string) ([]expected, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseList(f, path)
}

// parseList reads PACKAGE TEST REASON lines (see the package doc).
func parseList(r io.Reader, name string) ([]expected, error) {
	var list []expected
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want PACKAGE TEST REASON, a reason included", name, n)
		}
		e := expected{pkg: f[0], test: f[1], reason: strings.Join(f[2:], " "), line: n}
		for _, o := range list {
			if o.pkg == e.pkg && o.test == e.test {
				return nil, fmt.Errorf("%s:%d: %s %s is listed already on line %d", name, n, e.pkg, e.test, o.line)
			}
		}
		list = append(list, e)
	}
	return list, sc.Err()
}

// event is one line of `go test -json` (cmd/test2json), with the build
// events of Go 1.24 and later (ImportPath, "build-output", "build-fail").
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string
}

type testKey struct{ pkg, test string }

type skip struct {
	pkg, test string
	why       string // the last line the test logged
}

type checker struct {
	out  io.Writer
	log  io.Writer // nil: no log
	show *regexp.Regexp

	partial map[testKey]string   // output not yet ended by a newline
	last    map[testKey]string   // the last line a test logged, framing left out
	held    map[testKey][]string // without -show: output of running top-level tests
	ran     map[string]bool      // packages whose tests started
	skips   []skip
	events  int
	failed  bool
}

func (c *checker) read(r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			c.line(line)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	for k, s := range c.partial {
		c.outputLine(k, s)
	}
	return nil
}

// line handles one line of stdin: an event, or anything else go printed,
// which is passed on.
func (c *checker) line(line string) {
	var ev event
	if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Action == "" {
		c.write(line)
		fmt.Fprint(c.out, line)
		return
	}
	c.events++
	k := testKey{ev.Package, ev.Test}
	switch ev.Action {
	case "build-output":
		c.write(ev.Output)
		fmt.Fprint(c.out, ev.Output)
	case "build-fail":
		c.failed = true
	case "start":
		c.ran[ev.Package] = true
	case "output":
		c.write(ev.Output)
		s := c.partial[k] + ev.Output
		for {
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				break
			}
			c.outputLine(k, s[:i])
			s = s[i+1:]
		}
		if s == "" {
			delete(c.partial, k)
		} else {
			c.partial[k] = s
		}
	case "skip", "pass", "fail":
		if s, ok := c.partial[k]; ok {
			c.outputLine(k, s)
			delete(c.partial, k)
		}
		if ev.Action == "fail" {
			c.failed = true
		}
		if ev.Test == "" {
			// A package's result; "skip" is a package without tests.
			return
		}
		if ev.Action == "skip" {
			c.skips = append(c.skips, skip{pkg: ev.Package, test: ev.Test, why: c.last[k]})
		}
		delete(c.last, k)
		if !strings.Contains(ev.Test, "/") {
			if ev.Action == "fail" && c.show == nil {
				for _, l := range c.held[k] {
					fmt.Fprintln(c.out, l)
				}
			}
			delete(c.held, k)
		}
	}
}

func (c *checker) write(s string) {
	if c.log != nil {
		io.WriteString(c.log, s)
	}
}

// framing are the lines the testing package writes around a test's own.
var framing = []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- FAIL", "--- SKIP", "--- BENCH"}

// outputLine handles one complete line of a test's (or a package's) output.
func (c *checker) outputLine(k testKey, line string) {
	trimmed := strings.TrimSpace(line)
	own := trimmed != ""
	for _, f := range framing {
		if strings.HasPrefix(trimmed, f) {
			own = false
		}
	}
	if own && k.test != "" {
		c.last[k] = trimmed
	}
	switch {
	case c.show != nil:
		if c.show.MatchString(line) {
			fmt.Fprintln(c.out, line)
		}
	case k.test == "":
		if trimmed != "PASS" {
			fmt.Fprintln(c.out, line)
		}
	default:
		top := testKey{k.pkg, strings.SplitN(k.test, "/", 2)[0]}
		c.held[top] = append(c.held[top], line)
	}
}

// report prints every skip against list and reports whether the run
// passes: no failure, no skip the list does not name, and some tests.
func (c *checker) report(list []expected) bool {
	sort.Slice(c.skips, func(i, j int) bool {
		a, b := c.skips[i], c.skips[j]
		return a.pkg < b.pkg || a.pkg == b.pkg && a.test < b.test
	})
	used := make([]bool, len(list))
	unexpected := 0
	for _, s := range c.skips {
		fmt.Fprintf(c.out, "skipcheck: SKIP %s %s: %s\n", s.pkg, s.test, s.why)
		i := find(list, s.pkg, s.test)
		if i < 0 {
			unexpected++
			fmt.Fprintf(c.out, "skipcheck:      NOT EXPECTED: fix the test, or list it with its reason\n")
			continue
		}
		used[i] = true
		fmt.Fprintf(c.out, "skipcheck:      expected: %s\n", list[i].reason)
	}
	for i, e := range list {
		if used[i] {
			continue
		}
		for pkg := range c.ran {
			if e.matches(pkg, e.test) {
				fmt.Fprintf(c.out, "skipcheck: note: %s %s is listed as expected but was not skipped\n", e.pkg, e.test)
				break
			}
		}
	}
	fmt.Fprintf(c.out, "skipcheck: %d skipped, %d expected, %d not expected\n", len(c.skips), len(c.skips)-unexpected, unexpected)
	ok := true
	if c.events == 0 {
		fmt.Fprintln(c.out, "skipcheck: FAIL: no test events on stdin (was it go test -json?)")
		ok = false
	}
	if c.failed {
		fmt.Fprintln(c.out, "skipcheck: FAIL: tests or builds failed")
		ok = false
	}
	if unexpected > 0 {
		fmt.Fprintf(c.out, "skipcheck: FAIL: %d skips not expected\n", unexpected)
		ok = false
	}
	return ok
}

func find(list []expected, pkg, test string) int {
	for i, e := range list {
		if e.matches(pkg, test) {
			return i
		}
	}
	return -1
}
