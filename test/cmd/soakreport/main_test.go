package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// series writes a samples file of n samples every dt s: goroutines, fds,
// threads and anon_mib given by fns of the time, with a deterministic
// wobble on the memory columns like a GC's.
func series(t *testing.T, n int, dt float64, anon func(float64) float64) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# a comment\nt_s goroutines open_fds threads anon_mib go_heap_mib rss_mib\n")
	for i := 1; i <= n; i++ {
		ts := float64(i) * dt
		wobble := float64(i%3) - 1 // -1, 0, 1
		fmt.Fprintf(&b, "%g %d %d %d %.1f %.1f %.1f\n", ts, 40+i%5, 31, 12, anon(ts)+wobble, 9+2*wobble, 300+ts/60)
	}
	p := filepath.Join(t.TempDir(), "samples.tsv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runIt(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	rc := run(args, &out, &errb)
	return rc, out.String(), errb.String()
}

func TestFlatPasses(t *testing.T) {
	p := series(t, 60, 60, func(float64) float64 { return 120 })
	md := filepath.Join(t.TempDir(), "trend.md")
	rc, out, errs := runIt("-run", "3600", "-md", md, p)
	if rc != 0 {
		t.Fatalf("flat series: exit %d\n%s%s", rc, out, errs)
	}
	// rss_mib grows 60 MiB/h but has no bound: printed, no verdict.
	if !strings.Contains(out, "rss_mib") || !strings.Contains(out, "+60.00") {
		t.Errorf("rss_mib's slope missing from the table:\n%s", out)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "| anon_mib | 31 |") || strings.Contains(string(b), "FAIL") {
		t.Errorf("markdown table:\n%s", b)
	}
}

func TestLeakFails(t *testing.T) {
	// 12 MiB/h of anonymous memory against the default bound of 8.
	p := series(t, 60, 60, func(ts float64) float64 { return 120 + 12*ts/3600 })
	rc, out, _ := runIt("-run", "3600", p)
	if rc != 1 {
		t.Fatalf("leaking series: exit %d, want 1\n%s", rc, out)
	}
	if !strings.Contains(out, "anon_mib grows +12.") {
		t.Errorf("the leak is not named:\n%s", out)
	}
	// The same run with a looser bound passes.
	if rc, out, _ := runIt("-run", "3600", "-anon-mib", "13", p); rc != 0 {
		t.Errorf("with -anon-mib 13: exit %d\n%s", rc, out)
	}
}

func TestFirstHalfIgnored(t *testing.T) {
	// Growth that stops at the half (warm-up: caches, data-area pages) is
	// not a leak.
	p := series(t, 60, 60, func(ts float64) float64 { return 100 + 40*math.Min(ts, 1800)/1800 })
	if rc, out, _ := runIt("-run", "3600", p); rc != 0 {
		t.Fatalf("growth in the first half only: exit %d\n%s", rc, out)
	}
}

func TestTooFewSamples(t *testing.T) {
	p := series(t, 12, 60, func(float64) float64 { return 120 }) // 6 in the last half
	rc, _, errs := runIt(p)
	if rc != 2 || !strings.Contains(errs, "samples in the last half") {
		t.Fatalf("too few samples: exit %d, want 2; stderr %q", rc, errs)
	}
	if rc, out, errs := runIt("-min-samples", "5", p); rc != 0 {
		t.Errorf("with -min-samples 5: exit %d\n%s%s", rc, out, errs)
	}
}

func TestUnreadableValuesLeftOut(t *testing.T) {
	s, err := parse(strings.NewReader("t_s goroutines\n10 5\n20 ?\n30 7\n"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := trend(s, 0, 30, defaultBounds, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].N != 2 || math.Abs(rows[0].PerHour-0.1*3600) > 1e-9 {
		t.Errorf("goroutines: %+v, want 2 samples and 360/h", rows[0])
	}
}

func TestBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"no header":      "10 5 6\n",
		"empty":          "# nothing\n",
		"short line":     "t_s goroutines threads\n10 5\n",
		"time backwards": "t_s goroutines\n10 5\n10 6\n",
		"not a number":   "t_s goroutines\n10 five\n",
	} {
		if _, err := parse(strings.NewReader(in)); err == nil {
			t.Errorf("%s: parsed without an error", name)
		}
	}
	if rc, _, _ := runIt(); rc != 2 {
		t.Errorf("no file: exit %d, want 2", rc)
	}
}

func TestFit(t *testing.T) {
	slope, at0 := fit([]float64{0, 1, 2, 3}, []float64{1, 3, 5, 7}, 10)
	if slope != 2 || at0 != 21 {
		t.Errorf("fit: slope %g, value at 10 %g; want 2, 21", slope, at0)
	}
}
