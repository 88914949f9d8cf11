package netlink

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests run the Client on real generic netlink sockets, joined to the
// "notify" group of the "nlctrl" family that every kernel with generic
// netlink has, to check what the fake cannot: that Close and context
// cancellation really wake a recvmsg blocked in the kernel. No privilege is
// needed.

func dialNlctrl(t *testing.T) *Client {
	t.Helper()
	c, err := dial(testLogger(t), "nlctrl", "notify")
	if errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPROTONOSUPPORT) {
		t.Skipf("no generic netlink sockets in this environment: %v", err)
	}
	if err != nil {
		t.Fatalf("dial nlctrl: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRealSocketCloseUnblocksReceive(t *testing.T) {
	c := dialNlctrl(t)
	r := startReceive(t, c)
	// Give Receive time to block in recvmsg: nothing is sent to the group.
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-r.done:
		t.Fatalf("Receive returned %v before Close", err)
	default:
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.wait(t); err != nil {
		t.Errorf("Receive after Close = %v, want nil", err)
	}
}

func TestRealSocketCancelUnblocksReceive(t *testing.T) {
	c := dialNlctrl(t)
	// Twice: the second Receive must clear the deadline the first one's
	// cancellation left on the socket, and block again.
	for i := range 2 {
		r := startReceive(t, c)
		time.Sleep(100 * time.Millisecond)
		select {
		case err := <-r.done:
			t.Fatalf("round %d: Receive returned %v before cancel", i, err)
		default:
		}
		if err := r.stop(t); err != nil {
			t.Errorf("round %d: Receive after cancel = %v, want nil", i, err)
		}
	}
}
