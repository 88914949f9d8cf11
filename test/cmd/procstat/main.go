package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Task is one thread's counters.
type Task struct {
	// Name is the thread's comm (librados names its threads, e.g.
	// msgr-worker-0; the Go runtime's threads carry the program's name),
	// so that a cost can be put on the thread that pays it.
	Name  string `json:"name,omitempty"`
	Vcsw  int64  `json:"vcsw"`
	Ivcsw int64  `json:"ivcsw"`
	RunNs int64  `json:"run_ns"`
}

// DevIOs are a block device's completed requests.
type DevIOs struct {
	Read    int64 `json:"read"`
	Write   int64 `json:"write"`
	Discard int64 `json:"discard"`
	Flush   int64 `json:"flush"`
}

// Snapshot is what procstat prints.
type Snapshot struct {
	PID    int             `json:"pid,omitempty"`
	HZ     int             `json:"hz,omitempty"`
	Utime  int64           `json:"utime"`
	Stime  int64           `json:"stime"`
	Tasks  map[string]Task `json:"tasks,omitempty"`
	Dev    string          `json:"dev,omitempty"`
	DevIOs *DevIOs         `json:"dev_ios,omitempty"`
	TimeUs int64           `json:"time_us"`
}

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("procstat", flag.ContinueOnError)
	fl.SetOutput(stderr)
	pid := fl.Int("pid", 0, "the process (0: none)")
	dev := fl.String("dev", "", "the block device's `name` under /sys/block (empty: none)")
	hz := fl.Int("hz", 100, "USER_HZ, the unit of utime and stime (getconf CLK_TCK)")
	root := fl.String("root", "/", "where /proc and /sys are")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 0 || (*pid == 0 && *dev == "") {
		fmt.Fprintln(stderr, "usage: procstat [-pid PID] [-dev NAME] [-hz TICKS]")
		return 2
	}
	s := Snapshot{TimeUs: time.Now().UnixMicro()}
	if *pid != 0 {
		if err := readProc(&s, *root, *pid); err != nil {
			fmt.Fprintf(stderr, "procstat: %v\n", err)
			return 1
		}
		s.HZ = *hz
	}
	if *dev != "" {
		b, err := os.ReadFile(filepath.Join(*root, "sys/block", filepath.Base(*dev), "stat"))
		if err != nil {
			fmt.Fprintf(stderr, "procstat: %v\n", err)
			return 1
		}
		ios, err := parseBlockStat(string(b))
		if err != nil {
			fmt.Fprintf(stderr, "procstat: %s: %v\n", *dev, err)
			return 1
		}
		s.Dev, s.DevIOs = filepath.Base(*dev), &ios
	}
	b, _ := json.Marshal(s)
	stdout.Write(append(b, '\n'))
	return 0
}

func readProc(s *Snapshot, root string, pid int) error {
	dir := filepath.Join(root, "proc", strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return err
	}
	if s.Utime, s.Stime, err = parseStat(string(b)); err != nil {
		return fmt.Errorf("%s/stat: %w", dir, err)
	}
	s.PID = pid
	ents, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return err
	}
	s.Tasks = map[string]Task{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, "task", e.Name(), "status"))
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // exited since the listing
		}
		if err != nil {
			return err
		}
		t, err := parseStatus(b)
		if err != nil {
			return fmt.Errorf("task %s: %w", e.Name(), err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "task", e.Name(), "schedstat")); err == nil {
			t.RunNs, _ = parseSchedstat(string(b))
		}
		s.Tasks[e.Name()] = t
	}
	return nil
}

// parseStat returns utime and stime (fields 14 and 15) of /proc/PID/stat.
// The command name, field 2, is in parentheses and may hold spaces and
// parentheses itself: the fields are counted from its last ')'.
func parseStat(s string) (utime, stime int64, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("no ')' after the command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): field n is f[n-3].
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	if utime, err = strconv.ParseInt(f[14-3], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("utime: %w", err)
	}
	if stime, err = strconv.ParseInt(f[15-3], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stime: %w", err)
	}
	return utime, stime, nil
}

// parseStatus returns a thread's context switches from /proc/PID/task/TID/status.
func parseStatus(b []byte) (Task, error) {
	var t Task
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "Name":
			t.Name = strings.TrimSpace(v)
			continue
		case "voluntary_ctxt_switches":
			dst = &t.Vcsw
		case "nonvoluntary_ctxt_switches":
			dst = &t.Ivcsw
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return Task{}, fmt.Errorf("%s: %w", k, err)
		}
		*dst = n
		seen++
	}
	if seen != 2 {
		return Task{}, errors.New("no voluntary_ctxt_switches and nonvoluntary_ctxt_switches")
	}
	return t, nil
}

// parseSchedstat returns the first field of /proc/PID/task/TID/schedstat:
// the time the thread has run, in ns.
func parseSchedstat(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("empty schedstat")
	}
	return strconv.ParseInt(f[0], 10, 64)
}

// parseBlockStat reads /sys/block/NAME/stat (Documentation/block/stat.rst):
// field 1 read I/Os, 5 write I/Os, 12 discard I/Os (4.18+), 16 flush
// requests (5.5+); the later ones are zero on kernels without them.
func parseBlockStat(s string) (DevIOs, error) {
	f := strings.Fields(s)
	if len(f) < 11 {
		return DevIOs{}, fmt.Errorf("%d fields, want at least 11", len(f))
	}
	get := func(n int) (int64, error) {
		if n > len(f) {
			return 0, nil
		}
		return strconv.ParseInt(f[n-1], 10, 64)
	}
	var d DevIOs
	for _, x := range []struct {
		n   int
		dst *int64
	}{{1, &d.Read}, {5, &d.Write}, {12, &d.Discard}, {16, &d.Flush}} {
		v, err := get(x.n)
		if err != nil {
			return DevIOs{}, fmt.Errorf("field %d: %w", x.n, err)
		}
		*x.dst = v
	}
	return d, nil
}
