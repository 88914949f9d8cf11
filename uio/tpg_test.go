package uio

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSetTPGEnabled(t *testing.T) {
	c := aluaTree(t)
	cfs := c.open()
	enable := filepath.Join(c.root.ConfigDir, "target", iscsiLUN, "enable")
	// Configfs files take each write whole; a regular file would keep
	// the old bytes past the new ones.
	writeFile(t, enable, nil)
	read := func() string {
		defer writeFile(t, enable, nil)
		b, err := os.ReadFile(enable)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if err := cfs.SetTPGEnabled(iqn, 1, false); err != nil {
		t.Fatalf("disable: %v", err)
	}
	if got := read(); got != "0" {
		t.Errorf("enable after disabling = %q, want %q", got, "0")
	}
	if err := cfs.SetTPGEnabled(iqn, 1, true); err != nil {
		t.Fatalf("enable: %v", err)
	}
	if got := read(); got != "1" {
		t.Errorf("enable after enabling = %q, want %q", got, "1")
	}
}

func TestSetTPGEnabledRefuses(t *testing.T) {
	c := aluaTree(t)
	cfs := c.open()
	// A directory named like a TPG under core/ is not a fabric's.
	writeFile(t, filepath.Join(c.root.ConfigDir, "target", "core", iqn, "tpgt_7", "enable"), []byte("1\n"))
	tests := []struct {
		name    string
		wwn     string
		tpgt    uint16
		notExst bool
	}{
		{name: "unknown_tpgt", wwn: iqn, tpgt: 2, notExst: true},
		{name: "unknown_target", wwn: "iqn.2003-01.other", tpgt: 1, notExst: true},
		{name: "loopback_has_no_enable", wwn: loopWWN, tpgt: 1, notExst: true},
		{name: "core_is_not_a_fabric", wwn: iqn, tpgt: 7, notExst: true},
		{name: "target_name_climbs", wwn: "..", tpgt: 1},
		{name: "target_name_with_slash", wwn: "iscsi/" + iqn, tpgt: 1},
		{name: "empty_target_name", wwn: "", tpgt: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cfs.SetTPGEnabled(tt.wwn, tt.tpgt, false)
			if err == nil {
				t.Fatal("succeeded")
			}
			if got := errors.Is(err, os.ErrNotExist); got != tt.notExst {
				t.Errorf("error %v: ErrNotExist %v, want %v", err, got, tt.notExst)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(c.root.ConfigDir, "target", "loopback", loopWWN, "tpgt_1", "enable")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an enable file was created for loopback: %v", err)
	}
}
