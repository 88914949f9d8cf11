package config

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rs/zerolog"
)

// DefaultPath is where tcmu-runner and gotcmu look for the file.
const DefaultPath = "/etc/tcmu/tcmu.conf"

// Config is gotcmu's configuration. The zero value is not useful; start
// from Default.
type Config struct {
	// LogLevel is tcmu-runner's log_level: 0 CRIT, 1 ERROR, 2 WARNING,
	// 3 INFO, 4 DEBUG, 5 DEBUG SCSI CMD (every command traced).
	LogLevel int
	// LogDir is log_dir, the directory of the log file.
	LogDir string
	// MetricsAddr is metrics_addr, where the Prometheus endpoint listens;
	// empty turns it off. The default is loopback only: the metrics name
	// every pool and image.
	MetricsAddr string
	// RBDImagesPerClient is rbd_images_per_client: how many rbd images
	// share one RADOS client (cluster connection). 1, the default, is what
	// tcmu-runner does: when a gateway's exclusive lock is broken its
	// client is blocklisted, and every image sharing that client is fenced
	// with it, so sharing trades failover isolation for fewer connections
	// and threads.
	RBDImagesPerClient int
	// CheckConfigTimeout is check_config_timeout, in seconds in the file:
	// how long a D-Bus CheckConfig waits for a handler (opening an rbd
	// image to check it exists takes a cluster round trip).
	CheckConfigTimeout time.Duration
	// OpenTimeout is open_timeout, in seconds in the file: how long
	// opening one device's backend may take (for rbd: reaching the
	// monitors, opening the image) before the device is blocked and
	// retried in the background. Other devices never wait for it.
	OpenTimeout time.Duration
	// OpenConcurrency is open_concurrency: how many backend opens run at
	// once (a restart adopting hundreds of devices opens them this many
	// at a time, so that a slow cluster is not stampeded), and how many
	// backend closes a shutdown runs at once.
	OpenConcurrency int
	// TransparentHugepages is transparent_hugepages: whether the kernel
	// may back the daemon's anonymous memory with 2 MiB pages (true: its
	// own policy decides; false, the default, turns them off for the
	// daemon, which saves memory per LUN at no measured CPU per IO:
	// cmd/gotcmu/thp.go).
	TransparentHugepages bool
	// BusyBoundLock, BusyBoundConn and BusyBoundTransient are
	// busy_bound_lock, busy_bound_connection and busy_bound_transient, in
	// seconds in the file: how long a device answers BUSY, from the first
	// BUSY of a run, before it escalates (NOT READY, and for rbd its TPGs
	// offline and a fresh client), for a lost lock or fenced client
	// (ESHUTDOWN, EROFS), a cluster that does not answer (ETIMEDOUT) and
	// the other errors answered BUSY (EAGAIN, EBUSY, ENOTCONN,
	// ECONNRESET). handler.BusyBounds documents the defaults.
	BusyBoundLock      time.Duration
	BusyBoundConn      time.Duration
	BusyBoundTransient time.Duration
}

// Default returns the configuration an empty file gives.
func Default() Config {
	return Config{
		LogLevel:             3,
		LogDir:               "/var/log",
		MetricsAddr:          "127.0.0.1:9560",
		RBDImagesPerClient:   1,
		CheckConfigTimeout:   10 * time.Second,
		OpenTimeout:          30 * time.Second,
		OpenConcurrency:      8,
		TransparentHugepages: false,
		BusyBoundLock:        60 * time.Second,
		BusyBoundConn:        120 * time.Second,
		BusyBoundTransient:   30 * time.Second,
	}
}

// ZerologLevel maps LogLevel to the level of gotcmu's logger. Level 5
// turns on trace, where per-command logging belongs.
func (c Config) ZerologLevel() zerolog.Level {
	switch c.LogLevel {
	case 0:
		return zerolog.FatalLevel
	case 1:
		return zerolog.ErrorLevel
	case 2:
		return zerolog.WarnLevel
	case 3:
		return zerolog.InfoLevel
	case 4:
		return zerolog.DebugLevel
	default:
		return zerolog.TraceLevel
	}
}

type kind int

const (
	kindInt kind = iota + 1
	kindString
	kindBool
)

func (k kind) String() string {
	switch k {
	case kindInt:
		return "an integer"
	case kindString:
		return "a quoted string"
	default:
		return "a boolean"
	}
}

// value is one parsed right-hand side.
type value struct {
	kind kind
	i    int64
	s    string
	b    bool
}

// option is one key gotcmu knows: its type and how it sets Config. set
// returns a warning for a value it adjusted, or an error for one it
// cannot use.
type option struct {
	kind kind
	set  func(c *Config, v value) (warning string, err error)
}

var options = map[string]option{
	"log_level": {kindInt, func(c *Config, v value) (string, error) {
		// tcmu-runner clamps out-of-range levels (TCMU_CONF_CHECK_LOG_LEVEL).
		c.LogLevel = int(min(max(v.i, 0), 5))
		if int64(c.LogLevel) != v.i {
			return fmt.Sprintf("log_level %d is out of 0-5; using %d", v.i, c.LogLevel), nil
		}
		return "", nil
	}},
	"log_dir": {kindString, func(c *Config, v value) (string, error) {
		if !filepath.IsAbs(v.s) {
			return "", fmt.Errorf("log_dir %q is not an absolute path", v.s)
		}
		c.LogDir = filepath.Clean(v.s)
		return "", nil
	}},
	"metrics_addr": {kindString, func(c *Config, v value) (string, error) {
		if v.s == "" {
			c.MetricsAddr = ""
			return "", nil
		}
		_, port, err := net.SplitHostPort(v.s)
		if err != nil {
			return "", fmt.Errorf("metrics_addr %q: %w", v.s, err)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", fmt.Errorf("metrics_addr %q: port must be 1-65535", v.s)
		}
		c.MetricsAddr = v.s
		return "", nil
	}},
	"rbd_images_per_client": {kindInt, func(c *Config, v value) (string, error) {
		if v.i < 1 || v.i > 1024 {
			return "", fmt.Errorf("rbd_images_per_client %d is out of 1-1024", v.i)
		}
		c.RBDImagesPerClient = int(v.i)
		return "", nil
	}},
	"check_config_timeout": {kindInt, func(c *Config, v value) (string, error) {
		if v.i < 1 || v.i > 120 {
			return "", fmt.Errorf("check_config_timeout %d is out of 1-120 seconds", v.i)
		}
		c.CheckConfigTimeout = time.Duration(v.i) * time.Second
		return "", nil
	}},
	"open_timeout": {kindInt, func(c *Config, v value) (string, error) {
		if v.i < 1 || v.i > 600 {
			return "", fmt.Errorf("open_timeout %d is out of 1-600 seconds", v.i)
		}
		c.OpenTimeout = time.Duration(v.i) * time.Second
		return "", nil
	}},
	"open_concurrency": {kindInt, func(c *Config, v value) (string, error) {
		if v.i < 1 || v.i > 256 {
			return "", fmt.Errorf("open_concurrency %d is out of 1-256", v.i)
		}
		c.OpenConcurrency = int(v.i)
		return "", nil
	}},
	"transparent_hugepages": {kindBool, func(c *Config, v value) (string, error) {
		c.TransparentHugepages = v.b
		return "", nil
	}},
	"busy_bound_lock":       busyBound("busy_bound_lock", func(c *Config) *time.Duration { return &c.BusyBoundLock }),
	"busy_bound_connection": busyBound("busy_bound_connection", func(c *Config) *time.Duration { return &c.BusyBoundConn }),
	"busy_bound_transient":  busyBound("busy_bound_transient", func(c *Config) *time.Duration { return &c.BusyBoundTransient }),
}

// busyBound is the option of one bound of BUSY: 1 s to an hour (a bound
// cannot be off: BUSY must end).
func busyBound(key string, field func(c *Config) *time.Duration) option {
	return option{kindInt, func(c *Config, v value) (string, error) {
		if v.i < 1 || v.i > 3600 {
			return "", fmt.Errorf("%s %d is out of 1-3600 seconds", key, v.i)
		}
		*field(c) = time.Duration(v.i) * time.Second
		return "", nil
	}}
}
