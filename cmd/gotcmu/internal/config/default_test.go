package config

import (
	"net"
	"testing"
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
