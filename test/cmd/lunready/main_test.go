package main

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
)

// A device that fails a few times before it answers is retried, and its
// failures counted; one that never answers makes the run fail and is named.
func TestRun(t *testing.T) {
	var mu sync.Mutex
	tries := map[string]int{}
	read := func(p string) error {
		mu.Lock()
		defer mu.Unlock()
		tries[p]++
		switch {
		case p == "never":
			return errors.New("EIO")
		case p == "late" && tries[p] < 3:
			return errors.New("EIO")
		}
		return nil
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"-retry", "1ms", "-timeout", "1s", "ok", "late"}, &out, &errb, read, nil); rc != 0 {
		t.Fatalf("rc %d, stderr %q", rc, errb.String())
	}
	if !strings.HasSuffix(out.String(), " 2 2\n") || tries["late"] != 3 {
		t.Errorf("output %q, tries %v", out.String(), tries)
	}
	out.Reset()
	errb.Reset()
	if rc := run([]string{"-retry", "1ms", "-timeout", "50ms", "ok", "never"}, &out, &errb, read, nil); rc != 1 {
		t.Errorf("rc %d with a device that never answers", rc)
	}
	if fields := strings.Fields(out.String()); len(fields) != 3 || fields[1] != "1" || fields[2] == "0" || !strings.Contains(errb.String(), "never") {
		t.Errorf("output %q, stderr %q", out.String(), errb.String())
	}
}

// -write writes where a run without it reads.
func TestRunWrite(t *testing.T) {
	var reads, writes int
	var mu sync.Mutex
	count := func(n *int) ioFunc {
		return func(string) error { mu.Lock(); *n++; mu.Unlock(); return nil }
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"-write", "a", "b"}, &out, &errb, count(&reads), count(&writes)); rc != 0 || reads != 0 || writes != 2 {
		t.Errorf("rc %d, %d reads, %d writes; want 0, 0, 2", rc, reads, writes)
	}
}
