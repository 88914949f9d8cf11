package main

import "time"

// sample is the number of writes acknowledged since the stream started,
// at a time since the stream started.
type sample struct {
	at    time.Duration
	acked int64
}

// ackedAt returns the count of the last sample at or before t (0 before
// the first).
func ackedAt(s []sample, t time.Duration) int64 {
	var n int64
	for _, x := range s {
		if x.at > t {
			break
		}
		n = x.acked
	}
	return n
}

// rate returns the writes acknowledged per second over [from, to].
func rate(s []sample, from, to time.Duration) float64 {
	if to <= from {
		return 0
	}
	return float64(ackedAt(s, to)-ackedAt(s, from)) / (to - from).Seconds()
}

// stall is a time in which no write was acknowledged.
type stall struct {
	from, to time.Duration
}

func (g stall) length() time.Duration { return g.to - g.from }

// longestStall returns the longest interval inside [from, to] in which the
// acknowledged count did not move, measured between the samples that saw
// it move (so to a resolution of the sampling interval). A stall still on
// at to ends at to.
func longestStall(s []sample, from, to time.Duration) stall {
	var best stall
	last := from
	prev := ackedAt(s, from)
	for _, x := range s {
		if x.at <= from {
			continue
		}
		if x.at > to {
			break
		}
		if x.acked != prev {
			if g := (stall{last, x.at}); g.length() > best.length() {
				best = g
			}
			last, prev = x.at, x.acked
		}
	}
	if g := (stall{last, to}); g.length() > best.length() {
		best = g
	}
	return best
}

// fullSpeedAt returns the start of the first window of length w, starting
// at or after from and ending by to, over which the rate reached frac of
// base; false if none did.
func fullSpeedAt(s []sample, from, to, w time.Duration, base, frac float64) (time.Duration, bool) {
	for _, x := range s {
		if x.at < from {
			continue
		}
		if x.at+w > to {
			break
		}
		if rate(s, x.at, x.at+w) >= frac*base {
			return x.at, true
		}
	}
	return 0, false
}

// firstAt returns the time of the first sample with at least n writes
// acknowledged (the last sample's if none has).
func firstAt(s []sample, n int64) time.Duration {
	for _, x := range s {
		if x.acked >= n {
			return x.at
		}
	}
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].at
}
