package uio

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSetALUAState(t *testing.T) {
	c := aluaTree(t)
	// configfs attributes are written without O_TRUNC; start the fake
	// files empty so what is read back is exactly what was written.
	c.set(map[string]string{"alua/ao/alua_access_state": "", "alua/ao/alua_access_status": ""})
	cfs := c.open()
	if err := cfs.SetALUAState(1, 1); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"alua/ao/alua_access_state":  "1",
		"alua/ao/alua_access_status": "1",
	} {
		b, err := os.ReadFile(filepath.Join(c.dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Errorf("%s = %q, want %q", file, b, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(c.dir, "alua/default_tg_pt_gp/alua_access_state")); string(b) != "0\n" {
		t.Errorf("another group was written: default_tg_pt_gp state %q", b)
	}
	if err := cfs.SetALUAState(7, 1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SetALUAState of a missing group: %v, want ErrNotExist", err)
	}
}
