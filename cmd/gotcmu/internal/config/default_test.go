package config

import (
	"net"
	"testing"

	"github.com/gotcmu/gotcmu/handler"
)

// TestDefaultMetricsOnLoopback: with no configuration file and no flag the
// metrics endpoint, which names every pool, image and device, listens on
// the loopback interface only (issue 8 point 4).
func TestDefaultMetricsOnLoopback(t *testing.T) {
	host, port, err := net.SplitHostPort(Default().MetricsAddr)
	if err != nil {
		t.Fatalf("default metrics address %q: %v", Default().MetricsAddr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Errorf("default metrics address %q listens beyond loopback", Default().MetricsAddr)
	}
	if port != "9560" {
		t.Errorf("default metrics port %s, want 9560", port)
	}
}

// TestDefaultBusyBoundsAreTheHandlers: an empty file gives the bounds of
// BUSY the handler documents and uses when nothing sets them.
func TestDefaultBusyBoundsAreTheHandlers(t *testing.T) {
	d := Default()
	got := handler.BusyBounds{Lock: d.BusyBoundLock, Conn: d.BusyBoundConn, Transient: d.BusyBoundTransient}
	if got != handler.DefaultBusyBounds {
		t.Errorf("default busy bounds %+v, handler's %+v", got, handler.DefaultBusyBounds)
	}
}

// TestDefaultOpensAreTheHandlers: an empty file gives the open timeout
// and the number of opens at once the handler uses when nothing sets them.
func TestDefaultOpensAreTheHandlers(t *testing.T) {
	d := Default()
	if d.OpenTimeout != handler.DefaultOpenTimeout || d.OpenConcurrency != handler.DefaultOpenConcurrency {
		t.Errorf("default open_timeout %v and open_concurrency %d, handler's %v and %d",
			d.OpenTimeout, d.OpenConcurrency, handler.DefaultOpenTimeout, handler.DefaultOpenConcurrency)
	}
}
