package main

import (
	"cmp"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// suiteCounts is one row of the table.
type suiteCounts struct {
	Suite                 string
	BasePassed, BaseTotal int
	CandPassed, CandTotal int
}

// change is a test whose outcome differs between the runs.
type change struct {
	Key        string
	Base, Cand status
	Failures   []string // the candidate's failed assertions, for a regression
}

// comparison is the whole result.
type comparison struct {
	Rows         []suiteCounts
	Total        suiteCounts
	Regressions  []change // passes on the baseline, not on the candidate
	Improvements []change // passes on the candidate, not on the baseline
	Excluded     []string // suites left out

	// Timings, when both runs carry per-suite seconds.
	Timed                    bool
	BaseSeconds, CandSeconds float64
	Slow                     []suiteTime // candidate over twice the baseline and over slowFloor, slowest first
}

// suiteTime is the wall time of one suite in both runs.
type suiteTime struct {
	Suite      string
	Base, Cand float64
}

// slowFloor keeps suites that take a few seconds anyway out of the slow list.
const slowFloor = 10.0

// excluded reports whether suite matches one of the globs.
func excluded(globs []string, suite string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, suite); ok {
			return true
		}
	}
	return false
}

// compareRuns compares cand against base, test by test.
func compareRuns(base, cand *run, exclude []string) comparison {
	var c comparison
	rows := map[string]*suiteCounts{}
	var suites []string
	row := func(suite string) *suiteCounts {
		if excluded(exclude, suite) {
			if !slices.Contains(c.Excluded, suite) {
				c.Excluded = append(c.Excluded, suite)
			}
			return nil
		}
		s := rows[suite]
		if s == nil {
			s = &suiteCounts{Suite: suite}
			rows[suite] = s
			suites = append(suites, suite)
		}
		return s
	}
	for _, k := range base.Order {
		t := base.Tests[k]
		if s := row(t.Suite); s != nil {
			s.BaseTotal++
			if t.Status == passed {
				s.BasePassed++
			}
		}
	}
	for _, k := range cand.Order {
		t := cand.Tests[k]
		if s := row(t.Suite); s != nil {
			s.CandTotal++
			if t.Status == passed {
				s.CandPassed++
			}
		}
	}
	keys := slices.Clone(base.Order)
	for _, k := range cand.Order {
		if _, ok := base.Tests[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		b, cd := statusOf(base, k), statusOf(cand, k)
		suite := suiteOf(base, cand, k)
		if excluded(exclude, suite) {
			continue
		}
		switch {
		case b == passed && cd != passed:
			var failures []string
			if t := cand.Tests[k]; t != nil {
				failures = t.Failures
			}
			c.Regressions = append(c.Regressions, change{Key: k, Base: b, Cand: cd, Failures: failures})
		case b != passed && cd == passed:
			c.Improvements = append(c.Improvements, change{Key: k, Base: b, Cand: cd})
		}
	}
	slices.Sort(suites)
	for _, s := range suites {
		r := *rows[s]
		c.Rows = append(c.Rows, r)
		c.Total.BasePassed += r.BasePassed
		c.Total.BaseTotal += r.BaseTotal
		c.Total.CandPassed += r.CandPassed
		c.Total.CandTotal += r.CandTotal
	}
	c.Total.Suite = "total"
	if len(base.Seconds) > 0 && len(cand.Seconds) > 0 {
		c.Timed = true
		for _, s := range suites {
			b, cd := base.Seconds[s], cand.Seconds[s]
			c.BaseSeconds += b
			c.CandSeconds += cd
			if cd > slowFloor && cd > 2*b {
				c.Slow = append(c.Slow, suiteTime{Suite: s, Base: b, Cand: cd})
			}
		}
		slices.SortFunc(c.Slow, func(a, b suiteTime) int { return cmp.Compare(b.Cand, a.Cand) })
	}
	return c
}

// statusOf is a test's status in r; a test r never heard of did not run.
func statusOf(r *run, k string) status {
	if t := r.Tests[k]; t != nil {
		return t.Status
	}
	return notRun
}

func suiteOf(base, cand *run, k string) string {
	if t := base.Tests[k]; t != nil {
		return t.Suite
	}
	return cand.Tests[k].Suite
}

// write prints the comparison as markdown.
func (c comparison) write(w io.Writer, baseName, candName string) {
	name := len("suite")
	for _, r := range c.Rows {
		name = max(name, len(r.Suite))
	}
	colA, colB := max(len(baseName), 9), max(len(candName), 9)
	line := func(a, b, cc string) {
		fmt.Fprintf(w, "| %-*s | %*s | %*s |\n", name, a, colA, b, colB, cc)
	}
	frac := func(p, t int) string { return fmt.Sprintf("%d/%d", p, t) }
	line("suite", baseName, candName)
	fmt.Fprintf(w, "|%s|%s:|%s:|\n", strings.Repeat("-", name+2), strings.Repeat("-", colA+1), strings.Repeat("-", colB+1))
	for _, r := range c.Rows {
		line(r.Suite, frac(r.BasePassed, r.BaseTotal), frac(r.CandPassed, r.CandTotal))
	}
	line("**total**", frac(c.Total.BasePassed, c.Total.BaseTotal), frac(c.Total.CandPassed, c.Total.CandTotal))
	if len(c.Excluded) > 0 {
		fmt.Fprintf(w, "\nLeft out (answered by LIO core, not the backstore): %s\n", strings.Join(c.Excluded, ", "))
	}
	if len(c.Regressions) > 0 {
		fmt.Fprintf(w, "\n%d tests pass on %s and not on %s:\n", len(c.Regressions), baseName, candName)
		for _, r := range c.Regressions {
			fmt.Fprintf(w, "- REGRESSION %s: %s\n", r.Key, r.Cand)
			for _, f := range r.Failures {
				fmt.Fprintf(w, "  - %s\n", f)
			}
		}
	}
	if len(c.Improvements) > 0 {
		fmt.Fprintf(w, "\n%d tests pass on %s and not on %s:\n", len(c.Improvements), candName, baseName)
		for _, r := range c.Improvements {
			fmt.Fprintf(w, "- %s (%s: %s)\n", r.Key, baseName, r.Base)
		}
	}
	if c.Timed {
		fmt.Fprintf(w, "\nWall time of the compared suites: %s %.0f s, %s %.0f s.\n", baseName, c.BaseSeconds, candName, c.CandSeconds)
		if len(c.Slow) > 0 {
			fmt.Fprintf(w, "Suites where %s took over twice as long (and over %.0f s):\n", candName, slowFloor)
			for _, s := range c.Slow {
				fmt.Fprintf(w, "- %s: %.0f s (%s %.0f s)\n", s.Suite, s.Cand, baseName, s.Base)
			}
		}
	}
}
