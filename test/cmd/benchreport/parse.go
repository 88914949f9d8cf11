package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
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
