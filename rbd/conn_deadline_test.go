//go:build !nautilus

package rbd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A deadline on opening a device is only a deadline if the blocking C call
// ends with it: rados_connect against monitors that never answer waits
// client_mount_timeout (300 s by default), whatever the Go context says.
// connect turns the context's deadline into client_mount_timeout; here the
// synchronous call itself, with no goroutine to abandon it, must return
// close to the deadline. Needs librados, no cluster.
func TestConnectEndsAtTheDeadline(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "silent.conf")
	// Nothing listens on these ports: every attempt to reach a monitor fails
	// and librados keeps retrying until client_mount_timeout.
	if err := os.WriteFile(conf, []byte("[global]\nmon host = [v2:127.0.0.1:1,v1:127.0.0.1:2]\nauth client required = none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const deadline = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	conn, _, err := connect(ctx, connKey{confPath: conf})
	took := time.Since(start)
	if err == nil {
		conn.Shutdown()
		t.Fatal("connected to monitors nobody answers")
	}
	t.Logf("rados_connect returned after %v: %v", took.Round(time.Millisecond), err)
	if took > deadline+3*time.Second {
		t.Errorf("rados_connect returned %v after the start with a %v deadline: the C call does not end with the deadline", took, deadline)
	}
	if !errors.Is(err, syscall.ETIMEDOUT) {
		t.Errorf("error %v, want ETIMEDOUT (the open is retried as a timeout, not refused)", err)
	}
}
