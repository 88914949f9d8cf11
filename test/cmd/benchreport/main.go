package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
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
	gpPath := fl.String("gp", "", "write a gnuplot script drawing -dat into -png to this `file`")
	pngPath := fl.String("png", "bench.png", "the chart the -gp script draws")
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
	writes := []struct {
		path string
		data func() []byte
	}{
		{*mdPath, md.Bytes},
		{*datPath, r.ratioData},
		{*gpPath, func() []byte { return gnuplotScript(*datPath, *pngPath) }},
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
	qd1   bool // show the mean latency
}

var rows = []row{
	{"randread-4k-qd1", "4k randread QD1", false, true},
	{"randread-4k-qd32", "4k randread QD32", false, false},
	{"randwrite-4k-qd1", "4k randwrite QD1", false, true},
	{"randwrite-4k-qd32", "4k randwrite QD32", false, false},
	{"read-1m-qd8", "1M read QD8", true, false},
	{"write-1m-qd8", "1M write QD8", true, false},
}

// result is what one fio run measured.
type result struct {
	iops  float64
	mbps  float64
	latUs float64 // mean total latency
}

// value is the figure rows compare: MB/s for large rows, IOPS otherwise.
func (r result) value(large bool) float64 {
	if large {
		return r.mbps
	}
	return r.iops
}

// report is one boot's results: by LUN, then by row name.
type report struct {
	res map[string]map[string]result
	// knobs, kernel, cpus and zbc describe the boot.
	knobs, kernel, cpus, zbc, clock string
}

func load(dir string) (*report, error) {
	r := &report{res: map[string]map[string]result{}}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".json" {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		lun, name := filepath.Dir(rel), strings.TrimSuffix(filepath.Base(rel), ".json")
		res, err := readFio(path)
		if err != nil {
			return err
		}
		if r.res[lun] == nil {
			r.res[lun] = map[string]result{}
		}
		r.res[lun][name] = res
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(r.res) == 0 {
		return nil, fmt.Errorf("no fio results under %s", dir)
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"knobs", &r.knobs}, {"guest-kernel", &r.kernel}, {"nproc", &r.cpus}, {"zbc-random-writes", &r.zbc}, {"clocksource", &r.clock}} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		*f.dst = strings.TrimSpace(string(b))
	}
	return r, nil
}

// readFio reads fio's JSON output: the first job, its read or its write
// side, whichever did the IO.
func readFio(path string) (result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return result{}, err
	}
	// fio may print notes before the JSON document.
	if i := bytes.IndexByte(b, '{'); i > 0 {
		b = b[i:]
	}
	type side struct {
		IOPS    float64 `json:"iops"`
		BWBytes float64 `json:"bw_bytes"`
		Lat     struct {
			Mean float64 `json:"mean"`
		} `json:"lat_ns"`
	}
	var out struct {
		Jobs []struct {
			Read  side `json:"read"`
			Write side `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return result{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(out.Jobs) == 0 {
		return result{}, fmt.Errorf("%s: no jobs", path)
	}
	s := out.Jobs[0].Read
	if out.Jobs[0].Write.IOPS > s.IOPS {
		s = out.Jobs[0].Write
	}
	return result{iops: s.IOPS, mbps: s.BWBytes / 1e6, latUs: s.Lat.Mean / 1e3}, nil
}

func (r *report) get(lun, name string) (result, bool) {
	res, ok := r.res[lun][name]
	return res, ok
}

// cell prints one LUN's figure for a row.
func (r *report) cell(lun string, rw row) string {
	res, ok := r.get(lun, rw.name)
	switch {
	case !ok:
		return "-"
	case rw.large:
		return fmt.Sprintf("%.1f MB/s", res.mbps)
	case rw.qd1:
		return fmt.Sprintf("%.0f IOPS, %.0f µs", res.iops, res.latUs)
	}
	return fmt.Sprintf("%.0f IOPS", res.iops)
}

// ratio of a's figure to b's for a row; false when either is missing.
func (r *report) ratio(a, b string, rw row) (float64, bool) {
	ra, oka := r.get(a, rw.name)
	rb, okb := r.get(b, rw.name)
	if !oka || !okb || rb.value(rw.large) == 0 {
		return 0, false
	}
	return ra.value(rw.large) / rb.value(rw.large), true
}

func (r *report) ratioCell(a, b string, rw row) string {
	if v, ok := r.ratio(a, b, rw); ok {
		return fmt.Sprintf("**%.2fx**", v)
	}
	return "n/a"
}

// comparisons are the ratios of the table and of the chart.
var comparisons = []struct{ a, b, title string }{
	{"gotcmu-rbd", "tcmu-runner-rbd", "gotcmu / tcmu-runner (rbd)"},
	{"gotcmu-rbd", "fio-rbd", "gotcmu / fio librbd"},
	{"gotcmu-mem", "rd_mcp", "gotcmu mem / LIO rd_mcp"},
	{"gotcmu-file", "fileio", "gotcmu file / LIO fileio"},
}

func (r *report) markdown(w io.Writer) {
	fmt.Fprintf(w, "## fio over tcm_loop, one guest boot\n\n")
	fmt.Fprintf(w, "Guest kernel %s, %s vCPUs under qemu TCG (emulated: only the ratios mean anything), clock source %s. ",
		orDash(r.kernel), orDash(r.cpus), orDash(r.clock))
	fmt.Fprintf(w, "fio libaio O_DIRECT on the tcm_loop disk, each LUN written end to end first. ")
	fmt.Fprintf(w, "Control knobs of both handlers' user backstores: `%s`; emulate_write_cache left at 0.\n\n", orDash(r.knobs))

	fmt.Fprintf(w, "### Ceph RBD (Ceph inside the guest, one image)\n\n")
	fmt.Fprintf(w, "| row | gotcmu user:rbd | tcmu-runner user:rbd | fio librbd | gotcmu / tcmu-runner | gotcmu / fio-rbd |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|\n")
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", rw.title,
			r.cell("gotcmu-rbd", rw), r.cell("tcmu-runner-rbd", rw), r.cell("fio-rbd", rw),
			r.ratioCell("gotcmu-rbd", "tcmu-runner-rbd", rw), r.ratioCell("gotcmu-rbd", "fio-rbd", rw))
	}

	fmt.Fprintf(w, "\n### RAM\n\n")
	fmt.Fprintf(w, "| row | gotcmu user:mem | LIO rd_mcp | gotcmu / rd_mcp |\n|---|---:|---:|---:|\n")
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", rw.title,
			r.cell("gotcmu-mem", rw), r.cell("rd_mcp", rw), r.ratioCell("gotcmu-mem", "rd_mcp", rw))
	}

	fmt.Fprintf(w, "\n### File on tmpfs\n\n")
	fmt.Fprintf(w, "| row | gotcmu user:file | LIO fileio | gotcmu / fileio | tcmu-runner file_zbc (host-aware) | gotcmu / file_zbc |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|\n")
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", rw.title,
			r.cell("gotcmu-file", rw), r.cell("fileio", rw), r.ratioCell("gotcmu-file", "fileio", rw),
			r.cell("tcmu-runner-zbc", rw), r.ratioCell("gotcmu-file", "tcmu-runner-zbc", rw))
	}
	r.others(w)
	switch {
	case r.zbc == "":
		fmt.Fprintf(w, "\nfile_zbc was not tried.\n")
	case strings.HasPrefix(r.zbc, "yes"):
		fmt.Fprintf(w, "\nfile_zbc took random writes in its host-aware model (no conventional zones).\n")
	default:
		fmt.Fprintf(w, "\nfile_zbc in its host-aware model did not serve random writes (%s), so it has no row.\n", r.zbc)
	}
}

// known are the LUNs the three tables show.
var known = map[string]bool{
	"gotcmu-rbd": true, "tcmu-runner-rbd": true, "fio-rbd": true, "gotcmu-mem": true, "rd_mcp": true,
	"gotcmu-file": true, "fileio": true, "tcmu-runner-zbc": true,
}

// others shows every other LUN of the boot (experiments such as
// gotcmu-rbd-gomaxprocs1) against fio's librbd engine.
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
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ratioData is the gnuplot data file: a header line of titles, then one
// line per row, one column per comparison, "NaN" where a figure is missing.
func (r *report) ratioData() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "row")
	for _, c := range comparisons {
		fmt.Fprintf(&b, "\t\"%s\"", c.title)
	}
	fmt.Fprintln(&b)
	for _, rw := range rows {
		fmt.Fprintf(&b, "\"%s\"", rw.title)
		for _, c := range comparisons {
			if v, ok := r.ratio(c.a, c.b, rw); ok {
				fmt.Fprintf(&b, "\t%.3f", v)
			} else {
				fmt.Fprintf(&b, "\tNaN")
			}
		}
		fmt.Fprintln(&b)
	}
	return b.Bytes()
}

// gnuplotScript draws the ratios as clustered bars, with the goal lines.
func gnuplotScript(dat, png string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "set terminal pngcairo noenhanced size 1100,560 font 'sans,10'\n")
	fmt.Fprintf(&b, "set output %q\n", png)
	fmt.Fprintf(&b, "set title 'gotcmu against the reference in the same boot (fio over tcm_loop; 1.0 = as fast)'\n")
	fmt.Fprintf(&b, "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.85 border -1\n")
	fmt.Fprintf(&b, "set boxwidth 0.9\nset ylabel 'ratio'\nset yrange [0:*]\nset grid ytics\nset key below horizontal\nset xtics rotate by -15\n")
	fmt.Fprintf(&b, "set datafile missing 'NaN'\n")
	fmt.Fprintf(&b, "set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb '#444444'\n")
	fmt.Fprintf(&b, "set arrow from graph 0, first 0.95 to graph 1, first 0.95 nohead dt 2 lc rgb '#aa0000'\n")
	fmt.Fprintf(&b, "plot ")
	for i := range comparisons {
		if i > 0 {
			fmt.Fprintf(&b, ", \\\n     ")
		}
		fmt.Fprintf(&b, "%q using %d:xtic(1) title columnheader(%d)", dat, i+2, i+2)
	}
	fmt.Fprintln(&b)
	return b.Bytes()
}
