package uio

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fabricTree lays out configfs's target/ directory as LIO does: backstore
// devices under core/, TPGs under <fabric>/<wwn>/tpgt_<n> with their LUNs
// linked to devices and node ACLs' mapped LUNs linked to LUNs, every link
// relative as configfs prints them.
type fabricTree struct {
	t    *testing.T
	root Roots
}

func newFabricTree(t *testing.T, devs ...string) *fabricTree {
	f := &fabricTree{t: t, root: Roots{ConfigDir: t.TempDir()}}
	for _, d := range devs {
		f.mkdir("core", d)
	}
	return f
}

func (f *fabricTree) path(elem ...string) string {
	return filepath.Join(append([]string{f.root.ConfigDir, "target"}, elem...)...)
}

func (f *fabricTree) mkdir(elem ...string) string {
	f.t.Helper()
	p := f.path(elem...)
	if err := os.MkdirAll(p, 0o755); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fabricTree) write(content string, elem ...string) {
	f.t.Helper()
	writeFile(f.t, f.path(elem...), []byte(content))
}

func (f *fabricTree) symlink(from, dir, name string) {
	f.t.Helper()
	rel, err := filepath.Rel(dir, from)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(dir, name)); err != nil {
		f.t.Fatal(err)
	}
}

// tpg makes <fabric>/<wwn>/tpgt_1; demo is generate_node_acls, or nil for
// a fabric without the attribute (tcm_loop).
func (f *fabricTree) tpg(fabric, wwn string, demo *bool) string {
	f.t.Helper()
	dir := f.mkdir(fabric, wwn, "tpgt_1", "lun")
	f.mkdir(fabric, wwn, "tpgt_1", "acls")
	if demo != nil {
		v := map[bool]string{false: "0\n", true: "1\n"}[*demo]
		f.write(v, fabric, wwn, "tpgt_1", "attrib", "generate_node_acls")
		f.write("0\n", fabric, wwn, "tpgt_1", "attrib", "demo_mode_write_protect")
	}
	return filepath.Dir(dir)
}

// lun exports device dev (e.g. "user_0/a") as lun_<n> of the TPG at dir.
func (f *fabricTree) lun(tpg, lun, dev string) {
	f.t.Helper()
	ldir := filepath.Join(tpg, "lun", lun)
	if err := os.MkdirAll(ldir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	writeFile(f.t, filepath.Join(ldir, "alua_tg_pt_gp"), []byte("default_tg_pt_gp\n"))
	f.symlink(f.path("core", dev), ldir, "8a1f2b3c4d")
}

// mapLUN maps the TPG's lun to the initiator's ACL as mapped, with
// write_protect ro.
func (f *fabricTree) mapLUN(tpg, initiator, mapped, lun string, ro bool) {
	f.t.Helper()
	mdir := filepath.Join(tpg, "acls", initiator, mapped)
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	writeFile(f.t, filepath.Join(mdir, "write_protect"), []byte(map[bool]string{false: "0\n", true: "1\n"}[ro]))
	f.symlink(filepath.Join(tpg, "lun", lun), mdir, "b0c1d2e3f4")
}

func (f *fabricTree) reach() Reach {
	f.t.Helper()
	r, err := f.root.Reach()
	if err != nil {
		f.t.Fatalf("Reach: %v", err)
	}
	return r
}

var yes, no = true, false

const iqnA, iqnB, host1, host2 = "iqn.2003-01.org.linux-iscsi.gw:a", "iqn.2003-01.org.linux-iscsi.gw:b",
	"iqn.1994-05.com.redhat:host1", "iqn.1994-05.com.redhat:host2"

func TestReachSameTPG(t *testing.T) {
	f := newFabricTree(t, "user_0/a", "user_0/b")
	tpg := f.tpg("iscsi", iqnA, &yes)
	f.lun(tpg, "lun_0", "user_0/a")
	f.lun(tpg, "lun_1", "user_0/b")
	r := f.reach()
	if !r.Same("user_0/a", "user_0/b") {
		t.Errorf("two LUNs of one demo-mode TPG: not the same reach: %q, %q", r.Paths("user_0/a"), r.Paths("user_0/b"))
	}
	if want := []string{"iscsi/" + iqnA + "/tpgt_1 * rw"}; !slices.Equal(r.Paths("user_0/a"), want) {
		t.Errorf("paths %q, want %q", r.Paths("user_0/a"), want)
	}
}

func TestReachDifferentTargets(t *testing.T) {
	f := newFabricTree(t, "user_0/a", "user_0/b")
	ta, tb := f.tpg("iscsi", iqnA, &no), f.tpg("iscsi", iqnB, &no)
	f.lun(ta, "lun_0", "user_0/a")
	f.lun(tb, "lun_0", "user_0/b")
	// The same initiator name in both is still two logins, allowed or
	// refused by each target's own ACL.
	f.mapLUN(ta, host1, "lun_0", "lun_0", false)
	f.mapLUN(tb, host1, "lun_0", "lun_0", false)
	if r := f.reach(); r.Same("user_0/a", "user_0/b") {
		t.Errorf("LUNs of two targets share a reach: %q", r.Paths("user_0/a"))
	}
	// Demo mode on both does not join them either.
	f2 := newFabricTree(t, "user_0/a", "user_0/b")
	f2.lun(f2.tpg("iscsi", iqnA, &yes), "lun_0", "user_0/a")
	f2.lun(f2.tpg("iscsi", iqnB, &yes), "lun_0", "user_0/b")
	if r := f2.reach(); r.Same("user_0/a", "user_0/b") {
		t.Error("LUNs of two demo-mode targets share a reach")
	}
}

func TestReachACLMappedLUNs(t *testing.T) {
	f := newFabricTree(t, "user_0/a", "user_0/b")
	tpg := f.tpg("iscsi", iqnA, &no)
	f.lun(tpg, "lun_0", "user_0/a")
	f.lun(tpg, "lun_1", "user_0/b")
	f.mapLUN(tpg, host1, "lun_0", "lun_0", false)
	f.mapLUN(tpg, host1, "lun_1", "lun_1", false)
	if r := f.reach(); !r.Same("user_0/a", "user_0/b") {
		t.Errorf("both mapped to the one ACL: %q, %q", r.Paths("user_0/a"), r.Paths("user_0/b"))
	}
	// host2 sees only a: a copy between a and b could be sent by host2.
	f.mapLUN(tpg, host2, "lun_0", "lun_0", false)
	if r := f.reach(); r.Same("user_0/a", "user_0/b") {
		t.Error("a LUN mapped to host2 alone shares its reach with one host2 cannot see")
	}
	// Mapped for host2 too, but read-only: a copy onto it would write
	// what host2 may only read.
	f.mapLUN(tpg, host2, "lun_7", "lun_1", true)
	if r := f.reach(); r.Same("user_0/a", "user_0/b") {
		t.Error("a read-only mapping shares its reach with a read-write one")
	}
	writeFile(t, filepath.Join(tpg, "acls", host2, "lun_7", "write_protect"), []byte("0\n"))
	if r := f.reach(); !r.Same("user_0/a", "user_0/b") {
		t.Errorf("both mapped read-write to both ACLs: %q, %q", r.Paths("user_0/a"), r.Paths("user_0/b"))
	}
	// Turning on demo mode lets any initiator in, to both LUNs.
	writeFile(t, filepath.Join(tpg, "attrib", "generate_node_acls"), []byte("1\n"))
	if r := f.reach(); !r.Same("user_0/a", "user_0/b") || len(r.Paths("user_0/a")) != 3 {
		t.Errorf("demo mode with ACLs: %q, %q", r.Paths("user_0/a"), r.Paths("user_0/b"))
	}
}

func TestReachTPGAddedLater(t *testing.T) {
	f := newFabricTree(t, "user_0/a", "user_0/b")
	tpg := f.tpg("iscsi", iqnA, &yes)
	f.lun(tpg, "lun_0", "user_0/a")
	f.lun(tpg, "lun_1", "user_0/b")
	if r := f.reach(); !r.Same("user_0/a", "user_0/b") {
		t.Fatal("one TPG: not the same")
	}
	// A loopback TPG (no ACLs, no generate_node_acls) exports only a.
	f.lun(f.tpg("loopback", "naa.5001405aaaaaaaaa", nil), "lun_0", "user_0/a")
	r := f.reach()
	if r.Same("user_0/a", "user_0/b") {
		t.Error("a exported on a second TPG: still the same reach as b")
	}
	if want := "loopback/naa.5001405aaaaaaaaa/tpgt_1 * rw"; !slices.Contains(r.Paths("user_0/a"), want) {
		t.Errorf("paths %q lack %q", r.Paths("user_0/a"), want)
	}
}

func TestReachNotExported(t *testing.T) {
	f := newFabricTree(t, "user_0/a", "user_0/b")
	f.tpg("iscsi", iqnA, &yes)
	r := f.reach()
	if r.Same("user_0/a", "user_0/b") || r.Same("user_0/a", "user_0/a") {
		t.Error("devices no fabric exports count as reachable alike")
	}
	// A LUN directory not linked yet, and an ACL's mapped LUN not linked
	// yet, reach nothing.
	f.mkdir("iscsi", iqnA, "tpgt_1", "lun", "lun_3")
	f.mkdir("iscsi", iqnA, "tpgt_1", "acls", host1, "lun_0")
	if r := f.reach(); len(r.Paths("user_0/a")) != 0 {
		t.Errorf("unlinked LUNs gave paths %q", r.Paths("user_0/a"))
	}
}

func TestReachUnreadable(t *testing.T) {
	setup := func(t *testing.T) (*fabricTree, string) {
		f := newFabricTree(t, "user_0/a", "user_0/b")
		tpg := f.tpg("iscsi", iqnA, &no)
		f.lun(tpg, "lun_0", "user_0/a")
		f.lun(tpg, "lun_1", "user_0/b")
		f.mapLUN(tpg, host1, "lun_0", "lun_0", false)
		f.mapLUN(tpg, host1, "lun_1", "lun_1", false)
		f.reach()
		return f, tpg
	}
	for _, tc := range []struct {
		name   string
		break_ func(f *fabricTree, tpg string)
	}{
		{"no configfs", func(f *fabricTree, tpg string) { os.RemoveAll(f.path()) }},
		{"generate_node_acls not a flag", func(f *fabricTree, tpg string) {
			writeFile(t, filepath.Join(tpg, "attrib", "generate_node_acls"), []byte("7\n"))
		}},
		{"write_protect missing", func(f *fabricTree, tpg string) {
			os.Remove(filepath.Join(tpg, "acls", host1, "lun_1", "write_protect"))
		}},
		{"LUNs not a directory", func(f *fabricTree, tpg string) {
			os.RemoveAll(filepath.Join(tpg, "lun"))
			writeFile(t, filepath.Join(tpg, "lun"), nil)
		}},
		{"mapped LUN linked outside its TPG", func(f *fabricTree, tpg string) {
			m := filepath.Join(tpg, "acls", host1, "lun_1")
			os.Remove(filepath.Join(m, "b0c1d2e3f4"))
			f.symlink(f.path("core", "user_0", "b"), m, "b0c1d2e3f4")
		}},
		{"LUN linked outside core", func(f *fabricTree, tpg string) {
			l := filepath.Join(tpg, "lun", "lun_1")
			os.Remove(filepath.Join(l, "8a1f2b3c4d"))
			f.symlink(f.path("iscsi"), l, "8a1f2b3c4d")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, tpg := setup(t)
			tc.break_(f, tpg)
			if r, err := f.root.Reach(); err == nil {
				t.Errorf("Reach read a broken tree: %q", r.Paths("user_0/a"))
			}
		})
	}
}

func TestDeviceKey(t *testing.T) {
	n, err := ParseUIOName("tcm-user/3/disk0/rbd/pool/img")
	if err != nil {
		t.Fatal(err)
	}
	if got := n.DeviceKey(); got != "user_3/disk0" {
		t.Errorf("DeviceKey = %q", got)
	}
}
