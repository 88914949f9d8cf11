package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func main() {
	os.Exit(cmd(os.Args[1:], os.Stdout, os.Stderr))
}

func cmd(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	fl.SetOutput(stderr)
	mdPath := fl.String("md", "", "also write the markdown to this `file`")
	datPath := fl.String("dat", "", "write the ratios as a gnuplot data `file`")
	cpuDatPath := fl.String("cpudat", "", "write the CPU time per IO as a gnuplot data `file`")
	gpPath := fl.String("gp", "", "write a gnuplot script drawing -dat into -png (and -cpudat into -cpupng) to this `file`")
	pngPath := fl.String("png", "bench.png", "the ratio chart the -gp script draws")
	cpuPngPath := fl.String("cpupng", "bench-cpu.png", "the CPU-per-IO chart the -gp script draws (with -cpudat)")
	hostPath := fl.String("host", "", "append this markdown `file` (host-rbd.sh's table)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: benchreport [flags] DIR   (guest-bench.sh's /out/bench)")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 1 {
		fl.Usage()
		return 2
	}
	r, err := load(fl.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "benchreport: %v\n", err)
		return 1
	}
	var md bytes.Buffer
	r.markdown(&md)
	if *hostPath != "" {
		host, err := os.ReadFile(*hostPath)
		if err != nil {
			fmt.Fprintf(stderr, "benchreport: %v\n", err)
			return 1
		}
		fmt.Fprintf(&md, "\n### On the host: gotcmu's rbd path through uio/uiotest against fio's librbd engine\n\n")
		fmt.Fprintf(&md, "Native micro Ceph on this machine (test/bench/host-rbd.sh), same image, same run.\n\n")
		md.Write(host)
	}
	stdout.Write(md.Bytes())
	cpuPng := ""
	if *cpuDatPath != "" {
		cpuPng = *cpuPngPath
	}
	writes := []struct {
		path string
		data func() []byte
	}{
		{*mdPath, md.Bytes},
		{*datPath, r.ratioData},
		{*cpuDatPath, r.cpuData},
		{*gpPath, func() []byte { return gnuplotScript(*datPath, *pngPath, *cpuDatPath, cpuPng) }},
	}
	for _, w := range writes {
		if w.path == "" {
			continue
		}
		if err := os.WriteFile(w.path, w.data(), 0o644); err != nil {
			fmt.Fprintf(stderr, "benchreport: %v\n", err)
			return 1
		}
	}
	return 0
}

// row is one fio job of the table.
type row struct {
	name  string // file name of its result: <name>.json
	title string
	large bool // 1 MiB rows compare MB/s, 4 KiB rows IOPS
	qd1   bool // show the mean latency in the throughput tables
	write bool // fio-rbd's fixed cost is that of its one-IO write run
}

var rows = []row{
	{"randread-4k-qd1", "4k randread QD1", false, true, false},
	{"randread-4k-qd32", "4k randread QD32", false, false, false},
	{"randwrite-4k-qd1", "4k randwrite QD1", false, true, true},
	{"randwrite-4k-qd32", "4k randwrite QD32", false, false, true},
	{"read-1m-qd8", "1M read QD8", true, false, false},
	{"write-1m-qd8", "1M write QD8", true, false, true},
}

// result is what one fio run measured.
type result struct {
	iops  float64
	mbps  float64
	latUs float64 // mean total latency
	p99Us float64 // 99th percentile of the total latency (completion latency when fio has no lat percentiles)
	ios   int64   // IOs fio counted: after the ramp
}

// cost is what one fio run cost the process serving it, over the window of
// the run.
type cost struct {
	none   bool    // LIO's own backstore: no process, cost zero
	cpuUs  float64 // CPU time, µs (fio-rbd: net of the one-IO run)
	ctx    float64 // context switches, voluntary and involuntary (fio-rbd: net)
	ios    int64   // the IOs they are divided by
	gone   int     // threads that exited in the window: their switches are missing
	sysmon float64 // of ctx, the Go runtime's sysmon thread's (gotcmu only; see sysmonSwitches)
	devIOs int64   // requests the tcm_loop disk completed in the window; -1 unknown
	t0, t1 float64 // the window, Unix seconds; 0 unknown
}

func (c cost) cpuPerIO() float64 { return c.cpuUs / float64(c.ios) }
func (c cost) ctxPerIO() float64 { return c.ctx / float64(c.ios) }

// sample is one round of one row on one LUN.
type sample struct {
	round int
	res   result
	cost  *cost // nil: not measured
}

// report is one boot's results: by LUN, then by row name, one sample a round.
type report struct {
	res map[string]map[string][]sample
	// costErrs are the reasons a cost could not be computed, by LUN/round/row.
	costErrs []string
	// fioSetup is fio-rbd's one-IO runs, CPU time and switches, for the
	// notes, by file.
	fioSetup map[string]string
	// maxDevSkew is the largest relative gap between fio's IO count and the
	// disk's in one window, and where.
	maxDevSkew   float64
	maxDevSkewAt string
	devWindows   int // windows where both counts were there
	// hostLoad is bench.sh's record of the CPU this machine spent outside
	// the guest, every 5 s.
	hostLoad []loadSample
	// knobs, kernel, cpus, zbc, clock, ramp and rounds describe the boot.
	knobs, kernel, cpus, zbc, clock, ramp, rounds, secs string
}

var roundDir = regexp.MustCompile(`^r([0-9]+)$`)

func load(dir string) (*report, error) {
	r := &report{res: map[string]map[string][]sample{}, fioSetup: map[string]string{}}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"knobs", &r.knobs}, {"guest-kernel", &r.kernel}, {"nproc", &r.cpus}, {"zbc-random-writes", &r.zbc},
		{"clocksource", &r.clock}, {"ramp", &r.ramp}, {"rounds", &r.rounds}, {"secs", &r.secs}} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		*f.dst = strings.TrimSpace(string(b))
	}
	var err error
	if r.hostLoad, err = readHostLoad(filepath.Join(dir, "host-load")); err != nil {
		return nil, err
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".json" {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		round := 1
		switch {
		case len(parts) == 2:
		case len(parts) == 3 && roundDir.MatchString(parts[1]):
			round, _ = strconv.Atoi(parts[1][1:])
		default:
			return nil
		}
		lun, name := parts[0], strings.TrimSuffix(parts[len(parts)-1], ".json")
		res, err := readFio(path)
		if err != nil {
			return err
		}
		s := sample{round: round, res: res}
		c, err := r.loadCost(filepath.Dir(path), name, res)
		if err != nil {
			r.costErrs = append(r.costErrs, fmt.Sprintf("%s round %d %s: %v", lun, round, name, err))
		}
		s.cost = c
		if r.res[lun] == nil {
			r.res[lun] = map[string][]sample{}
		}
		r.res[lun][name] = append(r.res[lun][name], s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(r.res) == 0 {
		return nil, fmt.Errorf("no fio results under %s", dir)
	}
	for _, byRow := range r.res {
		for _, ss := range byRow {
			sort.Slice(ss, func(i, j int) bool { return ss[i].round < ss[j].round })
		}
	}
	return r, nil
}

// rampZero: fio's IO counts cover the whole run, the window of the cost.
func (r *report) rampZero() bool {
	return r.ramp == "0" || r.ramp == "0s"
}

// loadCost finds the cost files of row name in dir: procstat's name.pre
// and name.post, or rusage's name.rusage. Nil, nil when there are none.
func (r *report) loadCost(dir, name string, res result) (*cost, error) {
	base := filepath.Join(dir, name)
	if _, err := os.Stat(base + ".rusage"); err == nil {
		return r.rusageCost(dir, name, res)
	}
	pre, err1 := readSnapshot(base + ".pre")
	post, err2 := readSnapshot(base + ".post")
	if errors.Is(err1, fs.ErrNotExist) && errors.Is(err2, fs.ErrNotExist) {
		return nil, nil
	}
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	c, err := snapshotCost(pre, post)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "gotcmu") {
		c.sysmon = sysmonSwitches(pre, post)
	}
	switch {
	case r.rampZero() && res.ios > 0:
		if c.devIOs >= 0 {
			r.devWindows++
			if skew := float64(c.devIOs-res.ios) / float64(res.ios); abs(skew) > abs(r.maxDevSkew) {
				where := filepath.Join(filepath.Base(filepath.Dir(dir)), filepath.Base(dir), name)
				r.maxDevSkew, r.maxDevSkewAt = skew, fmt.Sprintf("%s: %d requests, fio %d IOs", where, c.devIOs, res.ios)
			}
		}
		c.ios = res.ios
	case c.devIOs > 0:
		c.ios = c.devIOs // fio's count leaves the ramp out; the disk's covers the window
	default:
		return nil, errors.New("no IO count for the window (RAMP > 0 and no disk counts)")
	}
	return &c, nil
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// snapshotCost is the difference of two procstat snapshots. Context
// switches are summed thread by thread: a thread in both counts its
// difference, a new thread all of its switches, and a thread gone by post
// is counted in gone (its switches in the window are lost: the kernel keeps
// them only for wait4).
func snapshotCost(pre, post snapshot) (cost, error) {
	c := cost{devIOs: -1, t0: float64(pre.TimeUs) / 1e6, t1: float64(post.TimeUs) / 1e6}
	if pre.PID != post.PID {
		return c, fmt.Errorf("pid %d before, %d after", pre.PID, post.PID)
	}
	if (pre.DevIOs == nil) != (post.DevIOs == nil) || pre.Dev != post.Dev {
		return c, fmt.Errorf("disk %q before, %q after", pre.Dev, post.Dev)
	}
	if pre.DevIOs != nil {
		c.devIOs = post.DevIOs.sum() - pre.DevIOs.sum()
	}
	if pre.PID == 0 {
		c.none = true
		return c, nil
	}
	if pre.HZ <= 0 || pre.HZ != post.HZ {
		return c, fmt.Errorf("clock ticks %d before, %d after", pre.HZ, post.HZ)
	}
	c.cpuUs = float64((post.Utime+post.Stime)-(pre.Utime+pre.Stime)) * 1e6 / float64(pre.HZ)
	for tid, t := range post.Tasks {
		p := pre.Tasks[tid] // zero for a thread born in the window
		c.ctx += float64(t.Vcsw + t.Ivcsw - p.Vcsw - p.Ivcsw)
	}
	for tid := range pre.Tasks {
		if _, ok := post.Tasks[tid]; !ok {
			c.gone++
		}
	}
	return c, nil
}

// sysmonSwitches are the context switches in the window of a Go process's
// sysmon thread. runtime.main starts sysmon before any other thread, so it
// is the first thread after the main one: the lowest TID above the PID
// (gotcmu re-executes itself once at start, keeping its PID: the threads
// of the first image are gone). sysmon wakes on a timer, 100 times a second
// in gotcmu (cmd/gotcmu/sysmon.go), whatever the IO rate: per IO it weighs
// on slow emulated rows and vanishes at real ones.
func sysmonSwitches(pre, post snapshot) float64 {
	tid := 0
	for k := range post.Tasks {
		if n, err := strconv.Atoi(k); err == nil && n > pre.PID && (tid == 0 || n < tid) {
			tid = n
		}
	}
	k := strconv.Itoa(tid)
	a, ok1 := pre.Tasks[k]
	b, ok2 := post.Tasks[k]
	if tid == 0 || !ok1 || !ok2 {
		return 0
	}
	return float64(b.Vcsw + b.Ivcsw - a.Vcsw - a.Ivcsw)
}

// rusageCost: fio-rbd's whole process, less its one-IO run of the same
// direction (connect, open, close), divided by fio's IO count.
func (r *report) rusageCost(dir, name string, res result) (*cost, error) {
	u, err := readRusage(filepath.Join(dir, name+".rusage"))
	if err != nil {
		return nil, err
	}
	if !r.rampZero() {
		return nil, fmt.Errorf("fio ran with ramp_time %q: its IO count leaves out IOs the rusage includes", r.ramp)
	}
	if res.ios <= 0 {
		return nil, errors.New("fio counted no IOs")
	}
	dirn := "read"
	if rowByName(name).write {
		dirn = "write"
	}
	c := &cost{cpuUs: float64(u.UtimeUs + u.StimeUs), ctx: float64(u.Nvcsw + u.Nivcsw), ios: res.ios, devIOs: -1,
		t0: float64(u.StartUs) / 1e6, t1: float64(u.StartUs+u.WallUs) / 1e6}
	setup, err := readRusage(filepath.Join(dir, "setup-"+dirn+".rusage"))
	if err != nil {
		return nil, fmt.Errorf("no one-IO run to take off: %w", err)
	}
	r.fioSetup[filepath.Join(filepath.Base(dir), "setup-"+dirn)] = fmt.Sprintf("%.0f ms CPU, %d switches",
		float64(setup.UtimeUs+setup.StimeUs)/1e3, setup.Nvcsw+setup.Nivcsw)
	c.cpuUs -= float64(setup.UtimeUs + setup.StimeUs)
	c.ctx -= float64(setup.Nvcsw + setup.Nivcsw)
	return c, nil
}

// rowByName is the row of that name, or one guessed from it for a ROWS of
// its own.
func rowByName(name string) row {
	for _, rw := range rows {
		if rw.name == name {
			return rw
		}
	}
	return row{name: name, title: name, write: strings.Contains(name, "write")}
}

// samples of a LUN for a row, by round.
func (r *report) samples(lun, name string) []sample {
	return r.res[lun][name]
}

// span is the smallest and largest of some figures.
type span struct {
	lo, hi float64
	n      int
}

func (s *span) add(v float64) {
	if s.n == 0 || v < s.lo {
		s.lo = v
	}
	if s.n == 0 || v > s.hi {
		s.hi = v
	}
	s.n++
}

// mid is the middle of the span, what the charts draw as the bar.
func (s span) mid() float64 { return (s.lo + s.hi) / 2 }

// format prints lo-hi, or one figure when both print alike; "-" when empty.
func (s span) format(verb, suffix string) string {
	if s.n == 0 {
		return "-"
	}
	lo, hi := fmt.Sprintf(verb, s.lo), fmt.Sprintf(verb, s.hi)
	if lo == hi {
		return lo + suffix
	}
	return lo + "-" + hi + suffix
}

// over collects f of every sample of a LUN's row that has it.
func (r *report) over(lun, name string, f func(sample) (float64, bool)) span {
	var s span
	for _, x := range r.samples(lun, name) {
		if v, ok := f(x); ok {
			s.add(v)
		}
	}
	return s
}

func iops(x sample) (float64, bool)  { return x.res.iops, true }
func mbps(x sample) (float64, bool)  { return x.res.mbps, true }
func latUs(x sample) (float64, bool) { return x.res.latUs, true }
func p99Us(x sample) (float64, bool) { return x.res.p99Us, x.res.p99Us > 0 }
func cpuPerIO(x sample) (float64, bool) {
	if x.cost == nil || x.cost.ios <= 0 {
		return 0, false
	}
	return x.cost.cpuPerIO(), true
}
func ctxPerIO(x sample) (float64, bool) {
	if x.cost == nil || x.cost.ios <= 0 {
		return 0, false
	}
	return x.cost.ctxPerIO(), true
}

func sysmonPerIO(x sample) (float64, bool) {
	if x.cost == nil || x.cost.ios <= 0 {
		return 0, false
	}
	return x.cost.sysmon / float64(x.cost.ios), true
}
func sysmonPerSec(x sample) (float64, bool) {
	if x.cost == nil || x.cost.t1 <= x.cost.t0 {
		return 0, false
	}
	return x.cost.sysmon / (x.cost.t1 - x.cost.t0), true
}

// ctxLessSysmonPerIO is ctxPerIO without the sysmon thread's switches (the
// same as ctxPerIO for a process that is not gotcmu).
func ctxLessSysmonPerIO(x sample) (float64, bool) {
	if x.cost == nil || x.cost.ios <= 0 {
		return 0, false
	}
	return (x.cost.ctx - x.cost.sysmon) / float64(x.cost.ios), true
}

// hostLoadOf is the mean host load outside the guest during a sample's
// cost window.
func (r *report) hostLoadOf(x sample) (float64, bool) {
	if x.cost == nil || x.cost.t0 == 0 || x.cost.t1 == 0 {
		return 0, false
	}
	return meanLoad(r.hostLoad, x.cost.t0, x.cost.t1)
}

// ratios pairs a's and b's samples round by round and collects f(a)/f(b).
func (r *report) ratios(a, b, name string, f func(sample) (float64, bool)) span {
	var s span
	bs := map[int]sample{}
	for _, x := range r.samples(b, name) {
		bs[x.round] = x
	}
	for _, x := range r.samples(a, name) {
		y, ok := bs[x.round]
		if !ok {
			continue
		}
		va, oka := f(x)
		vb, okb := f(y)
		if oka && okb && vb != 0 {
			s.add(va / vb)
		}
	}
	return s
}

// value is the figure rows compare.
func value(rw row) func(sample) (float64, bool) {
	if rw.large {
		return mbps
	}
	return iops
}

// cell prints one LUN's throughput for a row (min-max over the rounds).
func (r *report) cell(lun string, rw row) string {
	if len(r.samples(lun, rw.name)) == 0 {
		return "-"
	}
	switch {
	case rw.large:
		return r.over(lun, rw.name, mbps).format("%.1f", " MB/s")
	case rw.qd1:
		return r.over(lun, rw.name, iops).format("%.0f", " IOPS") + ", " + r.over(lun, rw.name, latUs).format("%.0f", " µs")
	}
	return r.over(lun, rw.name, iops).format("%.0f", " IOPS")
}

func ratioCell(s span) string {
	if s.n == 0 {
		return "n/a"
	}
	lo, hi := fmt.Sprintf("%.2fx", s.lo), fmt.Sprintf("%.2fx", s.hi)
	if lo == hi {
		return "**" + lo + "**"
	}
	return "**" + lo + "-" + hi + "**"
}

func (r *report) ratioCell(a, b string, rw row) string {
	return ratioCell(r.ratios(a, b, rw.name, value(rw)))
}

// costCells are a LUN's CPU µs and context switches per IO for a row.
func (r *report) costCells(lun string, rw row) (cpu, ctx string) {
	ss := r.samples(lun, rw.name)
	if len(ss) == 0 {
		return "-", "-"
	}
	none := true
	for _, x := range ss {
		none = none && x.cost != nil && x.cost.none
	}
	if none {
		return "0 (no daemon)", "0"
	}
	c := r.over(lun, rw.name, cpuPerIO)
	verb := "%.0f"
	if c.n > 0 && c.hi < 10 {
		verb = "%.1f"
	}
	return c.format(verb, ""), r.over(lun, rw.name, ctxPerIO).format("%.1f", "")
}

// comparisons are the ratios of the chart.
var comparisons = []struct{ a, b, title string }{
	{"gotcmu-rbd", "tcmu-runner-rbd", "gotcmu / tcmu-runner (rbd)"},
	{"gotcmu-rbd", "fio-rbd", "gotcmu / fio librbd"},
	{"gotcmu-mem", "rd_mcp", "gotcmu mem / LIO rd_mcp"},
	{"gotcmu-file", "fileio", "gotcmu file / LIO fileio"},
}

// handler is one column group of the per-handler tables.
type handler struct{ lun, title string }

func (r *report) markdown(w io.Writer) {
	fmt.Fprintf(w, "## fio over tcm_loop, one guest boot\n\n")
	fmt.Fprintf(w, "Guest kernel %s, %s vCPUs under qemu TCG (emulated: only the ratios mean anything), clock source %s. ",
		orDash(r.kernel), orDash(r.cpus), orDash(r.clock))
	fmt.Fprintf(w, "fio libaio O_DIRECT on the tcm_loop disk, each LUN written end to end first, %s s a row, ramp %s s. ",
		orDash(r.secs), orDash(r.ramp))
	fmt.Fprintf(w, "Control knobs of both handlers' user backstores: `%s`; emulate_write_cache left at 0. ", orDash(r.knobs))
	fmt.Fprintf(w, "Every LUN served in %s rounds, one after the other in each (gotcmu, tcmu-runner, fio-rbd, LIO in odd rounds, the reverse in even ones), "+
		"each handler started afresh: a figure is the lowest-highest over the rounds, a ratio pairs the two LUNs of the same round.\n\n",
		orDash(r.rounds))

	fmt.Fprintf(w, "### Ceph RBD (Ceph inside the guest, one image)\n\n")
	fmt.Fprintf(w, "| row | gotcmu user:rbd | tcmu-runner user:rbd | fio librbd | gotcmu / tcmu-runner | gotcmu / fio-rbd |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|\n")
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", rw.title,
			r.cell("gotcmu-rbd", rw), r.cell("tcmu-runner-rbd", rw), r.cell("fio-rbd", rw),
			r.ratioCell("gotcmu-rbd", "tcmu-runner-rbd", rw), r.ratioCell("gotcmu-rbd", "fio-rbd", rw))
	}
	rbd := []handler{{"gotcmu-rbd", "gotcmu user:rbd"}, {"tcmu-runner-rbd", "tcmu-runner user:rbd"}, {"fio-rbd", "fio librbd (whole fio process)"}}
	fmt.Fprintf(w, "\n#### Cost per IO (rbd)\n\n")
	r.costTable(w, rbd)
	fmt.Fprintf(w, "\n| row | IOPS gotcmu / tcmu-runner | CPU per IO gotcmu / tcmu-runner | switches per IO gotcmu / tcmu-runner | IOPS gotcmu / fio librbd | CPU per IO gotcmu / fio librbd | switches per IO gotcmu / fio librbd |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|\n")
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s |", rw.title)
		for _, b := range []string{"tcmu-runner-rbd", "fio-rbd"} {
			fmt.Fprintf(w, " %s | %s | %s |", ratioCell(r.ratios("gotcmu-rbd", b, rw.name, iops)),
				ratioCell(r.ratios("gotcmu-rbd", b, rw.name, cpuPerIO)), ratioCell(r.ratios("gotcmu-rbd", b, rw.name, ctxPerIO)))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nOf gotcmu's context switches, the Go runtime's sysmon thread's (see below):\n\n")
	fmt.Fprintf(w, "| row | sysmon switches per IO | sysmon switches per second | gotcmu's switches per IO without sysmon | the same / tcmu-runner's |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|\n")
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", rw.title,
			r.over("gotcmu-rbd", rw.name, sysmonPerIO).format("%.2f", ""), r.over("gotcmu-rbd", rw.name, sysmonPerSec).format("%.0f", ""),
			r.over("gotcmu-rbd", rw.name, ctxLessSysmonPerIO).format("%.1f", ""),
			ratioCell(r.ratios("gotcmu-rbd", "tcmu-runner-rbd", rw.name, ctxLessSysmonPerIO)))
	}

	fmt.Fprintf(w, "\n### RAM\n\n")
	fmt.Fprintf(w, "| row | gotcmu user:mem | LIO rd_mcp | gotcmu / rd_mcp |\n|---|---:|---:|---:|\n")
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", rw.title,
			r.cell("gotcmu-mem", rw), r.cell("rd_mcp", rw), r.ratioCell("gotcmu-mem", "rd_mcp", rw))
	}
	fmt.Fprintf(w, "\n#### Cost per IO (RAM: no librbd, the handler's own cost; rd_mcp has no daemon)\n\n")
	r.costTable(w, []handler{{"gotcmu-mem", "gotcmu user:mem"}, {"rd_mcp", "LIO rd_mcp"}})

	fmt.Fprintf(w, "\n### File on tmpfs\n\n")
	fmt.Fprintf(w, "| row | gotcmu user:file | LIO fileio | gotcmu / fileio | tcmu-runner file_zbc (host-aware) | gotcmu / file_zbc |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|\n")
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", rw.title,
			r.cell("gotcmu-file", rw), r.cell("fileio", rw), r.ratioCell("gotcmu-file", "fileio", rw),
			r.cell("tcmu-runner-zbc", rw), r.ratioCell("gotcmu-file", "tcmu-runner-zbc", rw))
	}
	fmt.Fprintf(w, "\n#### Cost per IO (file)\n\n")
	r.costTable(w, []handler{{"gotcmu-file", "gotcmu user:file"}, {"fileio", "LIO fileio"}, {"tcmu-runner-zbc", "tcmu-runner file_zbc"}})
	r.others(w)
	switch {
	case r.zbc == "":
		fmt.Fprintf(w, "\nfile_zbc was not tried.\n")
	case strings.HasPrefix(r.zbc, "yes"):
		fmt.Fprintf(w, "\nfile_zbc took random writes in its host-aware model (no conventional zones).\n")
	default:
		fmt.Fprintf(w, "\nfile_zbc in its host-aware model did not serve random writes (%s), so it has no row.\n", r.zbc)
	}
	r.costNotes(w)
}

// costTable: one line per row and handler: throughput, latencies and the
// cost per IO, each lowest-highest over the rounds.
func (r *report) costTable(w io.Writer, hs []handler) {
	load := len(r.hostLoad) > 0
	fmt.Fprintf(w, "| row | handler | IOPS | MB/s | mean latency µs | p99 latency µs | CPU µs per IO | context switches per IO |")
	if load {
		fmt.Fprintf(w, " other load on the host, cores |")
	}
	fmt.Fprintf(w, "\n|---|---|---:|---:|---:|---:|---:|---:|")
	if load {
		fmt.Fprintf(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, rw := range rows {
		for _, h := range hs {
			if len(r.samples(h.lun, rw.name)) == 0 {
				continue
			}
			cpu, ctx := r.costCells(h.lun, rw)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |", rw.title, h.title,
				r.over(h.lun, rw.name, iops).format("%.0f", ""), r.over(h.lun, rw.name, mbps).format("%.1f", ""),
				r.over(h.lun, rw.name, latUs).format("%.0f", ""), r.over(h.lun, rw.name, p99Us).format("%.0f", ""), cpu, ctx)
			if load {
				fmt.Fprintf(w, " %s |", r.over(h.lun, rw.name, r.hostLoadOf).format("%.1f", ""))
			}
			fmt.Fprintln(w)
		}
	}
}

// costNotes say how the cost was counted and what is missing from it.
func (r *report) costNotes(w io.Writer) {
	fmt.Fprintf(w, "\nCost per IO: a daemon's CPU time is utime+stime of /proc/PID/stat (every thread, exited ones included) "+
		"and its context switches the voluntary and involuntary ones of /proc/PID/task/*/status, both taken right before fio "+
		"starts and right after it exits (test/cmd/procstat); fio-rbd's are the whole fio process's wait4 rusage "+
		"(test/cmd/rusage: librbd's threads included; fio's own usr/sys count its job thread only), less a one-IO run of the "+
		"same direction (connect, open, close). Divided by ")
	if r.rampZero() {
		fmt.Fprintf(w, "the IOs fio completed (ramp 0: fio counts the whole run).")
	} else {
		fmt.Fprintf(w, "the requests the tcm_loop disk completed in the window (/sys/block/DEV/stat); fio-rbd has none, "+
			"and fio's own count leaves out the ramp, so its cost is n/a.")
	}
	fmt.Fprintf(w, "\n\nsysmon: the Go runtime's monitor thread, the first thread gotcmu starts after its main one (the lowest "+
		"thread ID above the PID). gotcmu keeps it from its deep sleep (cmd/gotcmu/sysmon.go: GODEBUG schedtrace), so it "+
		"wakes on its 10 ms timer, about 100 times a second whatever the IO rate: a cost per second, which per IO weighs "+
		"on the slow rows of an emulated guest and vanishes at a real machine's IO rates.")
	if len(r.fioSetup) > 0 {
		var runs []string
		for k, v := range r.fioSetup {
			runs = append(runs, k+": "+v)
		}
		sort.Strings(runs)
		fmt.Fprintf(w, " fio-rbd's one-IO runs taken off: %s.", strings.Join(runs, "; "))
	}
	if r.devWindows > 0 && r.maxDevSkewAt == "" {
		fmt.Fprintf(w, " In all %d windows the requests the tcm_loop disk completed (/sys/block/DEV/stat) equal fio's IO count.", r.devWindows)
	}
	if r.maxDevSkewAt != "" {
		fmt.Fprintf(w, " The disk's request count in a window differed from fio's IO count by at most %+.2f%% (%s).",
			100*r.maxDevSkew, r.maxDevSkewAt)
	}
	fmt.Fprintln(w)
	if len(r.hostLoad) > 0 {
		fmt.Fprintf(w, "\nOther load on the host: the CPU this machine spent outside the guest's qemu during the row's window "+
			"(bench.sh samples /proc/stat every 5 s; the guest has 2 vCPUs on a 2-core machine and is emulated, so any of it "+
			"slows the guest down and shows in its figures, and may inflate the CPU times the guest accounts: its clock runs on while qemu waits for a core).\n")
	}
	gone, goneAt := 0, []string{}
	for _, lun := range sortedKeys(r.res) {
		for _, name := range sortedKeys(r.res[lun]) {
			for _, x := range r.res[lun][name] {
				if x.cost != nil && x.cost.gone > 0 {
					gone += x.cost.gone
					goneAt = append(goneAt, fmt.Sprintf("%s round %d %s: %d", lun, x.round, name, x.cost.gone))
				}
			}
		}
	}
	if gone > 0 {
		fmt.Fprintf(w, "\n%d daemon threads exited during a measured window (%s): their context switches in it are not counted "+
			"(the kernel keeps them only for wait4), so those rows undercount.\n", gone, strings.Join(goneAt, "; "))
	} else {
		fmt.Fprintf(w, "\nNo daemon thread exited during a measured window: the context switches are complete.\n")
	}
	if len(r.costErrs) > 0 {
		fmt.Fprintf(w, "\nCost not computed:\n\n")
		for _, e := range r.costErrs {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
}

// known are the LUNs the three tables show.
var known = map[string]bool{
	"gotcmu-rbd": true, "tcmu-runner-rbd": true, "fio-rbd": true, "gotcmu-mem": true, "rd_mcp": true,
	"gotcmu-file": true, "fileio": true, "tcmu-runner-zbc": true,
}

// others shows every other LUN of the boot (experiments such as
// gotcmu-rbd-gomaxprocs1) against fio's librbd engine, with its cost.
func (r *report) others(w io.Writer) {
	var luns []string
	for lun := range r.res {
		if !known[lun] {
			luns = append(luns, lun)
		}
	}
	if len(luns) == 0 {
		return
	}
	sort.Strings(luns)
	fmt.Fprintf(w, "\n### Other runs in this boot\n\n| row |")
	for _, l := range luns {
		fmt.Fprintf(w, " %s | %s / fio-rbd |", l, l)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|---:|", len(luns)))
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s |", rw.title)
		for _, l := range luns {
			fmt.Fprintf(w, " %s | %s |", r.cell(l, rw), r.ratioCell(l, "fio-rbd", rw))
		}
		fmt.Fprintln(w)
	}
	var hs []handler
	for _, l := range luns {
		hs = append(hs, handler{l, l})
	}
	fmt.Fprintln(w)
	r.costTable(w, hs)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ratioData is the gnuplot data file: a header line of titles, then one
// line per row, three columns per comparison (the middle of the rounds'
// ratios, lowest, highest), "NaN" where a figure is missing.
func (r *report) ratioData() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "row")
	for _, c := range comparisons {
		fmt.Fprintf(&b, "\t\"%s\"\tlo\thi", c.title)
	}
	fmt.Fprintln(&b)
	for _, rw := range rows {
		fmt.Fprintf(&b, "\"%s\"", rw.title)
		for _, c := range comparisons {
			writeSpan(&b, r.ratios(c.a, c.b, rw.name, value(rw)))
		}
		fmt.Fprintln(&b)
	}
	return b.Bytes()
}

func writeSpan(b *bytes.Buffer, s span) {
	if s.n == 0 {
		fmt.Fprintf(b, "\tNaN\tNaN\tNaN")
		return
	}
	fmt.Fprintf(b, "\t%.3f\t%.3f\t%.3f", s.mid(), s.lo, s.hi)
}

// cpuLUNs are the bars of the CPU-per-IO chart.
var cpuLUNs = []handler{
	{"gotcmu-rbd", "gotcmu user:rbd"},
	{"tcmu-runner-rbd", "tcmu-runner user:rbd"},
	{"fio-rbd", "fio librbd (whole process)"},
	{"gotcmu-mem", "gotcmu user:mem (no librbd)"},
}

// cpuData is the CPU µs per IO in the layout of ratioData.
func (r *report) cpuData() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "row")
	for _, h := range cpuLUNs {
		fmt.Fprintf(&b, "\t\"%s\"\tlo\thi", h.title)
	}
	fmt.Fprintln(&b)
	for _, rw := range rows {
		fmt.Fprintf(&b, "\"%s\"", rw.title)
		for _, h := range cpuLUNs {
			writeSpan(&b, r.over(h.lun, rw.name, cpuPerIO))
		}
		fmt.Fprintln(&b)
	}
	return b.Bytes()
}

// gnuplotScript draws the ratios as clustered bars with the rounds'
// spread as error bars and the goal lines; with cpuDat, a second chart of
// the CPU time per IO.
func gnuplotScript(dat, png, cpuDat, cpuPng string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "set terminal pngcairo noenhanced size 1100,560 font 'sans,10'\n")
	fmt.Fprintf(&b, "set output %q\n", png)
	fmt.Fprintf(&b, "set title 'gotcmu against the reference in the same boot (fio over tcm_loop; 1.0 = as fast; bars: lowest-highest over the rounds)'\n")
	fmt.Fprintf(&b, "set style data histograms\nset style histogram errorbars gap 1 lw 1\nset style fill solid 0.85 border -1\n")
	fmt.Fprintf(&b, "set boxwidth 0.9\nset ylabel 'ratio'\nset yrange [0:*]\nset grid ytics\nset key below horizontal\nset xtics rotate by -15\n")
	fmt.Fprintf(&b, "set datafile missing 'NaN'\n")
	fmt.Fprintf(&b, "set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb '#444444'\n")
	fmt.Fprintf(&b, "set arrow 2 from graph 0, first 0.95 to graph 1, first 0.95 nohead dt 2 lc rgb '#aa0000'\n")
	plotSpans(&b, dat, len(comparisons))
	if cpuDat == "" {
		return b.Bytes()
	}
	fmt.Fprintf(&b, "unset arrow 1\nunset arrow 2\n")
	fmt.Fprintf(&b, "set output %q\n", cpuPng)
	fmt.Fprintf(&b, "set title 'CPU time per IO of the process serving it (fio over tcm_loop, same boot; bars: lowest-highest over the rounds)'\n")
	fmt.Fprintf(&b, "set ylabel 'CPU µs per IO'\n")
	plotSpans(&b, cpuDat, len(cpuLUNs))
	return b.Bytes()
}

// plotSpans plots n series of three columns (value, low, high) after the
// row title.
func plotSpans(b *bytes.Buffer, dat string, n int) {
	fmt.Fprintf(b, "plot ")
	for i := 0; i < n; i++ {
		if i > 0 {
			fmt.Fprintf(b, ", \\\n     ")
		}
		col := 2 + 3*i
		fmt.Fprintf(b, "%q using %d:%d:%d:xtic(1) title columnheader(%d)", dat, col, col+1, col+2, col)
	}
	fmt.Fprintln(b)
}
