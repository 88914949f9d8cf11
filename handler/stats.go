package handler

import (
	"sync/atomic"
	"time"
)

// Per-device counters for `gotcmu status` and the Prometheus metrics. They
// are plain atomics updated on the completion path; readers take
// snapshots. Nothing here allocates per command.

// OpClass groups commands for the metrics.
type OpClass int

const (
	ClassRead OpClass = iota
	ClassWrite
	ClassOther
	numClasses
)

func (c OpClass) String() string {
	switch c {
	case ClassRead:
		return "read"
	case ClassWrite:
		return "write"
	}
	return "other"
}

// LatencyBuckets are the upper bounds, in seconds, of the command latency
// histogram: from ring fetch to ring completion.
var LatencyBuckets = []float64{
	25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
	1, 2.5, 5, 10, 30,
}

var latencyBucketNanos = func() []int64 {
	ns := make([]int64, len(LatencyBuckets))
	for i, s := range LatencyBuckets {
		ns[i] = int64(s * 1e9)
	}
	return ns
}()

type classStats struct {
	ops      atomic.Uint64
	bytes    atomic.Uint64
	latSum   atomic.Int64 // nanoseconds
	buckets  [20]atomic.Uint64
	overflow atomic.Uint64 // above the last bucket
}

type commandStats struct {
	classes [numClasses]classStats
	// bySenseKey counts CHECK CONDITIONs by sense key (0-15); busy and
	// taskSetFull count those statuses.
	bySenseKey  [16]atomic.Uint64
	busy        atomic.Uint64
	taskSetFull atomic.Uint64
}

// record accounts one completed command.
func (s *commandStats) record(c *Cmd, now time.Time) {
	if len(c.CDB) == 0 {
		return
	}
	class := c.row.class()
	cs := &s.classes[class]
	cs.ops.Add(1)
	if c.Status == statusGood && class != ClassOther {
		cs.bytes.Add(uint64(c.DataLen()))
	}
	lat := now.Sub(c.start).Nanoseconds()
	cs.latSum.Add(lat)
	i := 0
	for i < len(latencyBucketNanos) && lat > latencyBucketNanos[i] {
		i++
	}
	if i < len(latencyBucketNanos) {
		cs.buckets[i].Add(1)
	} else {
		cs.overflow.Add(1)
	}
	switch c.Status {
	case statusCheckCondition:
		s.bySenseKey[senseKeyOf(c.Sense)].Add(1)
	case statusBusy:
		s.busy.Add(1)
	case statusTaskSetFull:
		s.taskSetFull.Add(1)
	}
}

// senseKeyOf reads the sense key of fixed (0x70/0x71) or descriptor
// (0x72/0x73) sense data.
func senseKeyOf(b []byte) uint8 {
	switch {
	case len(b) > 2 && b[0]&0x7e == 0x70:
		return b[2] & 0xf
	case len(b) > 1 && b[0]&0x7e == 0x72:
		return b[1] & 0xf
	}
	return 0
}

// ClassSnapshot is the state of one command class.
type ClassSnapshot struct {
	Ops, Bytes uint64
	// LatencySum is the total latency; Buckets are cumulative counts per
	// LatencyBuckets bound, as Prometheus histograms want them.
	LatencySum time.Duration
	Buckets    []uint64
}

// StatsSnapshot is a device's counters at one moment.
type StatsSnapshot struct {
	Classes     [numClasses]ClassSnapshot
	BySenseKey  [16]uint64
	Busy        uint64
	TaskSetFull uint64
	// RingOutstanding is how many commands are fetched and not completed.
	RingOutstanding int
	LockTransitions uint64
	// BusyFor is how long the device's run of BUSY answers has lasted (0:
	// none); BusyEscalations counts the runs that passed their bound.
	BusyFor         time.Duration
	BusyEscalations uint64
}

func (d *Device) snapshot() StatsSnapshot {
	var s StatsSnapshot
	for i := range s.Classes {
		cs := &d.cstats.classes[i]
		snap := ClassSnapshot{Ops: cs.ops.Load(), Bytes: cs.bytes.Load(), LatencySum: time.Duration(cs.latSum.Load())}
		snap.Buckets = make([]uint64, len(LatencyBuckets))
		var cum uint64
		for b := range LatencyBuckets {
			cum += cs.buckets[b].Load()
			snap.Buckets[b] = cum
		}
		s.Classes[i] = snap
	}
	for k := range s.BySenseKey {
		s.BySenseKey[k] = d.cstats.bySenseKey[k].Load()
	}
	s.Busy = d.cstats.busy.Load()
	s.TaskSetFull = d.cstats.taskSetFull.Load()
	s.RingOutstanding = d.ring.Outstanding()
	if d.gate != nil {
		s.LockTransitions = d.gate.Status().Acquisitions
	}
	b := d.BusyState()
	s.BusyFor, s.BusyEscalations = b.For, b.Escalations
	return s
}
