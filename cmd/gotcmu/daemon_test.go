package main

import (
	"testing"

	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/config"
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
