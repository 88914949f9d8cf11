package main

import "testing"

// TestSCSICounts: the counters as sysfs prints them, and the figure of a
// window between two reads.
func TestSCSICounts(t *testing.T) {
	for in, want := range map[string]int64{"0x1a2b\n": 0x1a2b, "0x0\n": 0, "17": 17} {
		if got, err := parseCount(in); err != nil || got != want {
			t.Errorf("parseCount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseCount("lots"); err == nil {
		t.Error("parseCount took a counter that is not a number")
	}
	before := scsiCounts{done: 100, errs: 2, timeouts: 0}
	after := scsiCounts{done: 150, errs: 7, timeouts: 1}
	if got, want := after.since(before).String(), "45 GOOD, 5 other than GOOD (BUSY, CHECK CONDITION or a host error); midlayer timeouts 1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
