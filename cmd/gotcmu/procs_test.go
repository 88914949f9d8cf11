package main

import "testing"

// TestProcsFor: at least minProcs Ps unless the operator set GOMAXPROCS,
// and never fewer than the runtime chose.
func TestProcsFor(t *testing.T) {
	for _, tc := range []struct {
		env           string
		current, want int
	}{
		{"", 2, minProcs},
		{"", 1, minProcs},
		{"", 32, 32},
		{"2", 2, 2},
		{"1", 1, 1},
	} {
		if got := procsFor(tc.env, tc.current); got != tc.want {
			t.Errorf("procsFor(%q, %d) = %d, want %d", tc.env, tc.current, got, tc.want)
		}
	}
}
