package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	def := Default()
	with := func(f func(*Config)) Config {
		c := Default()
		f(&c)
		return c
	}
	tests := []struct {
		name         string
		text         string
		want         Config
		wantWarnings []string
		wantErr      string
	}{
		{name: "empty_file_is_defaults", text: "", want: def},
		{name: "tcmu_runner_shipped_file", text: tcmuRunnerConf, want: def},
		{name: "log_level", text: "log_level = 4\n", want: with(func(c *Config) { c.LogLevel = 4 })},
		{name: "no_spaces_and_crlf", text: "log_level=0\r\n", want: with(func(c *Config) { c.LogLevel = 0 })},
		{name: "leading_blanks_and_trailing_comment", text: " \tlog_level = 5   # trace\n", want: with(func(c *Config) { c.LogLevel = 5 })},
		{name: "log_level_clamped_like_tcmu_runner", text: "log_level = 9\n", want: with(func(c *Config) { c.LogLevel = 5 }), wantWarnings: []string{"line 1: log_level 9 is out of 0-5; using 5"}},
		{name: "double_quoted_string", text: `log_dir = "/var/log/tcmu"`, want: with(func(c *Config) { c.LogDir = "/var/log/tcmu" })},
		{name: "single_quoted_string_with_double_quotes", text: `log_dir = '/srv/"x"'`, want: with(func(c *Config) { c.LogDir = `/srv/"x"` })},
		{name: "last_value_wins", text: "log_level = 1\nlog_level = 2\n", want: with(func(c *Config) { c.LogLevel = 2 })},
		{name: "commented_key_keeps_default", text: "# log_level = 5\n", want: def},
		{name: "gotcmu_keys", text: "metrics_addr = \"[::1]:9999\"\nrbd_images_per_client = 8\ncheck_config_timeout = 30\nopen_timeout = 5\n", want: with(func(c *Config) {
			c.MetricsAddr = "[::1]:9999"
			c.RBDImagesPerClient = 8
			c.CheckConfigTimeout = 30 * time.Second
			c.OpenTimeout = 5 * time.Second
		})},
		{name: "open_timeout_zero", text: "open_timeout = 0\n", wantErr: "open_timeout 0 is out of 1-600 seconds"},
		{name: "transparent_hugepages", text: "transparent_hugepages = true\n", want: with(func(c *Config) { c.TransparentHugepages = true })},
		{name: "open_concurrency", text: "open_concurrency = 1\n", want: with(func(c *Config) { c.OpenConcurrency = 1 })},
		{name: "open_concurrency_zero", text: "open_concurrency = 0\n", wantErr: "open_concurrency 0 is out of 1-256"},
		{name: "open_concurrency_too_many", text: "open_concurrency = 257\n", wantErr: "open_concurrency 257 is out of 1-256"},
		{name: "busy_bounds", text: "busy_bound_lock = 45\nbusy_bound_connection = 300\nbusy_bound_transient = 10\n", want: with(func(c *Config) {
			c.BusyBoundLock = 45 * time.Second
			c.BusyBoundConn = 300 * time.Second
			c.BusyBoundTransient = 10 * time.Second
		})},
		{name: "busy_bound_zero", text: "busy_bound_transient = 0\n", wantErr: "busy_bound_transient 0 is out of 1-3600 seconds"},
		{name: "busy_bound_too_long", text: "busy_bound_connection = 3601\n", wantErr: "busy_bound_connection 3601 is out of 1-3600 seconds"},
		{name: "metrics_off", text: `metrics_addr = ""`, want: with(func(c *Config) { c.MetricsAddr = "" })},
		{name: "unknown_keys_warn", text: "future_key = 3\nsome_flag\nother = \"x\"\n", want: def, wantWarnings: []string{
			"line 1: unknown key future_key ignored", "line 2: unknown key some_flag ignored", "line 3: unknown key other ignored",
		}},
		{name: "bare_word_value_true", text: "a_flag = true\n", want: def, wantWarnings: []string{"line 1: unknown key a_flag ignored"}},
		{name: "string_for_int", text: `log_level = "3"`, wantErr: "line 1: log_level takes an integer"},
		{name: "bool_for_int", text: "log_level\n", wantErr: "log_level takes an integer"},
		{name: "int_for_string", text: "log_dir = 3", wantErr: "log_dir takes a quoted string"},
		{name: "relative_log_dir", text: `log_dir = "log"`, wantErr: "not an absolute path"},
		{name: "bad_metrics_addr", text: `metrics_addr = "localhost"`, wantErr: "metrics_addr"},
		{name: "metrics_port_zero", text: `metrics_addr = "127.0.0.1:0"`, wantErr: "port must be"},
		{name: "images_per_client_zero", text: "rbd_images_per_client = 0", wantErr: "out of 1-1024"},
		{name: "negative_number", text: "log_level = -1", wantErr: "not an integer"},
		{name: "huge_number", text: "log_level = 99999999999999999999", wantErr: "too large"},
		{name: "unterminated_string", text: `log_dir = "/var/log`, wantErr: "unterminated string"},
		{name: "junk_after_value", text: "log_level = 3 4", wantErr: `unexpected "4"`},
		{name: "no_value", text: "log_level =", wantErr: "no value"},
		{name: "no_equals", text: "log_level 3", wantErr: "expected '='"},
		{name: "line_not_a_key", text: "\n\n= 3", wantErr: "line 3: expected a key"},
		{name: "key_too_long", text: strings.Repeat("k", 65) + " = 1", wantErr: "longer than 64"},
		{name: "string_too_long", text: `log_dir = "/` + strings.Repeat("d", 300) + `"`, wantErr: "longer than 256"},
		{name: "oversize_file", text: strings.Repeat("#", MaxFileSize+1), wantErr: "over the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings, err := Parse([]byte(tt.text))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWarnings, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// tcmuRunnerConf is the file tcmu-runner's package installs.
const tcmuRunnerConf = `# Master TCMU configuration file

# Logging Controls
# There are 6 logging levels supported:
#    0: CRIT
#    1: ERROR
#    2: WARNING
#    3: INFO
#    4: DEBUG
#    5: DEBUG SCSI CMD
# And the default logging level is 3, if you want to change the
# default level, uncomment it and set your level number:
# log_level = 3
#
# Logging Directory Path
# The default logging Directory path is /var/log, uncomment it
# and set your own path:
# log_dir = "/var/log"
`

func TestZerologLevelCoversEveryLevel(t *testing.T) {
	seen := map[string]bool{}
	for l := 0; l <= 5; l++ {
		lvl := Config{LogLevel: l}.ZerologLevel().String()
		if seen[lvl] {
			t.Errorf("log_level %d maps to %s, as a lower level does", l, lvl)
		}
		seen[lvl] = true
	}
}
