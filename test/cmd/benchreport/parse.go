package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// readFio reads fio's JSON output: the first job, its read or its write
// side, whichever did the IO. Its IO count is both sides' total_ios, which
// fio counts after the ramp only.
func readFio(path string) (result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return result{}, err
	}
	// fio may print notes before the JSON document.
	if i := bytes.IndexByte(b, '{'); i > 0 {
		b = b[i:]
	}
	type lat struct {
		Mean       float64            `json:"mean"`
		Percentile map[string]float64 `json:"percentile"`
	}
	type side struct {
		IOPS     float64 `json:"iops"`
		BWBytes  float64 `json:"bw_bytes"`
		TotalIOs int64   `json:"total_ios"`
		Lat      lat     `json:"lat_ns"`
		Clat     lat     `json:"clat_ns"`
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
	j := out.Jobs[0]
	s := j.Read
	if j.Write.IOPS > s.IOPS {
		s = j.Write
	}
	// lat_ns has percentiles with --lat_percentiles=1; clat_ns otherwise.
	p99, ok := s.Lat.Percentile["99.000000"]
	if !ok {
		p99 = s.Clat.Percentile["99.000000"]
	}
	return result{iops: s.IOPS, mbps: s.BWBytes / 1e6, latUs: s.Lat.Mean / 1e3, p99Us: p99 / 1e3,
		ios: j.Read.TotalIOs + j.Write.TotalIOs}, nil
}

// snapshot is test/cmd/procstat's output.
type snapshot struct {
	PID   int   `json:"pid"`
	HZ    int   `json:"hz"`
	Utime int64 `json:"utime"`
	Stime int64 `json:"stime"`
	Tasks map[string]struct {
		Vcsw  int64 `json:"vcsw"`
		Ivcsw int64 `json:"ivcsw"`
	} `json:"tasks"`
	Dev    string  `json:"dev"`
	DevIOs *devIOs `json:"dev_ios"`
	TimeUs int64   `json:"time_us"`
}

type devIOs struct {
	Read    int64 `json:"read"`
	Write   int64 `json:"write"`
	Discard int64 `json:"discard"`
	Flush   int64 `json:"flush"`
}

func (d devIOs) sum() int64 { return d.Read + d.Write + d.Discard + d.Flush }

func readSnapshot(path string) (snapshot, error) {
	var s snapshot
	return s, readJSON(path, &s)
}

// usage is test/cmd/rusage's output.
type usage struct {
	UtimeUs int64 `json:"utime_us"`
	StimeUs int64 `json:"stime_us"`
	Nvcsw   int64 `json:"nvcsw"`
	Nivcsw  int64 `json:"nivcsw"`
	StartUs int64 `json:"start_us"`
	WallUs  int64 `json:"wall_us"`
	Exit    int   `json:"exit"`
}

func readRusage(path string) (usage, error) {
	var u usage
	if err := readJSON(path, &u); err != nil {
		return u, err
	}
	if u.Exit != 0 {
		return u, fmt.Errorf("%s: the command exited %d", path, u.Exit)
	}
	return u, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// loadSample is one line of bench.sh's host-load file: the CPU this machine
// spent outside the guest in the 5 s before t, in cores.
type loadSample struct {
	t, cores float64
}

// readHostLoad reads "UNIX-SECONDS CORES" lines; a missing file is no samples.
func readHostLoad(path string) ([]loadSample, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []loadSample
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var s loadSample
		var err1, err2 error
		if len(f) == 2 {
			s.t, err1 = strconv.ParseFloat(f[0], 64)
			s.cores, err2 = strconv.ParseFloat(f[1], 64)
		}
		if len(f) != 2 || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s:%d: want UNIX-SECONDS CORES, have %q", path, i+1, line)
		}
		out = append(out, s)
	}
	return out, nil
}

// meanLoad is the mean of the samples covering the window [t0, t1]: those
// taken after t0 and up to one interval after t1. False when there are none.
func meanLoad(ls []loadSample, t0, t1 float64) (float64, bool) {
	const interval = 5
	var sum float64
	var n int
	for _, l := range ls {
		if l.t > t0 && l.t <= t1+interval {
			sum += l.cores
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}
