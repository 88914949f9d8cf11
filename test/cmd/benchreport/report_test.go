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
	if want := "\"4k randread QD1\"\t1.500\t0.900\tNaN\tNaN"; lines[1] != want {
		t.Errorf("first data line %q, want %q", lines[1], want)
	}
}

func TestReportRefusesAnEmptyDirectory(t *testing.T) {
	var out, errOut bytes.Buffer
	if rc := cmd([]string{t.TempDir()}, &out, &errOut); rc != 1 || !strings.Contains(errOut.String(), "no fio results") {
		t.Fatalf("exit %d, stderr %q; want 1 and a message", rc, errOut.String())
	}
}
