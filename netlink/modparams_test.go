package netlink

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestModuleParamsWrite(t *testing.T) {
	tests := []struct {
		name  string
		call  func(ModuleParams) error
		file  string
		value string
	}{
		{name: "block", call: ModuleParams.BlockNetlink, file: "block_netlink", value: "1"},
		{name: "reset", call: ModuleParams.ResetNetlink, file: "reset_netlink", value: "1"},
		{name: "unblock", call: ModuleParams.UnblockNetlink, file: "block_netlink", value: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"block_netlink", "reset_netlink"} {
				// What a sysfs read shows; the write must replace it.
				if err := os.WriteFile(filepath.Join(dir, f), []byte("unblocked\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := tt.call(ModuleParams{Dir: dir}); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			got, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.value {
				t.Errorf("%s = %q, want %q", tt.file, got, tt.value)
			}
		})
	}
}

func TestModuleParamsMissing(t *testing.T) {
	tests := []struct {
		name string
		dir  string
	}{
		{name: "module not loaded", dir: filepath.Join(t.TempDir(), "target_core_user", "parameters")},
		{name: "kernel without the parameter", dir: t.TempDir()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ModuleParams{Dir: tt.dir}
			for _, call := range []func() error{p.BlockNetlink, p.ResetNetlink, p.UnblockNetlink} {
				err := call()
				if !errors.Is(err, ErrNoModuleParam) || !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("error = %v, want ErrNoModuleParam and fs.ErrNotExist", err)
				}
				if err != nil && !strings.Contains(err.Error(), tt.dir) {
					t.Errorf("error %q does not name the path", err)
				}
			}
			if _, err := os.Stat(filepath.Join(tt.dir, "block_netlink")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("block_netlink was created: %v", err)
			}
		})
	}
}

func TestModuleParamsWriteRefused(t *testing.T) {
	// A directory where the parameter should be: the write fails, and the
	// error is not mistaken for a missing parameter.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "reset_netlink"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := ModuleParams{Dir: dir}.ResetNetlink()
	if err == nil || errors.Is(err, ErrNoModuleParam) {
		t.Errorf("ResetNetlink() = %v, want a write error that is not ErrNoModuleParam", err)
	}
}

func TestModuleParamsDefaultDir(t *testing.T) {
	want := "/sys/module/target_core_user/parameters/reset_netlink"
	if got := (ModuleParams{}).path("reset_netlink"); got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
}
