package uio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// SetTPGEnabled writes the enable attribute of the fabric target portal
// group <fabric>/<wwn>/tpgt_<tpgt> that exports the device, the way
// tcmu-runner takes a gateway's iSCSI TPG offline when its connection to
// the cluster is lost (target.c, tgt_port_grp_recovery_work_fn): disabling
// the TPG drops the initiators' sessions, so multipath moves to another
// gateway instead of retrying commands here.
//
// The fabric is found by looking for <wwn>/tpgt_<tpgt> under each fabric
// directory of <configfs>/target, since a member string's fabric name is
// not needed to name a port elsewhere (target names are unique across
// fabrics: an IQN, a naa. or a loopback WWN). A TPG without an enable
// attribute (tcm_loop's are always on) gives an error wrapping
// os.ErrNotExist.
func (c *Configfs) SetTPGEnabled(wwn string, tpgt uint16, on bool) error {
	if err := checkPathName(wwn); err != nil {
		return fmt.Errorf("set tpgt_%d of %q enabled: target name: %w", tpgt, wwn, err)
	}
	tpg, err := c.findTPG(wwn, tpgt)
	if err != nil {
		return err
	}
	v := "0"
	if on {
		v = "1"
	}
	path := filepath.Join(tpg, "enable")
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.WriteString(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", v, path, err)
	}
	return nil
}

// findTPG returns the directory of <fabric>/<wwn>/tpgt_<tpgt>.
func (c *Configfs) findTPG(wwn string, tpgt uint16) (string, error) {
	entries, err := os.ReadDir(c.target)
	if err != nil {
		return "", fmt.Errorf("list fabrics: %w", err)
	}
	name := "tpgt_" + strconv.FormatUint(uint64(tpgt), 10)
	for _, e := range entries {
		// core holds the backstores, not a fabric.
		if !e.IsDir() || e.Name() == "core" {
			continue
		}
		dir := filepath.Join(c.target, e.Name(), wwn, name)
		fi, err := os.Stat(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("find %s/%s: %w", wwn, name, err)
		}
		if fi.IsDir() {
			return dir, nil
		}
	}
	return "", fmt.Errorf("find %s/%s under %s: %w", wwn, name, c.target, os.ErrNotExist)
}
