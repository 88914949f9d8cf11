// Command gwcompare puts two runs of make test-gateway side by side: the tables
// test/gateway/test-gateway.sh writes (gateway-gotcmu.md, gateway-tcmu-runner.md), one row
// per check, with each handler's result, and the checks where they differ listed first.
//
// A check is matched across the tables by its text with what differs between two runs taken
// out: every parenthesised detail (counts, versions, durations, the first failure) and the
// handlers' names, which the harness puts in the checks it runs on the handler ("gw-a:
// gotcmu started by systemd" against "gw-a: tcmu-runner started by systemd").
//
// Usage: gwcompare [-md FILE] A.md B.md   Exit status: 0 when B passes every check A
// passes, 1 when it fails one, 2 on bad input.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(cmd(os.Args[1:], os.Stdout, os.Stderr))
}

func cmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gwcompare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mdPath := fs.String("md", "", "also write the report to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gwcompare [-md FILE] BASELINE.md CANDIDATE.md   (test/gateway/test-gateway.sh tables)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	var runs [2]*table
	for i := range runs {
		f, err := os.Open(fs.Arg(i))
		if err != nil {
			fmt.Fprintf(stderr, "gwcompare: %v\n", err)
			return 2
		}
		runs[i], err = parseTable(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "gwcompare: %s: %v\n", fs.Arg(i), err)
			return 2
		}
	}
	var out bytes.Buffer
	worse := write(&out, runs[0], runs[1])
	stdout.Write(out.Bytes())
	if *mdPath != "" {
		if err := os.WriteFile(*mdPath, out.Bytes(), 0o644); err != nil {
			fmt.Fprintf(stderr, "gwcompare: %v\n", err)
			return 2
		}
	}
	if worse > 0 {
		return 1
	}
	return 0
}

// handlers are the names the harness puts in its checks.
var handlers = []string{"gotcmu", "tcmu-runner"}

// table is one run's table.
type table struct {
	Handler string // from the title: "## ceph-iscsi on two gateways: HANDLER (...)"
	Title   string // the title's parenthesis: date, seconds, script
	Harness string // the line after the title
	Rows    []row
}

// row is one check of one guest.
type row struct {
	Guest, Check, Result string
}

// key is what matches a check across runs.
func (r row) key() string { return r.Guest + "|" + normalize(r.Check) }

// parseTable reads a test-gateway table: its title, the line after it and its
// "| guest | check | result |" rows.
func parseTable(r io.Reader) (*table, error) {
	t := &table{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	afterTitle := false
	for sc.Scan() {
		line := sc.Text()
		if h, ok := strings.CutPrefix(line, "## ceph-iscsi on two gateways: "); ok && t.Handler == "" {
			name, rest, _ := strings.Cut(h, " ")
			t.Handler, t.Title = name, strings.Trim(rest, "()")
			afterTitle = true
			continue
		}
		if afterTitle && strings.TrimSpace(line) != "" {
			t.Harness, afterTitle = line, false
			continue
		}
		cells, ok := tableCells(line)
		if !ok || len(cells) != 3 || cells[0] == "guest" || strings.HasPrefix(cells[0], "---") {
			continue
		}
		switch cells[2] {
		case "PASS", "FAIL", "SKIP":
		default:
			return nil, fmt.Errorf("check %q: result %q is not PASS, FAIL or SKIP", cells[1], cells[2])
		}
		t.Rows = append(t.Rows, row{Guest: cells[0], Check: cells[1], Result: cells[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if t.Handler == "" {
		return nil, fmt.Errorf("no title \"## ceph-iscsi on two gateways: HANDLER (...)\"")
	}
	if len(t.Rows) == 0 {
		return nil, fmt.Errorf("no checks")
	}
	return t, nil
}

// tableCells splits a markdown table row "| a | b | c |" into its trimmed cells. A check's
// text holds no "|" (the harness writes none).
func tableCells(line string) ([]string, bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil, false
	}
	parts := strings.Split(line[1:len(line)-1], "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, true
}

// normalize takes out of a check's text what differs between runs and handlers: the
// command a failed check appends (": 'CMD' failed"), every parenthesised part, numbers that
// stand as words of their own ("stalled 7 s") and the handlers' names (a word of its own,
// or NAME.service).
func normalize(check string) string {
	if i := strings.LastIndex(check, ": '"); i >= 0 && strings.HasSuffix(check, "' failed") {
		check = check[:i]
	}
	var b strings.Builder
	depth := 0
	for _, c := range check {
		switch {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(c)
		}
	}
	words := strings.Fields(b.String())
	for i, w := range words {
		core := strings.TrimRight(w, ",;:")
		if strings.Trim(core, "0123456789.") == "" {
			words[i] = "N" + w[len(core):]
			continue
		}
		for _, h := range handlers {
			switch core {
			case h, h + "'s":
				words[i] = "HANDLER" + w[len(core)-len(strings.TrimPrefix(core, h)):]
			case h + ".service":
				words[i] = "HANDLER.service" + w[len(core):]
			}
		}
	}
	return strings.Join(words, " ")
}

// write prints the side-by-side report and returns how many checks a passes
// and b does not.
func write(w io.Writer, a, b *table) (worse int) {
	var pairs []*pair
	byKey := map[string]*pair{}
	for _, r := range a.Rows {
		k := r.key()
		if p, ok := byKey[k]; ok { // a check the run made twice: its last result
			p.ra = r.Result
			continue
		}
		p := &pair{guest: r.Guest, check: r.Check, ra: r.Result, rb: "—"}
		byKey[k] = p
		pairs = append(pairs, p)
	}
	for _, r := range b.Rows {
		if p, ok := byKey[r.key()]; ok {
			p.rb = r.Result
			continue
		}
		p := &pair{guest: r.Guest, check: r.Check, ra: "—", rb: r.Result}
		byKey[r.key()] = p
		pairs = append(pairs, p)
	}
	var better []*pair
	var worseList []*pair
	for _, p := range pairs {
		switch {
		case p.ra == "PASS" && p.rb != "PASS" && p.rb != "—":
			worseList = append(worseList, p)
		case p.rb == "PASS" && p.ra != "PASS" && p.ra != "—":
			better = append(better, p)
		}
	}
	fmt.Fprintf(w, "## ceph-iscsi on two gateways: %s beside %s\n\n", b.Handler, a.Handler)
	fmt.Fprintf(w, "Written by test/cmd/gwcompare from the two runs' tables (make test-gateway HANDLER=...). A check is matched\n")
	fmt.Fprintf(w, "by its text without its parenthesised details and the handler's name; the text shown is the first\n")
	fmt.Fprintf(w, "table's (the second's where the first has no such check, marked — in the other column).\n\n")
	fmt.Fprintf(w, "| | %s | %s |\n|---|---|---|\n", a.Handler, b.Handler)
	fmt.Fprintf(w, "| run | %s | %s |\n", a.Title, b.Title)
	fmt.Fprintf(w, "| build | %s | %s |\n", a.Harness, b.Harness)
	fmt.Fprintf(w, "| passed / failed | %s | %s |\n\n", counts(a), counts(b))
	fmt.Fprintf(w, "Checks %s passes and %s fails: %d", a.Handler, b.Handler, len(worseList))
	listChecks(w, worseList)
	fmt.Fprintf(w, "Checks %s passes and %s fails: %d", b.Handler, a.Handler, len(better))
	listChecks(w, better)
	fmt.Fprintf(w, "| guest | check | %s | %s |\n|---|---|---|---|\n", a.Handler, b.Handler)
	for _, p := range pairs {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", p.guest, p.check, p.ra, p.rb)
	}
	return len(worseList)
}

// pair is one check in both runs; "—" for a run without it.
type pair struct {
	guest, check string
	ra, rb       string
}

// listChecks ends the line before it with ps as a list, or with a full stop.
func listChecks(w io.Writer, ps []*pair) {
	if len(ps) == 0 {
		fmt.Fprintf(w, ".\n\n")
		return
	}
	fmt.Fprintf(w, ":\n\n")
	for _, p := range ps {
		fmt.Fprintf(w, "- %s: %s\n", p.guest, p.check)
	}
	fmt.Fprintln(w)
}

// counts is "passed / failed" of a table's rows.
func counts(t *table) string {
	var pass, fail int
	for _, r := range t.Rows {
		switch r.Result {
		case "PASS":
			pass++
		case "FAIL":
			fail++
		}
	}
	return fmt.Sprintf("%d / %d", pass, fail)
}
