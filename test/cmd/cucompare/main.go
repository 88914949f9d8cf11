package main

import (
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
	fs := flag.NewFlagSet("cucompare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	baseName := fs.String("base-name", "LIO fileio", "column title of the baseline")
	candName := fs.String("name", "gotcmu", "column title of the candidate")
	exclude := fs.String("exclude", "Prin*,Prout*,Reserve6*", "comma-separated suite globs to leave out")
	mdPath := fs.String("md", "", "also write the report to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cucompare [flags] BASELINE CANDIDATE   (iscsi-test-cu -x output dirs or *-Results.xml)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	base, err := loadRun(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "cucompare: baseline: %v\n", err)
		return 2
	}
	cand, err := loadRun(fs.Arg(1))
	if err != nil {
		fmt.Fprintf(stderr, "cucompare: candidate: %v\n", err)
		return 2
	}
	var globs []string
	for g := range strings.SplitSeq(*exclude, ",") {
		if g = strings.TrimSpace(g); g != "" {
			globs = append(globs, g)
		}
	}
	c := compareRuns(base, cand, globs)

	var report bytes.Buffer
	c.write(&report, *baseName, *candName)
	if cand.Truncated {
		fmt.Fprintf(&report, "\nWARNING: %s results end early (iscsi-test-cu died?); missing tests count as not passed\n", *candName)
	}
	if len(cand.Missing) > 0 {
		fmt.Fprintf(&report, "\nWARNING: no %s results for %s (iscsi-test-cu died or timed out); their tests count as not passed\n",
			*candName, strings.Join(cand.Missing, ", "))
	}
	if _, err := stdout.Write(report.Bytes()); err != nil {
		return 2
	}
	if *mdPath != "" {
		if err := os.WriteFile(*mdPath, report.Bytes(), 0o644); err != nil {
			fmt.Fprintf(stderr, "cucompare: %v\n", err)
			return 2
		}
	}
	switch {
	case base.Truncated:
		fmt.Fprintf(stderr, "cucompare: baseline results %s end early: not a baseline to compare against\n", base.Source)
		return 2
	case len(base.Missing) > 0:
		fmt.Fprintf(stderr, "cucompare: baseline %s has no results for %s: not a baseline to compare against\n",
			base.Source, strings.Join(base.Missing, ", "))
		return 2
	case c.Total.BaseTotal == 0:
		fmt.Fprintf(stderr, "cucompare: baseline %s has no tests: nothing was compared\n", base.Source)
		return 2
	case len(c.Regressions) > 0:
		fmt.Fprintf(stderr, "cucompare: %d tests pass on %s and not on %s\n", len(c.Regressions), *baseName, *candName)
		return 1
	}
	return 0
}
