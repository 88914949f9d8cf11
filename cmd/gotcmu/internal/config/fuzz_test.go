package config

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary files to the parser: it must never panic, a
// file it accepts must give values within their ranges, and the
// configuration it gives must survive being written out and read again.
func FuzzParse(f *testing.F) {
	f.Add([]byte(tcmuRunnerConf))
	f.Add([]byte("log_level = 4\nlog_dir = \"/var/log/x\"\n"))
	f.Add([]byte("metrics_addr = '[::1]:9560' # v6\r\nrbd_images_per_client = 4\ncheck_config_timeout=30"))
	f.Add([]byte("flag\n  # comment\n\tlog_level=0"))
	f.Add([]byte("log_level = \"3"))
	f.Add([]byte("= 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := Parse(data)
		if err != nil {
			return
		}
		switch {
		case c.LogLevel < 0 || c.LogLevel > 5:
			t.Fatalf("log_level %d accepted", c.LogLevel)
		case !strings.HasPrefix(c.LogDir, "/"):
			t.Fatalf("log_dir %q accepted", c.LogDir)
		case c.RBDImagesPerClient < 1:
			t.Fatalf("rbd_images_per_client %d accepted", c.RBDImagesPerClient)
		case c.CheckConfigTimeout <= 0:
			t.Fatalf("check_config_timeout %v accepted", c.CheckConfigTimeout)
		case c.OpenTimeout <= 0:
			t.Fatalf("open_timeout %v accepted", c.OpenTimeout)
		case c.OpenConcurrency < 1:
			t.Fatalf("open_concurrency %d accepted", c.OpenConcurrency)
		case c.BusyBoundLock <= 0 || c.BusyBoundConn <= 0 || c.BusyBoundTransient <= 0:
			t.Fatalf("busy bounds %v %v %v accepted", c.BusyBoundLock, c.BusyBoundConn, c.BusyBoundTransient)
		}
		again, warnings, err := Parse([]byte(format(c)))
		if err != nil || len(warnings) > 0 {
			t.Fatalf("written out as %q, the configuration does not parse: %v %v", format(c), err, warnings)
		}
		if again != c {
			t.Fatalf("round trip changed %+v into %+v", c, again)
		}
	})
}

// format writes c as a file; a string holding both quote characters
// cannot be written and is left out, which then fails the round trip.
func format(c Config) string {
	quote := func(s string) string {
		if strings.Contains(s, `"`) {
			return "'" + s + "'"
		}
		return `"` + s + `"`
	}
	return fmt.Sprintf("log_level = %d\nlog_dir = %s\nmetrics_addr = %s\nrbd_images_per_client = %d\ncheck_config_timeout = %d\nopen_timeout = %d\nopen_concurrency = %d\ntransparent_hugepages = %t\n"+
		"busy_bound_lock = %d\nbusy_bound_connection = %d\nbusy_bound_transient = %d\n",
		c.LogLevel, quote(c.LogDir), quote(c.MetricsAddr), c.RBDImagesPerClient, int(c.CheckConfigTimeout.Seconds()), int(c.OpenTimeout.Seconds()), c.OpenConcurrency, c.TransparentHugepages,
		int(c.BusyBoundLock.Seconds()), int(c.BusyBoundConn.Seconds()), int(c.BusyBoundTransient.Seconds()))
}
