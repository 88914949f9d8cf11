package main

import (
	"slices"
	"sync"
	"testing"

	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/config"
	"github.com/gotcmu/gotcmu/netlink"
)

func TestEventQueueKeepsOrderWithoutBlocking(t *testing.T) {
	q := newEventQueue()
	// Far more than any channel buffer: push must never wait for pop.
	const n = 10000
	for i := range n {
		q.push(netlink.Event{Minor: uint32(i)})
	}
	var got []uint32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev, ok := q.pop(); ok; ev, ok = q.pop() {
			got = append(got, ev.Minor)
		}
	}()
	q.push(netlink.Event{Minor: n})
	q.close()
	wg.Wait()
	if len(got) != n+1 {
		t.Fatalf("popped %d events, want %d", len(got), n+1)
	}
	if !slices.IsSorted(got) {
		t.Error("events popped out of order")
	}
}

func TestOptionsOverrideTheFileOnlyWhenGiven(t *testing.T) {
	o := options{logLevel: 1, metricsAddr: "", set: map[string]bool{"log-level": true}}
	cfg := o.apply(configWith(4, "127.0.0.1:1"))
	if cfg.LogLevel != 1 {
		t.Errorf("log level %d, want the flag's 1", cfg.LogLevel)
	}
	if cfg.MetricsAddr != "127.0.0.1:1" {
		t.Errorf("metrics address %q, want the file's (flag not given)", cfg.MetricsAddr)
	}
	o.debug = true
	if cfg := o.apply(configWith(2, "")); cfg.LogLevel != 5 {
		t.Errorf("-d gives log level %d, want 5", cfg.LogLevel)
	}
}

func configWith(level int, metrics string) config.Config {
	c := config.Default()
	c.LogLevel, c.MetricsAddr = level, metrics
	return c
}
