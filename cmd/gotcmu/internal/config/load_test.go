package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// exampleLine is a commented-out option in the shipped file.
var exampleLine = regexp.MustCompile(`^# [a-z_]+ = `)

// TestShippedFile checks systemd/tcmu.conf: as shipped it is the
// defaults, and each commented example, uncommented, states the default.
func TestShippedFile(t *testing.T) {
	data, err := os.ReadFile("../../../../systemd/tcmu.conf")
	if err != nil {
		t.Fatal(err)
	}
	c, warnings, err := Parse(data)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Parse(shipped) = %v, warnings %v", err, warnings)
	}
	if diff := cmp.Diff(Default(), c); diff != "" {
		t.Errorf("shipped file is not the defaults (-want +got):\n%s", diff)
	}
	examples := 0
	for _, line := range strings.Split(string(data), "\n") {
		if !exampleLine.MatchString(line) {
			continue
		}
		ex := strings.TrimPrefix(line, "# ")
		examples++
		c, warnings, err := Parse([]byte(ex))
		if err != nil || len(warnings) > 0 {
			t.Errorf("example %q: %v %v", ex, err, warnings)
			continue
		}
		if diff := cmp.Diff(Default(), c); diff != "" {
			t.Errorf("example %q is not the default (-want +got):\n%s", ex, diff)
		}
	}
	if examples != len(options) {
		t.Errorf("shipped file shows %d keys; gotcmu knows %d", examples, len(options))
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		want    int // LogLevel
		wantErr string
	}{
		{name: "file", path: write("ok.conf", "log_level = 1\n"), want: 1},
		{name: "missing_file_is_defaults", path: filepath.Join(dir, "missing"), want: 3},
		{name: "bad_file", path: write("bad.conf", "log_level = x\n"), wantErr: "line 1"},
		{name: "oversize_file_refused_unread", path: write("big.conf", strings.Repeat("#", MaxFileSize+10)), wantErr: "larger than"},
		{name: "directory", path: dir, wantErr: "not a regular file"},
		{name: "fifo_does_not_hang", path: fifo, wantErr: "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := Load(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.LogLevel != tt.want {
				t.Errorf("LogLevel = %d, want %d", c.LogLevel, tt.want)
			}
		})
	}
}
