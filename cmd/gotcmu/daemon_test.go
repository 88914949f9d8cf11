package main

import (
	"testing"
	"time"

	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/config"
	"github.com/gotcmu/gotcmu/handler"
)

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

// A busy bound given as a flag wins over the file; the others keep the
// file's.
func TestBusyBoundFlagsOverrideTheFile(t *testing.T) {
	fileCfg := config.Default()
	fileCfg.BusyBoundLock, fileCfg.BusyBoundConn = 90*time.Second, 200*time.Second
	o := options{busyConn: 45 * time.Second, set: map[string]bool{"busy-bound-connection": true}}
	got := busyBounds(o.apply(fileCfg))
	want := handler.BusyBounds{Lock: 90 * time.Second, Conn: 45 * time.Second, Transient: config.Default().BusyBoundTransient}
	if got != want {
		t.Errorf("busy bounds %+v, want %+v", got, want)
	}
}
