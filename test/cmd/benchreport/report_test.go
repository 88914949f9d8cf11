package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fioJSON is fio's output for one job that did its IO on one side.
func fioJSON(side string, iops, bw, latNs float64) string {
	other := "read"
	if side == "read" {
		other = "write"
	}
	return `fio: a note before the document
{"jobs": [{"` + side + `": {"iops": ` + ftoa(iops) + `, "bw_bytes": ` + ftoa(bw) + `, "lat_ns": {"mean": ` + ftoa(latNs) + `}},
 "` + other + `": {"iops": 0, "bw_bytes": 0, "lat_ns": {"mean": 0}}}]}`
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func write(t *testing.T, dir, lun, row, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, lun), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, lun, row+".json"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReportRatiosAndMissingFigures(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "gotcmu-rbd", "randread-4k-qd1", fioJSON("read", 900, 900*4096, 1.1e6))
	write(t, dir, "tcmu-runner-rbd", "randread-4k-qd1", fioJSON("read", 600, 600*4096, 1.6e6))
	write(t, dir, "fio-rbd", "randread-4k-qd1", fioJSON("read", 1000, 1000*4096, 1e6))
	write(t, dir, "gotcmu-rbd", "write-1m-qd8", fioJSON("write", 40, 40e6, 2e8))
	write(t, dir, "fio-rbd", "write-1m-qd8", fioJSON("write", 50, 50e6, 1.6e8))
	os.WriteFile(filepath.Join(dir, "knobs"), []byte("hw_max_sectors=2048\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "zbc-random-writes"), []byte("no: err=5\n"), 0o644)

	var out, errOut bytes.Buffer
	dat := filepath.Join(dir, "r.dat")
	if rc := cmd([]string{"-dat", dat, dir}, &out, &errOut); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errOut.String())
	}
	md := out.String()
	for _, want := range []string{
		"| 4k randread QD1 | 900 IOPS, 1100 µs | 600 IOPS, 1600 µs | 1000 IOPS, 1000 µs | **1.50x** | **0.90x** |",
		"| 1M write QD8 | 40.0 MB/s | - | 50.0 MB/s | n/a | **0.80x** |",
		"| 4k randread QD32 | - | - | - | n/a | n/a |",
		"`hw_max_sectors=2048`",
		"did not serve random writes (no: err=5)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	b, err := os.ReadFile(dat)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1+len(rows) || !strings.HasPrefix(lines[0], "row\t") {
		t.Fatalf("data file:\n%s", b)
	}
	if want := "\"4k randread QD1\"\t1.500\t1.500\t1.500\t0.900\t0.900\t0.900" + strings.Repeat("\tNaN", 6); lines[1] != want {
		t.Errorf("first data line %q, want %q", lines[1], want)
	}
}

func TestReportRefusesAnEmptyDirectory(t *testing.T) {
	var out, errOut bytes.Buffer
	if rc := cmd([]string{t.TempDir()}, &out, &errOut); rc != 1 || !strings.Contains(errOut.String(), "no fio results") {
		t.Fatalf("exit %d, stderr %q; want 1 and a message", rc, errOut.String())
	}
}

// fioRun is fio's output with IO counts and a p99 latency.
func fioRun(side string, iops float64, ios int64, latNs, p99Ns float64) string {
	other := "read"
	if side == "read" {
		other = "write"
	}
	return `{"jobs": [{"` + side + `": {"iops": ` + ftoa(iops) + `, "bw_bytes": ` + ftoa(iops*4096) + `, "total_ios": ` +
		strconv.FormatInt(ios, 10) + `, "lat_ns": {"mean": ` + ftoa(latNs) + `, "percentile": {"99.000000": ` + ftoa(p99Ns) + `}}},
 "` + other + `": {"iops": 0, "bw_bytes": 0, "total_ios": 0, "lat_ns": {"mean": 0}}}]}`
}

func put(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Two rounds of the rbd LUNs: the cost from procstat snapshots (a daemon)
// and from rusage (fio-rbd, less its one-IO run), as lowest-highest over the
// rounds, and the ratios paired round by round.
func TestReportCostPerIO(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []struct{ name, body string }{{"ramp", "0\n"}, {"rounds", "2\n"}, {"secs", "10\n"}} {
		put(t, filepath.Join(dir, f.name), f.body)
	}
	const row = "randread-4k-qd32"
	for round, g := range []struct {
		gIOs, tIOs, fIOs int64
		gTicks, tTicks   int64 // CPU in the window, at 100 Hz
		gCtx, tCtx       int64
	}{
		{gIOs: 10000, tIOs: 8000, fIOs: 12000, gTicks: 500, tTicks: 320, gCtx: 70000, tCtx: 32000},
		{gIOs: 9000, tIOs: 9000, fIOs: 12000, gTicks: 450, tTicks: 360, gCtx: 63000, tCtx: 36000},
	} {
		rd := filepath.Join(dir, "%s", "r"+strconv.Itoa(round+1))
		lun := func(l string) string { return strings.Replace(rd, "%s", l, 1) }
		put(t, filepath.Join(lun("gotcmu-rbd"), row+".json"), fioRun("read", float64(g.gIOs)/10, g.gIOs, 3e7, 9e7))
		put(t, filepath.Join(lun("tcmu-runner-rbd"), row+".json"), fioRun("read", float64(g.tIOs)/10, g.tIOs, 4e7, 8e7))
		put(t, filepath.Join(lun("fio-rbd"), row+".json"), fioRun("read", float64(g.fIOs)/10, g.fIOs, 2e7, 5e7))
		// gotcmu: thread 11 lives through, 12 is born in the window.
		put(t, filepath.Join(lun("gotcmu-rbd"), row+".pre"),
			`{"pid":10,"hz":100,"utime":1000,"stime":2000,"tasks":{"10":{"vcsw":5,"ivcsw":1},"11":{"vcsw":100,"ivcsw":0}},"dev":"sdb","dev_ios":{"read":50,"write":7}}`)
		put(t, filepath.Join(lun("gotcmu-rbd"), row+".post"), `{"pid":10,"hz":100,"utime":1100,"stime":`+
			strconv.FormatInt(2000+g.gTicks-100, 10)+`,"tasks":{"10":{"vcsw":5,"ivcsw":1},"11":{"vcsw":`+
			strconv.FormatInt(100+g.gCtx-1000, 10)+`,"ivcsw":0},"12":{"vcsw":900,"ivcsw":100}},"dev":"sdb","dev_ios":{"read":`+
			strconv.FormatInt(50+g.gIOs, 10)+`,"write":7}}`)
		// tcmu-runner: thread 21 exits in the window.
		put(t, filepath.Join(lun("tcmu-runner-rbd"), row+".pre"),
			`{"pid":20,"hz":100,"utime":0,"stime":0,"tasks":{"20":{"vcsw":0,"ivcsw":0},"21":{"vcsw":3,"ivcsw":0}},"dev":"sdc","dev_ios":{"read":0,"write":0}}`)
		put(t, filepath.Join(lun("tcmu-runner-rbd"), row+".post"), `{"pid":20,"hz":100,"utime":`+strconv.FormatInt(g.tTicks, 10)+
			`,"stime":0,"tasks":{"20":{"vcsw":`+strconv.FormatInt(g.tCtx, 10)+`,"ivcsw":0}},"dev":"sdc","dev_ios":{"read":`+
			strconv.FormatInt(g.tIOs+80, 10)+`,"write":0}}`)
		// fio-rbd: 1.2 s + 24000 switches for its IOs, 0.2 s and 4000 for setting up.
		put(t, filepath.Join(lun("fio-rbd"), row+".rusage"), `{"utime_us":1000000,"stime_us":400000,"nvcsw":27000,"nivcsw":1000,"exit":0}`)
		put(t, filepath.Join(lun("fio-rbd"), "setup-read.rusage"), `{"utime_us":150000,"stime_us":50000,"nvcsw":3900,"nivcsw":100,"exit":0}`)
	}
	// LIO rd_mcp: the disk only.
	put(t, filepath.Join(dir, "rd_mcp", "r1", row+".json"), fioRun("read", 10000, 100000, 1e6, 2e6))
	put(t, filepath.Join(dir, "rd_mcp", "r1", row+".pre"), `{"dev":"sdd","dev_ios":{"read":0,"write":0}}`)
	put(t, filepath.Join(dir, "rd_mcp", "r1", row+".post"), `{"dev":"sdd","dev_ios":{"read":100000,"write":0}}`)
	// A broken window: the post snapshot is missing.
	put(t, filepath.Join(dir, "gotcmu-mem", "r1", row+".json"), fioRun("read", 4000, 40000, 1e6, 2e6))
	put(t, filepath.Join(dir, "gotcmu-mem", "r1", row+".pre"), `{"pid":10,"hz":100,"tasks":{}}`)

	var out, errOut bytes.Buffer
	dat, cpu, gp := filepath.Join(dir, "r.dat"), filepath.Join(dir, "c.dat"), filepath.Join(dir, "c.gp")
	if rc := cmd([]string{"-dat", dat, "-cpudat", cpu, "-gp", gp, "-cpupng", "x-cpu.png", dir}, &out, &errOut); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errOut.String())
	}
	md := out.String()
	// gotcmu: 5 s / 10000 IOs = 500 µs, 4.5 s / 9000 = 500 µs; (70000 switches) / 10000 = 7.0,
	// 63000 / 9000 = 7.0. tcmu-runner: 3.2 s / 8000 = 400, 3.6 s / 9000 = 400 µs; 4.0 a round.
	// fio-rbd: 1.2 s / 12000 = 100 µs; 24000 / 12000 = 2.0.
	for _, want := range []string{
		"| 4k randread QD32 | 900-1000 IOPS | 800-900 IOPS | 1200 IOPS | **1.00x-1.25x** | **0.75x-0.83x** |",
		"| 4k randread QD32 | gotcmu user:rbd | 900-1000 | 3.7-4.1 | 30000 | 90000 | 500 | 7.0 |",
		"| 4k randread QD32 | tcmu-runner user:rbd | 800-900 | 3.3-3.7 | 40000 | 80000 | 400 | 4.0 |",
		"| 4k randread QD32 | fio librbd (whole fio process) | 1200 | 4.9 | 20000 | 50000 | 100 | 2.0 |",
		"| 4k randread QD32 | **1.00x-1.25x** | **1.25x** | **1.75x** | **0.75x-0.83x** | **5.00x** | **3.50x** |",
		// gotcmu's thread 11 is its sysmon: 69000 of 70000 and 62000 of 63000 switches.
		"| 4k randread QD32 | 6.89-6.90 | - | 0.1 | **0.03x** |",
		"| 4k randread QD32 | LIO rd_mcp | 10000 | 41.0 | 1000 | 2000 | 0 (no daemon) | 0 |",
		"| 4k randread QD32 | gotcmu user:mem | 4000 | 16.4 | 1000 | 2000 | - | - |",
		"ramp 0: fio counts the whole run",
		"fio-rbd's one-IO runs taken off: r1/setup-read: 200 ms CPU, 4000 switches; r2/setup-read: 200 ms CPU, 4000 switches.",
		"differed from fio's IO count by at most +1.00%",
		"2 daemon threads exited during a measured window (tcmu-runner-rbd round 1 randread-4k-qd32: 1; tcmu-runner-rbd round 2 randread-4k-qd32: 1)",
		"- gotcmu-mem round 1 randread-4k-qd32: ",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	b, err := os.ReadFile(cpu)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\"4k randread QD32\"\t500.000\t500.000\t500.000\t400.000\t400.000\t400.000\t100.000\t100.000\t100.000\tNaN\tNaN\tNaN"; !strings.Contains(string(b), want) {
		t.Errorf("cpu data lacks %q:\n%s", want, b)
	}
	b, err = os.ReadFile(gp)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"set output \"x-cpu.png\"", "using 2:3:4:xtic(1)", "using 11:12:13:xtic(1)"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("gnuplot script lacks %q:\n%s", want, b)
		}
	}
}

// With a ramp, fio's IO count leaves IOs out: a daemon's window is divided
// by the disk's count, fio-rbd's cost is refused.
func TestReportCostWithRamp(t *testing.T) {
	dir := t.TempDir()
	put(t, filepath.Join(dir, "ramp"), "2\n")
	const row = "randwrite-4k-qd1"
	put(t, filepath.Join(dir, "gotcmu-rbd", "r1", row+".json"), fioRun("write", 100, 1000, 1e7, 2e7))
	put(t, filepath.Join(dir, "gotcmu-rbd", "r1", row+".pre"), `{"pid":1,"hz":100,"utime":0,"stime":0,"tasks":{"1":{"vcsw":0,"ivcsw":0}},"dev":"sdb","dev_ios":{"read":0,"write":0}}`)
	put(t, filepath.Join(dir, "gotcmu-rbd", "r1", row+".post"), `{"pid":1,"hz":100,"utime":60,"stime":0,"tasks":{"1":{"vcsw":1200,"ivcsw":0}},"dev":"sdb","dev_ios":{"read":0,"write":1200}}`)
	put(t, filepath.Join(dir, "fio-rbd", "r1", row+".json"), fioRun("write", 100, 1000, 1e7, 2e7))
	put(t, filepath.Join(dir, "fio-rbd", "r1", row+".rusage"), `{"utime_us":1,"stime_us":1,"nvcsw":1,"nivcsw":1,"exit":0}`)
	put(t, filepath.Join(dir, "fio-rbd", "r1", "setup-write.rusage"), `{"utime_us":1,"stime_us":0,"nvcsw":0,"nivcsw":0,"exit":0}`)
	var out, errOut bytes.Buffer
	if rc := cmd([]string{dir}, &out, &errOut); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errOut.String())
	}
	for _, want := range []string{
		"| 4k randwrite QD1 | gotcmu user:rbd | 100 | 0.4 | 10000 | 20000 | 500 | 1.0 |",
		"| 4k randwrite QD1 | fio librbd (whole fio process) | 100 | 0.4 | 10000 | 20000 | - | - |",
		"fio-rbd round 1 randwrite-4k-qd1: fio ran with ramp_time \"2\"",
		"the requests the tcm_loop disk completed in the window",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSnapshotCostRefusesMismatchedWindows(t *testing.T) {
	for _, c := range []struct{ pre, post snapshot }{
		{snapshot{PID: 1, HZ: 100}, snapshot{PID: 2, HZ: 100}},
		{snapshot{PID: 1, HZ: 100}, snapshot{PID: 1, HZ: 250}},
		{snapshot{Dev: "sdb", DevIOs: &devIOs{}}, snapshot{Dev: "sdc", DevIOs: &devIOs{}}},
		{snapshot{Dev: "sdb", DevIOs: &devIOs{}}, snapshot{}},
	} {
		if _, err := snapshotCost(c.pre, c.post); err == nil {
			t.Errorf("snapshotCost(%+v, %+v) took it", c.pre, c.post)
		}
	}
}

func TestSpanFormat(t *testing.T) {
	var s span
	if got := s.format("%.0f", " IOPS"); got != "-" {
		t.Errorf("empty span %q", got)
	}
	s.add(3.04)
	s.add(2.96)
	if got := s.format("%.1f", "x"); got != "3.0x" {
		t.Errorf("span printing alike: %q", got)
	}
	s.add(4)
	if got := s.format("%.1f", "x"); got != "3.0-4.0x" || s.mid() != 3.48 {
		t.Errorf("span %q, mid %v", got, s.mid())
	}
}

func TestHostLoadBesideTheRow(t *testing.T) {
	dir := t.TempDir()
	put(t, filepath.Join(dir, "ramp"), "0\n")
	put(t, filepath.Join(dir, "host-load"), "1000 0.50\n1005 1.50\n1010 1.00\n1015 9.00\n")
	const row = "randread-4k-qd1"
	put(t, filepath.Join(dir, "gotcmu-mem", "r1", row+".json"), fioRun("read", 100, 1000, 1e7, 2e7))
	put(t, filepath.Join(dir, "gotcmu-mem", "r1", row+".pre"), `{"pid":1,"hz":100,"tasks":{},"time_us":1001000000}`)
	put(t, filepath.Join(dir, "gotcmu-mem", "r1", row+".post"), `{"pid":1,"hz":100,"utime":10,"tasks":{},"time_us":1009000000}`)
	var out, errOut bytes.Buffer
	if rc := cmd([]string{dir}, &out, &errOut); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errOut.String())
	}
	// The window 1001-1009 s: the samples at 1005 and 1010 cover it.
	if want := "| 4k randread QD1 | gotcmu user:mem | 100 | 0.4 | 10000 | 20000 | 100 | 0.0 | 1.2 |"; !strings.Contains(out.String(), want) {
		t.Errorf("markdown lacks %q:\n%s", want, out.String())
	}
	put(t, filepath.Join(dir, "host-load"), "1000\n")
	if rc := cmd([]string{dir}, &out, &errOut); rc != 1 {
		t.Errorf("a broken host-load file: exit %d, want 1", rc)
	}
}
