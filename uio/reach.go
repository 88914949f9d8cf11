package uio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Reach says, for every backstore device exported by a fabric, which
// initiators can reach it: the access paths LIO's configfs gives it. TCMU
// tells a handler nothing of the I_T nexus a command came through, so a
// handler that acts on a second device for a command (EXTENDED COPY names
// its source and destination by designator) decides from Reach whether
// whoever sent the command could have reached that device by itself.
//
// An access path is one of:
//
//   - "<fabric>/<wwn>/tpgt_<n> * rw|ro": any initiator that logs in to the
//     TPG, when the TPG generates node ACLs (attrib/generate_node_acls=1,
//     "demo mode") or its fabric has no ACLs at all (tcm_loop, vhost: no
//     generate_node_acls attribute); ro when demo_mode_write_protect is set.
//   - "<fabric>/<wwn>/tpgt_<n> acl=<initiator> rw|ro": an initiator with a
//     node ACL whose mapped LUN links to a LUN of the device; ro when the
//     mapped LUN's write_protect is set.
//
// Every LUN of every TPG is counted, enabled or not: a TPG can be enabled
// at any moment, so a disabled one is no reason to allow a copy.
type Reach struct {
	paths map[string][]string // by device key "<hba dir>/<device dir>", sorted
}

// DeviceKey is the key of a backstore device in a Reach:
// "<hba dir>/<device dir>" under target/core, e.g. "user_0/disk0".
func (n UIOName) DeviceKey() string {
	return fmt.Sprintf("user_%d/%s", n.HBA, n.Device)
}

// Paths returns the access paths that reach the device, sorted; none for a
// device no fabric exports.
func (r Reach) Paths(key string) []string { return r.paths[key] }

// Same reports whether devices a and b are reached by exactly the same
// access paths, and by at least one: then no initiator can reach one of
// them without reaching the other, with the same write access.
func (r Reach) Same(a, b string) bool {
	pa, pb := r.paths[a], r.paths[b]
	return len(pa) > 0 && slices.Equal(pa, pb)
}

// Reach reads the access paths of every exported device from configfs:
// every <fabric>/<wwn>/tpgt_<n> under target/, its LUNs' links to
// backstore devices, and its node ACLs' mapped LUNs. Any directory or
// attribute that cannot be read fails the whole read: a partial answer
// could allow what the missing part forbids.
func (r Roots) Reach() (Reach, error) {
	target := filepath.Join(r.configfs(), "target")
	fabrics, err := os.ReadDir(target)
	if err != nil {
		return Reach{}, fmt.Errorf("read fabrics: %w", err)
	}
	acc := map[string]map[string]bool{}
	for _, f := range fabrics {
		if !f.IsDir() || f.Name() == "core" {
			continue
		}
		wwns, err := os.ReadDir(filepath.Join(target, f.Name()))
		if err != nil {
			return Reach{}, fmt.Errorf("read fabric %s: %w", f.Name(), err)
		}
		for _, w := range wwns {
			if !w.IsDir() {
				continue
			}
			wdir := filepath.Join(target, f.Name(), w.Name())
			tpgs, err := os.ReadDir(wdir)
			if err != nil {
				return Reach{}, fmt.Errorf("read target %s: %w", wdir, err)
			}
			for _, t := range tpgs {
				if !t.IsDir() || !strings.HasPrefix(t.Name(), "tpgt_") {
					continue
				}
				tpg := tpgReach{target: target, dir: filepath.Join(wdir, t.Name()), name: f.Name() + "/" + w.Name() + "/" + t.Name(), acc: acc}
				if err := tpg.read(); err != nil {
					return Reach{}, err
				}
			}
		}
	}
	out := Reach{paths: make(map[string][]string, len(acc))}
	for dev, set := range acc {
		ps := make([]string, 0, len(set))
		for p := range set {
			ps = append(ps, p)
		}
		slices.Sort(ps)
		out.paths[dev] = ps
	}
	return out, nil
}

// tpgReach reads one TPG's access paths into acc.
type tpgReach struct {
	target string // <configfs>/target
	dir    string // the TPG's directory
	name   string // "<fabric>/<wwn>/tpgt_<n>"
	acc    map[string]map[string]bool
}

func (t tpgReach) add(dev, path string) {
	if t.acc[dev] == nil {
		t.acc[dev] = map[string]bool{}
	}
	t.acc[dev][path] = true
}

func access(ro bool) string {
	if ro {
		return "ro"
	}
	return "rw"
}

func (t tpgReach) read() error {
	// lun_<m> -> device key, for the LUNs linked to a device.
	luns, err := t.luns()
	if err != nil {
		return err
	}
	open, err := t.flag("attrib/generate_node_acls", true)
	if err != nil {
		return err
	}
	if open {
		ro, err := t.flag("attrib/demo_mode_write_protect", false)
		if err != nil {
			return err
		}
		for _, dev := range luns {
			t.add(dev, t.name+" * "+access(ro))
		}
	}
	acls, err := os.ReadDir(filepath.Join(t.dir, "acls"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a fabric without node ACLs
	}
	if err != nil {
		return fmt.Errorf("read node ACLs of %s: %w", t.name, err)
	}
	for _, a := range acls {
		if !a.IsDir() {
			continue
		}
		adir := filepath.Join(t.dir, "acls", a.Name())
		mapped, err := os.ReadDir(adir)
		if err != nil {
			return fmt.Errorf("read node ACL %s of %s: %w", a.Name(), t.name, err)
		}
		for _, m := range mapped {
			if !m.IsDir() || !strings.HasPrefix(m.Name(), "lun_") {
				continue
			}
			mdir := filepath.Join(adir, m.Name())
			to, ok, err := link(mdir)
			if err != nil {
				return fmt.Errorf("read mapped LUN %s of %s: %w", mdir, t.name, err)
			}
			if !ok {
				continue // a mapped LUN not linked yet reaches nothing
			}
			if filepath.Dir(to) != filepath.Join(t.dir, "lun") {
				return fmt.Errorf("mapped LUN %s links to %s, outside its TPG", mdir, to)
			}
			dev, ok := luns[filepath.Base(to)]
			if !ok {
				continue // a LUN linked to no device
			}
			ro, err := readBoolFile(filepath.Join(mdir, "write_protect"))
			if err != nil {
				return fmt.Errorf("read mapped LUN %s of %s: %w", mdir, t.name, err)
			}
			t.add(dev, t.name+" acl="+a.Name()+" "+access(ro))
		}
	}
	return nil
}

// luns returns the TPG's LUNs that link to a backstore device, by LUN
// directory name, with the device's key.
func (t tpgReach) luns() (map[string]string, error) {
	entries, err := os.ReadDir(filepath.Join(t.dir, "lun"))
	if err != nil {
		return nil, fmt.Errorf("read LUNs of %s: %w", t.name, err)
	}
	core := filepath.Join(t.target, "core")
	luns := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "lun_") {
			continue
		}
		ldir := filepath.Join(t.dir, "lun", e.Name())
		to, ok, err := link(ldir)
		if err != nil {
			return nil, fmt.Errorf("read LUN %s: %w", ldir, err)
		}
		if !ok {
			continue
		}
		rel, err := filepath.Rel(core, to)
		if err != nil || strings.HasPrefix(rel, "..") || strings.Count(rel, "/") != 1 {
			return nil, fmt.Errorf("LUN %s links to %s, not a backstore device", ldir, to)
		}
		luns[e.Name()] = rel
	}
	return luns, nil
}

// flag reads a 0/1 attribute of the TPG; missing, it is def (a fabric
// without that attribute).
func (t tpgReach) flag(rel string, def bool) (bool, error) {
	v, err := readBoolFile(filepath.Join(t.dir, rel))
	if errors.Is(err, fs.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s of %s: %w", rel, t.name, err)
	}
	return v, nil
}

// link returns where the one symbolic link in dir points, as a clean
// absolute path; ok is false when dir holds none. LUN and mapped LUN
// directories hold at most one (configfs refuses a second).
func link(dir string) (to string, ok bool, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false, err
	}
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", false, err
		}
		if !filepath.IsAbs(l) {
			l = filepath.Join(dir, l)
		}
		return filepath.Clean(l), true, nil
	}
	return "", false, nil
}
