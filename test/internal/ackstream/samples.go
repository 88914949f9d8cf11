package ackstream

import "time"

// Sample is the number of writes acknowledged since the stream started,
// at a time since the stream started.
type Sample struct {
	At    time.Duration
	Acked int64
}

// AckedAt returns the count of the last Sample at or before t (0 before
// the first).
func AckedAt(s []Sample, t time.Duration) int64 {
	var n int64
	for _, x := range s {
		if x.At > t {
			break
		}
		n = x.Acked
	}
	return n
}

// Rate returns the writes acknowledged per second over [from, to].
func Rate(s []Sample, from, to time.Duration) float64 {
	if to <= from {
		return 0
	}
	return float64(AckedAt(s, to)-AckedAt(s, from)) / (to - from).Seconds()
}

// Stall is a time in which no write was acknowledged.
type Stall struct {
	From, To time.Duration
}

func (g Stall) Length() time.Duration { return g.To - g.From }

// LongestStall returns the longest interval inside [from, to] in which the
// acknowledged count did not move, measured between the samples that saw
// it move (so to a resolution of the sampling interval). A Stall still on
// at to ends at to.
func LongestStall(s []Sample, from, to time.Duration) Stall {
	var best Stall
	last := from
	prev := AckedAt(s, from)
	for _, x := range s {
		if x.At <= from {
			continue
		}
		if x.At > to {
			break
		}
		if x.Acked != prev {
			if g := (Stall{last, x.At}); g.Length() > best.Length() {
				best = g
			}
			last, prev = x.At, x.Acked
		}
	}
	if g := (Stall{last, to}); g.Length() > best.Length() {
		best = g
	}
	return best
}

// FullSpeedAt returns the start of the first window of length w, starting
// at or after from and ending by to, over which the rate reached frac of
// base; false if none did.
func FullSpeedAt(s []Sample, from, to, w time.Duration, base, frac float64) (time.Duration, bool) {
	for _, x := range s {
		if x.At < from {
			continue
		}
		if x.At+w > to {
			break
		}
		if Rate(s, x.At, x.At+w) >= frac*base {
			return x.At, true
		}
	}
	return 0, false
}

// FirstAt returns the time of the first Sample with at least n writes
// acknowledged (the last Sample's if none has).
func FirstAt(s []Sample, n int64) time.Duration {
	for _, x := range s {
		if x.Acked >= n {
			return x.At
		}
	}
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].At
}
