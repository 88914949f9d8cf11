package ackstream

import (
	"testing"
	"time"
)

// steady returns samples every 100 ms from 0 to end with perSec writes per
// second, except none between the Stall's bounds.
func steady(end time.Duration, perSec int64, stallFrom, stallTo time.Duration) []Sample {
	var s []Sample
	var n int64
	for t := time.Duration(0); t <= end; t += 100 * time.Millisecond {
		if t > 0 && (t <= stallFrom || t > stallTo) {
			n += perSec / 10
		}
		s = append(s, Sample{t, n})
	}
	return s
}

func TestRate(t *testing.T) {
	s := steady(10*time.Second, 100, 20*time.Second, 20*time.Second)
	if r := Rate(s, time.Second, 6*time.Second); r != 100 {
		t.Fatalf("rate = %v, want 100", r)
	}
	if r := Rate(s, time.Second, time.Second); r != 0 {
		t.Fatalf("empty window rate = %v, want 0", r)
	}
}

func TestLongestStall(t *testing.T) {
	s := steady(30*time.Second, 100, 10*time.Second, 17*time.Second)
	g := LongestStall(s, 5*time.Second, 30*time.Second)
	if g.From != 10*time.Second || g.To != 17*time.Second+100*time.Millisecond {
		t.Fatalf("Stall = %v..%v, want 10s..17.1s", g.From, g.To)
	}
	t.Run("still_on_at_the_end", func(t *testing.T) {
		s := steady(30*time.Second, 100, 10*time.Second, time.Hour)
		g := LongestStall(s, 5*time.Second, 30*time.Second)
		if g.From != 10*time.Second || g.To != 30*time.Second {
			t.Fatalf("Stall = %v..%v, want 10s..30s", g.From, g.To)
		}
	})
	t.Run("none", func(t *testing.T) {
		s := steady(30*time.Second, 100, time.Hour, time.Hour)
		if g := LongestStall(s, 5*time.Second, 30*time.Second); g.Length() != 100*time.Millisecond {
			t.Fatalf("Stall of %v in a steady stream, want one Sample interval", g.Length())
		}
	})
}

func TestFullSpeedAt(t *testing.T) {
	// 100/s, nothing from 10 s to 20 s, then 50/s until 30 s, 100/s after.
	var s []Sample
	var n int64
	for t := time.Duration(0); t <= 60*time.Second; t += 100 * time.Millisecond {
		switch {
		case t > 10*time.Second && t <= 20*time.Second:
		case t > 20*time.Second && t <= 30*time.Second:
			n += 5
		case t > 0:
			n += 10
		}
		s = append(s, Sample{t, n})
	}
	at, ok := FullSpeedAt(s, 20*time.Second, 60*time.Second, 5*time.Second, 100, 0.75)
	// A window from 28.8 s holds 1.2 s at 50/s and 3.8 s at 100/s: 88/s.
	if !ok || at < 27*time.Second || at > 29*time.Second {
		t.Fatalf("full speed at %v (%v), want between 27 s and 29 s", at, ok)
	}
	if _, ok := FullSpeedAt(s, 20*time.Second, 30*time.Second, 5*time.Second, 100, 0.75); ok {
		t.Fatal("full speed found in a stretch at half speed")
	}
}

func TestCountAcks(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"ackwriter-log v1 run=1\nW 1 1\nA 1 1\n", 1},
		{"A 1 1\nW 2 2\nA 2 2\n", 2},
		{"W 3 3\n", 0},
		{"", 0},
	} {
		if got := countAcks([]byte(c.in)); got != c.want {
			t.Errorf("countAcks(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestFirstAt(t *testing.T) {
	s := steady(10*time.Second, 100, 2*time.Second, 5*time.Second)
	// 200 acknowledged by 2 s, none until 5.1 s.
	if at := FirstAt(s, 210); at != 5100*time.Millisecond {
		t.Fatalf("FirstAt = %v, want 5.1s", at)
	}
}
