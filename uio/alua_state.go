package uio

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// SetALUAState makes an explicit ALUA transition of the group with the
// given tg_pt_gp_id: it writes alua_access_status (1, "Altered by
// Explicit STPG") and then alua_access_state. The kernel accepts a state
// written to configfs only for groups whose alua_access_type includes
// implicit (target_tg_pt_gp_alua_access_state_store), so explicit groups
// must be "Implicit and Explicit", as ceph-iscsi's explicit mode sets
// them.
func (c *Configfs) SetALUAState(id uint16, state uint8) error {
	dir, err := c.aluaGroupDir(id)
	if err != nil {
		return err
	}
	if err := c.write(filepath.Join("alua", dir, "alua_access_status"), strconv.Itoa(ALUAStatusAlteredExplicit)); err != nil {
		return err
	}
	return c.write(filepath.Join("alua", dir, "alua_access_state"), strconv.Itoa(int(state)))
}

// aluaGroupDir finds the alua/ directory name of the group with id.
func (c *Configfs) aluaGroupDir(id uint16) (string, error) {
	entries, err := os.ReadDir(c.path("alua"))
	if err != nil {
		return "", fmt.Errorf("read ALUA groups: %w", err)
	}
	want := strconv.Itoa(int(id))
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		got, err := readAttr(filepath.Join(c.path("alua"), e.Name(), "tg_pt_gp_id"), maxSizeAttr)
		if err == nil && got == want {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("no ALUA group with id %d under %s: %w", id, c.path("alua"), os.ErrNotExist)
}
