package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Default bounds per hour, for a run whose load is four LUNs at queue depth
// 128. A leak that matters is one per command or per event: at the few
// hundred to thousands of commands per second a TCG guest completes, one
// leaked byte per command is already several MiB an hour, and a leaked
// goroutine, fd or thread per event (a reconnect, a timer, an OSD map
// change) climbs by tens an hour. The bounds sit above what sampling noise
// puts into the slope of a flat series over half an hour (the Go heap moves
// by a few MiB between GC cycles; the goroutine count by the commands in
// flight at the instant of the sample) and below those leaks.
var defaultBounds = map[string]float64{
	"anon_mib":    8,
	"go_heap_mib": 8,
	"goroutines":  30,
	"open_fds":    4,
	"threads":     4,
}

// flagOf names each bounded column's flag.
var flagOf = map[string]string{
	"anon_mib":    "anon-mib",
	"go_heap_mib": "heap-mib",
	"goroutines":  "goroutines",
	"open_fds":    "fds",
	"threads":     "threads",
}

// Samples is a parsed samples file: column names (Cols[0] is t_s) and, for
// each sample, its time and values (NaN where the file has "?").
type Samples struct {
	Cols []string
	T    []float64
	V    [][]float64 // V[i][j]: sample i, column j+1
}

// parse reads a samples file.
func parse(r io.Reader) (*Samples, error) {
	s := &Samples{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if s.Cols == nil {
			if f[0] != "t_s" || len(f) < 2 {
				return nil, fmt.Errorf("line %d: want a header line \"t_s COLUMN...\", got %q", line, sc.Text())
			}
			s.Cols = f
			continue
		}
		if len(f) != len(s.Cols) {
			return nil, fmt.Errorf("line %d: %d fields, the header has %d", line, len(f), len(s.Cols))
		}
		t, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: time: %w", line, err)
		}
		if n := len(s.T); n > 0 && t <= s.T[n-1] {
			return nil, fmt.Errorf("line %d: time %g not after the previous sample's %g", line, t, s.T[n-1])
		}
		vals := make([]float64, len(f)-1)
		for j, x := range f[1:] {
			if x == "?" {
				vals[j] = math.NaN()
				continue
			}
			if vals[j], err = strconv.ParseFloat(x, 64); err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", line, s.Cols[j+1], err)
			}
		}
		s.T = append(s.T, t)
		s.V = append(s.V, vals)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if s.Cols == nil {
		return nil, errors.New("no header line")
	}
	return s, nil
}

// fit returns the least-squares line through (t, y): its slope per second
// and its value at t0.
func fit(t, y []float64, t0 float64) (slope, at0 float64) {
	var tm, ym float64
	for i := range t {
		tm += t[i]
		ym += y[i]
	}
	n := float64(len(t))
	tm /= n
	ym /= n
	var num, den float64
	for i := range t {
		num += (t[i] - tm) * (y[i] - ym)
		den += (t[i] - tm) * (t[i] - tm)
	}
	if den == 0 {
		return 0, ym
	}
	slope = num / den
	return slope, ym + slope*(t0-tm)
}

// Row is one series' trend over the last half.
type Row struct {
	Col        string
	N          int     // samples fitted
	From, To   float64 // the fitted line at the start and the end of the last half
	PerHour    float64 // the slope, per hour
	Bound      float64 // per hour; NaN: no bound
	Over       bool
	Unbounded  bool
	Start, End float64 // the last half's span, s
}

// trend fits every column over the samples with t >= half and judges the
// bounded ones. It fails when a column has fewer than minSamples values there.
func trend(s *Samples, half, end float64, bounds map[string]float64, minSamples int) ([]Row, error) {
	var rows []Row
	for j, col := range s.Cols[1:] {
		var t, y []float64
		for i := range s.T {
			if s.T[i] >= half && !math.IsNaN(s.V[i][j]) {
				t = append(t, s.T[i])
				y = append(y, s.V[i][j])
			}
		}
		if len(t) < minSamples {
			return nil, fmt.Errorf("%s: %d samples in the last half (from %g s), want at least %d", col, len(t), half, minSamples)
		}
		slope, from := fit(t, y, half)
		r := Row{Col: col, N: len(t), From: from, To: from + slope*(end-half), PerHour: slope * 3600,
			Start: half, End: end}
		if b, ok := bounds[col]; ok {
			r.Bound = b
			r.Over = r.PerHour > b
		} else {
			r.Bound = math.NaN()
			r.Unbounded = true
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func (r Row) verdict() string {
	switch {
	case r.Unbounded:
		return "-"
	case r.Over:
		return "FAIL"
	}
	return "ok"
}

func (r Row) bound() string {
	if r.Unbounded {
		return "-"
	}
	return fmt.Sprintf("%g", r.Bound)
}

func writeText(w io.Writer, rows []Row) {
	fmt.Fprintf(w, "%-14s %4s %10s %10s %10s %8s  %s\n", "series", "n", "fit-start", "fit-end", "slope/h", "bound/h", "verdict")
	for _, r := range rows {
		fmt.Fprintf(w, "%-14s %4d %10.1f %10.1f %+10.2f %8s  %s\n", r.Col, r.N, r.From, r.To, r.PerHour, r.bound(), r.verdict())
	}
}

func writeMarkdown(w io.Writer, rows []Row) {
	fmt.Fprintf(w, "Least-squares fit over the last half of the run (%g s to %g s):\n\n", rows[0].Start, rows[0].End)
	fmt.Fprintln(w, "| series | samples | fitted at start | fitted at end | slope per hour | bound per hour | verdict |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %+.2f | %s | %s |\n", r.Col, r.N, r.From, r.To, r.PerHour, r.bound(), r.verdict())
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soakreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runSecs := fs.Float64("run", 0, "length of the load, s (0: the last sample's time)")
	minSamples := fs.Int("min-samples", 10, "fewest samples per series in the last half")
	md := fs.String("md", "", "also write the table as Markdown to this file")
	bounds := map[string]float64{}
	bp := map[string]*float64{}
	for col, b := range defaultBounds {
		bp[col] = fs.Float64(flagOf[col], b, "bound on the slope of "+col+" per hour")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: soakreport [flags] SAMPLES")
		return 2
	}
	for col, p := range bp {
		bounds[col] = *p
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "soakreport:", err)
		return 2
	}
	s, err := parse(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "soakreport: %s: %v\n", fs.Arg(0), err)
		return 2
	}
	if len(s.T) == 0 {
		fmt.Fprintf(stderr, "soakreport: %s: no samples\n", fs.Arg(0))
		return 2
	}
	end := *runSecs
	if end <= 0 {
		end = s.T[len(s.T)-1]
	}
	rows, err := trend(s, end/2, end, bounds, *minSamples)
	if err != nil {
		fmt.Fprintln(stderr, "soakreport:", err)
		return 2
	}
	writeText(stdout, rows)
	if *md != "" {
		var b strings.Builder
		writeMarkdown(&b, rows)
		if err := os.WriteFile(*md, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintln(stderr, "soakreport:", err)
			return 2
		}
	}
	over := 0
	for _, r := range rows {
		if r.Over {
			over++
			fmt.Fprintf(stdout, "soakreport: %s grows %+.2f per hour over the last half, bound %g\n", r.Col, r.PerHour, r.Bound)
		}
	}
	if over > 0 {
		return 1
	}
	return 0
}
