//go:build !nautilus

package rbd

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/ceph/go-ceph/rados"
)

// connKey is what clients must agree on to be shared: the same cluster,
// identity and op timeout.
type connKey struct {
	confPath string
	id       string
	timeout  time.Duration // the osd_op_timeout asked for, before the rule
}

func keyOf(c Config) connKey {
	return connKey{confPath: c.ConfPath, id: c.ID, timeout: c.OSDOpTimeout}
}

// osdOpTimeout is tcmu-runner's timer_check_and_set_def (rbd.c): an OSD
// operation must not time out before the cluster has had the chance to mark
// an unresponsive OSD down (osd_heartbeat_grace + osd_heartbeat_interval),
// otherwise a command fails that a map change would have redirected. The
// user's value wins if it is longer than that, then the cluster's
// rados_osd_op_timeout, else grace+interval+5 s.
func osdOpTimeout(user, clusterDefault, grace, interval time.Duration) time.Duration {
	floor := grace + interval
	switch {
	case user > floor:
		return user
	case clusterDefault > floor:
		return clusterDefault
	default:
		return floor + 5*time.Second
	}
}

// connect makes a new connected client for key, with librbd's cache off
// (a gateway must not acknowledge a write that another gateway cannot
// read after failover), the osd_op_timeout rule applied and then the
// options of extra (name, value) set. It returns the timeout in force.
func connect(ctx context.Context, key connKey, extra ...[2]string) (*rados.Conn, time.Duration, error) {
	id := key.id
	if id == "" {
		id = "admin"
	}
	conn, err := rados.NewConnWithUser(id)
	if err != nil {
		return nil, 0, fmt.Errorf("create rados client %s: %w", id, cephErrno(err))
	}
	ok := false
	defer func() {
		if !ok {
			conn.Shutdown()
		}
	}()
	if key.confPath != "" {
		err = conn.ReadConfigFile(key.confPath)
	} else {
		err = conn.ReadDefaultConfigFile()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read ceph config %q: %w", key.confPath, cephErrno(err))
	}
	// Measured on the micro cluster, 4 KiB random writes at QD32 on one
	// image: fio --ioengine=rbd 7.8-9.4 K IOPS with librbd's default cache
	// (rbd_cache_policy writearound completes writes before the OSDs
	// have them), 3.0 K with rbd_cache=false, and gotcmu 3.0-3.5 K: a
	// comparison with fio must give fio this setting too.
	if err := conn.SetConfigOption("rbd_cache", "false"); err != nil {
		return nil, 0, fmt.Errorf("set rbd_cache: %w", cephErrno(err))
	}
	// A discard must leave zeros behind, also for the parts of the range
	// smaller than rbd_discard_granularity_bytes, which librbd skips by
	// default: the device reports LBPRZ, and the handler turns WRITE SAME
	// of zeros with UNMAP into a discard.
	if err := conn.SetConfigOption("rbd_skip_partial_discard", "false"); err != nil {
		return nil, 0, fmt.Errorf("set rbd_skip_partial_discard: %w", cephErrno(err))
	}
	// librbd must copy write data when a write starts (its default):
	// only then may a stuck write be failed back to the handler, which
	// reuses the data area (slots.sweep).
	if err := conn.SetConfigOption("rbd_disable_zero_copy_writes", "true"); err != nil {
		return nil, 0, fmt.Errorf("set rbd_disable_zero_copy_writes: %w", cephErrno(err))
	}
	var secs [3]float64
	for i, name := range []string{"rados_osd_op_timeout", "osd_heartbeat_grace", "osd_heartbeat_interval"} {
		v, err := conn.GetConfigOption(name)
		if err != nil {
			return nil, 0, fmt.Errorf("get %s: %w", name, cephErrno(err))
		}
		if secs[i], err = strconv.ParseFloat(v, 64); err != nil {
			return nil, 0, fmt.Errorf("parse %s %q: %w", name, v, err)
		}
	}
	timeout := osdOpTimeout(key.timeout, seconds(secs[0]), seconds(secs[1]), seconds(secs[2]))
	if err := conn.SetConfigOption("rados_osd_op_timeout", strconv.Itoa(int(math.Ceil(timeout.Seconds())))); err != nil {
		return nil, 0, fmt.Errorf("set rados_osd_op_timeout: %w", cephErrno(err))
	}
	// Mon commands (device class, blocklist) must not hang when the
	// monitors do: librados' default rados_mon_op_timeout is 0, no limit.
	if err := conn.SetConfigOption("rados_mon_op_timeout", strconv.Itoa(int(math.Ceil(timeout.Seconds())))); err != nil {
		return nil, 0, fmt.Errorf("set rados_mon_op_timeout: %w", cephErrno(err))
	}
	// Bound the monitor handshake by the caller's deadline; librados
	// otherwise waits client_mount_timeout (300 s).
	if dl, has := ctx.Deadline(); has {
		left := strconv.Itoa(max(1, int(math.Ceil(time.Until(dl).Seconds()))))
		if err := conn.SetConfigOption("client_mount_timeout", left); err != nil {
			return nil, 0, fmt.Errorf("set client_mount_timeout: %w", cephErrno(err))
		}
	}
	for _, o := range extra {
		if err := conn.SetConfigOption(o[0], o[1]); err != nil {
			return nil, 0, fmt.Errorf("set %s: %w", o[0], cephErrno(err))
		}
	}
	if err := conn.Connect(); err != nil {
		return nil, 0, fmt.Errorf("connect to ceph as client.%s: %w", id, cephErrno(err))
	}
	ok = true
	return conn, timeout, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
