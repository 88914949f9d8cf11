//go:build !nautilus

package rbd

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
)

func TestOSDOpTimeoutRule(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name                           string
		user, cluster, grace, interval time.Duration
		want                           time.Duration
	}{
		{"user_value_above_heartbeats", 30 * s, 0, 20 * s, 6 * s, 30 * s},
		{"user_value_wins_over_cluster", 60 * s, 40 * s, 20 * s, 6 * s, 60 * s},
		{"user_value_too_short_cluster_default_used", 20 * s, 40 * s, 20 * s, 6 * s, 40 * s},
		{"user_value_equal_to_heartbeats_is_too_short", 26 * s, 0, 20 * s, 6 * s, 31 * s},
		{"nothing_set_heartbeats_plus_5", 0, 0, 20 * s, 6 * s, 31 * s},
		{"cluster_default_too_short", 0, 10 * s, 20 * s, 6 * s, 31 * s},
		{"short_heartbeats_of_the_test_cluster", 7 * s, 30 * s, 4 * s, 2 * s, 7 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := osdOpTimeout(tt.user, tt.cluster, tt.grace, tt.interval); got != tt.want {
				t.Errorf("osdOpTimeout = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCephErrnoKeepsErrno(t *testing.T) {
	// go-ceph's errors carry the errno only behind ErrorCode.
	err := fmt.Errorf("open pool: %w", cephErrno(rados.ErrNotFound))
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("%v is not ENOENT", err)
	}
	if !errors.Is(err, rados.ErrNotFound) {
		t.Errorf("%v no longer is rados.ErrNotFound", err)
	}
	if got := cephErrno(nil); got != nil {
		t.Errorf("cephErrno(nil) = %v", got)
	}
	if plain := errors.New("x"); cephErrno(plain) != plain {
		t.Error("cephErrno changed an error without an errno")
	}
	if err := getError(-5); !errors.Is(err, syscall.EIO) {
		t.Errorf("getError(-5) = %v, want EIO", err)
	}
	if err := getError(3); err != nil {
		t.Errorf("getError(3) = %v, want nil", err)
	}
}
