package uio

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseUIOName(t *testing.T) {
	tests := []struct {
		in      string
		want    UIOName
		wantErr bool
	}{
		{in: "tcm-user/3/disk0/file//var/lib/disk0.img", want: UIOName{3, "disk0", "file//var/lib/disk0.img"}},
		{in: "tcm-user/0/img/rbd/pool/image;osd_op_timeout=30", want: UIOName{0, "img", "rbd/pool/image;osd_op_timeout=30"}},
		{in: "tcm-user/4294967295/d", want: UIOName{4294967295, "d", ""}},
		{in: "tcm-user/1/d/a b/c", want: UIOName{1, "d", "a b/c"}},
		{in: "uio-other/1/d", wantErr: true},
		{in: "tcm-user/", wantErr: true},
		{in: "tcm-user/x/d", wantErr: true},
		{in: "tcm-user/-1/d", wantErr: true},
		{in: "tcm-user/4294967296/d", wantErr: true},
		{in: "tcm-user/1", wantErr: true},
		{in: "tcm-user/1/", wantErr: true},
		{in: "tcm-user/1/..", wantErr: true},
		{in: "tcm-user/1/./cfg", wantErr: true},
		{in: "tcm-user/1/d/", wantErr: true},
		{in: "tcm-user/1/d\x00x", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseUIOName(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseUIOName(%q) = %+v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseUIOName(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.in {
			t.Errorf("String() = %q, want %q", s, tt.in)
		}
	}
}

// configTree builds the configfs directory of one device.
type configTree struct {
	t    *testing.T
	root Roots
	dir  string
}

func newConfigTree(t *testing.T) *configTree {
	root := t.TempDir()
	c := &configTree{t: t, root: Roots{ConfigDir: root}, dir: filepath.Join(root, "target", "core", "user_3", "disk0")}
	c.set(map[string]string{
		"attrib/hw_block_size":       "4096\n",
		"attrib/hw_max_sectors":      "1024\n",
		"attrib/emulate_write_cache": "1\n",
		"attrib/cmd_time_out":        "30\n",
		"attrib/max_data_area_mb":    "1024\n",
		"info":                       "Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 128\n        Config: file//var/lib/disk0.img Size: 1073741824 MaxDataAreaMB: 1024 DataPagesPerBlk: 1 CmdRingSizeMB: 8\n",
		"wwn/vpd_unit_serial":        "T10 VPD Unit Serial Number: 2c5f4a62-4b12-4bd5-a7f6-f1d7f0c4a2e1\n",
		"action/block_dev":           "",
		"action/reset_ring":          "",
	})
	return c
}

func (c *configTree) set(files map[string]string) {
	for rel, content := range files {
		writeFile(c.t, filepath.Join(c.dir, rel), []byte(content))
	}
}

func (c *configTree) setAt(base string, files map[string]string) {
	for rel, content := range files {
		writeFile(c.t, filepath.Join(c.root.ConfigDir, "target", base, rel), []byte(content))
	}
}

func (c *configTree) open() *Configfs {
	c.t.Helper()
	cfs, err := c.root.Configfs("tcm-user/3/disk0/file//var/lib/disk0.img")
	if err != nil {
		c.t.Fatalf("Configfs: %v", err)
	}
	return cfs
}

func TestConfigfsFindsTheDevice(t *testing.T) {
	c := newConfigTree(t)
	cfs := c.open()
	if cfs.Dir() != c.dir || cfs.Name().Device != "disk0" {
		t.Errorf("Dir %q Name %+v", cfs.Dir(), cfs.Name())
	}
	if _, err := c.root.Configfs("tcm-user/4/disk0"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("device without a directory: %v, want ErrNotExist", err)
	}
	if _, err := c.root.Configfs("tcm-user/3/disk0/../x"); err != nil {
		t.Errorf("dev_config with .. is just text: %v", err)
	}
	writeFile(t, filepath.Join(c.root.ConfigDir, "target", "core", "user_3", "notadir"), nil)
	if _, err := c.root.Configfs("tcm-user/3/notadir"); err == nil {
		t.Error("a file taken for a device directory")
	}
}

func TestAttrib(t *testing.T) {
	c := newConfigTree(t)
	got, err := c.open().Attrib()
	if err != nil {
		t.Fatal(err)
	}
	want := Attrib{HWBlockSize: 4096, HWMaxSectors: 1024, EmulateWriteCache: true, CmdTimeOut: 30 * time.Second, MaxDataAreaMB: 1024}
	if got != want {
		t.Errorf("Attrib = %+v, want %+v", got, want)
	}

	for _, bad := range []struct{ file, content string }{
		{"attrib/hw_block_size", "0\n"},
		{"attrib/hw_block_size", "4k\n"},
		{"attrib/hw_block_size", "-512\n"},
		{"attrib/hw_max_sectors", "4294967296\n"},
		{"attrib/emulate_write_cache", "2\n"},
		{"attrib/cmd_time_out", strings.Repeat("9", 100)},
		{"attrib/max_data_area_mb", ""},
	} {
		c := newConfigTree(t)
		c.set(map[string]string{bad.file: bad.content})
		if a, err := c.open().Attrib(); err == nil {
			t.Errorf("%s = %q: Attrib = %+v, want an error", bad.file, bad.content, a)
		} else if !strings.Contains(err.Error(), bad.file) {
			t.Errorf("%s = %q: error %q does not name the file", bad.file, bad.content, err)
		}
	}
	c = newConfigTree(t)
	os.Remove(filepath.Join(c.dir, "attrib/cmd_time_out"))
	if _, err := c.open().Attrib(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing cmd_time_out: %v, want ErrNotExist", err)
	}
}

func TestParseDevInfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    DevInfo
		wantErr bool
	}{
		{name: "6.1", in: "Config: rbd/pool/img Size: 10737418240 MaxDataAreaMB: 1024 DataPagesPerBlk: 1 CmdRingSizeMB: 8\n",
			want: DevInfo{"rbd/pool/img", 10737418240, 1024, 1, 8}},
		{name: "6.1 as the VM's kernel prints it, after the core's device state",
			in:   "Status: DEACTIVATED  Max Queue Depth: 0  SectorSize: 0  HwMaxSectors: 128\n        Config: file//tmp/skeleton.img Size: 268435456 MaxDataAreaMB: 1024 DataPagesPerBlk: 1 CmdRingSizeMB: 8\n",
			want: DevInfo{"file//tmp/skeleton.img", 268435456, 1024, 1, 8}},
		{name: "before 5.13", in: "Config: file//a Size: 512 MaxDataAreaMB: 8\n", want: DevInfo{"file//a", 512, 8, 0, 0}},
		{name: "no dev_config", in: "Config: NULL Size: 0 MaxDataAreaMB: 1024 DataPagesPerBlk: 1 CmdRingSizeMB: 8\n",
			want: DevInfo{"", 0, 1024, 1, 8}},
		{name: "dev_config with spaces and a Size", in: "Config: file//my disk Size: 5 Size: 4096 MaxDataAreaMB: 2\n",
			want: DevInfo{"file//my disk Size: 5", 4096, 2, 0, 0}},
		{name: "field from a newer kernel", in: "Config: x Size: 1 Future: 7 MaxDataAreaMB: 2\n", want: DevInfo{"x", 1, 2, 0, 0}},
		{name: "no Config", in: "Size: 1\n", wantErr: true},
		{name: "no Size", in: "Config: x MaxDataAreaMB: 2\n", wantErr: true},
		{name: "size not a number", in: "Config: x Size: big\n", wantErr: true},
		{name: "negative size", in: "Config: x Size: -1\n", wantErr: true},
		{name: "dangling key", in: "Config: x Size: 1 MaxDataAreaMB:\n", wantErr: true},
		{name: "key twice", in: "Config: x Size: 1 MaxDataAreaMB: 1 MaxDataAreaMB: 2\n", wantErr: true},
		{name: "ring size overflow", in: "Config: x Size: 1 CmdRingSizeMB: 4294967296\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDevInfo(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseDevInfo = %+v, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseDevInfo = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}

	c := newConfigTree(t)
	info, err := c.open().Info()
	if err != nil || info.Size != 1<<30 || info.Config != "file//var/lib/disk0.img" {
		t.Errorf("Info = %+v, %v", info, err)
	}
	c.set(map[string]string{"info": strings.Repeat("x", 5000)})
	if _, err := c.open().Info(); err == nil {
		t.Error("Info read a 5000-byte file")
	}
}

func TestUnitSerial(t *testing.T) {
	tests := []struct {
		content string
		want    string
		wantErr bool
	}{
		{content: "T10 VPD Unit Serial Number: 2c5f4a62-4b12\n", want: "2c5f4a62-4b12"},
		{content: "T10 VPD Unit Serial Number: \n", want: ""},
		{content: "2c5f4a62-4b12\n", wantErr: true},
		{content: "T10 VPD Unit Serial Number: bad\x01serial\n", wantErr: true},
		{content: "T10 VPD Unit Serial Number: caf\u00e9\n", wantErr: true},
	}
	for _, tt := range tests {
		c := newConfigTree(t)
		c.set(map[string]string{"wwn/vpd_unit_serial": tt.content})
		got, err := c.open().UnitSerial()
		if tt.wantErr != (err != nil) || got != tt.want {
			t.Errorf("vpd_unit_serial %q: UnitSerial = %q, %v", tt.content, got, err)
		}
	}
}

func TestActions(t *testing.T) {
	c := newConfigTree(t)
	cfs := c.open()
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(c.dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, step := range []struct {
		do   func() error
		file string
		want string
	}{
		{func() error { return cfs.BlockDev(true) }, "action/block_dev", "1"},
		{func() error { return cfs.ResetRing(ResetBusy) }, "action/reset_ring", "1"},
		{func() error { return cfs.ResetRing(ResetCheckCondition) }, "action/reset_ring", "2"},
		{func() error { return cfs.BlockDev(false) }, "action/block_dev", "0"},
	} {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		if got := read(step.file); got != step.want {
			t.Errorf("%s = %q, want %q", step.file, got, step.want)
		}
	}
	if err := cfs.ResetRing(3); err == nil {
		t.Error("ResetRing(3) succeeded")
	}
	os.Remove(filepath.Join(c.dir, "action/block_dev"))
	if err := cfs.BlockDev(true); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("BlockDev without the file: %v, want ErrNotExist (and no file created)", err)
	}
}

// aluaGroupFiles is a group as LIO shows it.
func aluaGroupFiles(id, members string) map[string]string {
	return map[string]string{
		"tg_pt_gp_id":                      id,
		"alua_access_state":                "0\n",
		"alua_access_status":               "None\n",
		"alua_access_type":                 "Implicit and Explicit\n",
		"alua_support_transitioning":       "1\n",
		"alua_support_offline":             "1\n",
		"alua_support_lba_dependent":       "0\n",
		"alua_support_unavailable":         "1\n",
		"alua_support_standby":             "1\n",
		"alua_support_active_nonoptimized": "1\n",
		"alua_support_active_optimized":    "1\n",
		"preferred":                        "0\n",
		"implicit_trans_secs":              "0\n",
		"members":                          members,
	}
}

func prefixed(prefix string, files map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range files {
		out[prefix+k] = v
	}
	return out
}

const (
	iqn      = "iqn.2003-01.org.linux-iscsi.host.x8664:sn.1234"
	loopWWN  = "naa.5001405b2a3e1c9d"
	allSup   = ALUASupTransitioning | ALUASupOffline | ALUASupUnavailable | ALUASupStandby | ALUASupActiveNonOptimized | ALUASupActiveOptimized
	iscsiLUN = "iscsi/" + iqn + "/tpgt_1/"
)

// aluaTree is a device exported on iSCSI (LUN 0 of tpgt_1, rtpi 1) and on
// tcm_loop (LUN 2, rtpi 2), both ports in default_tg_pt_gp, plus a group
// "ao" with id 1 and no members and a group whose id was never set.
func aluaTree(t *testing.T) *configTree {
	c := newConfigTree(t)
	// members: one line per port, each followed by a NUL byte.
	members := "iSCSI/" + iqn + "/tpgt_1/lun_0\n\x00loopback/" + loopWWN + "/tpgt_1/lun_2\n\x00"
	c.set(prefixed("alua/default_tg_pt_gp/", aluaGroupFiles("0\n", members)))
	ao := aluaGroupFiles("1\n", "")
	ao["alua_access_state"] = "2\n"
	ao["alua_access_status"] = "Altered by Explicit STPG\n"
	ao["alua_access_type"] = "Implict\n"
	ao["preferred"] = "1\n"
	ao["implicit_trans_secs"] = "10\n"
	c.set(prefixed("alua/ao/", ao))
	c.set(prefixed("alua/unset/", aluaGroupFiles("", "")))
	c.setAt(iscsiLUN, map[string]string{
		"enable":                              "1\n",
		"lun/lun_0/statistics/scsi_port/indx": "1\n",
		"lun/lun_0/statistics/scsi_transport/proto_id": "5\n",
	})
	c.setAt("loopback/"+loopWWN+"/tpgt_1/", map[string]string{
		"lun/lun_2/statistics/scsi_port/indx":          "2\n",
		"lun/lun_2/statistics/scsi_transport/proto_id": "6\n",
	})
	return c
}

func TestALUAGroups(t *testing.T) {
	c := aluaTree(t)
	got, err := c.open().ALUAGroups()
	if err != nil {
		t.Fatal(err)
	}
	want := []ALUAGroup{{
		Name: "ao", ID: 1, State: 2, Status: ALUAStatusAlteredExplicit, AccessType: ALUAImplicit,
		Supported: allSup, Preferred: true, ImplicitTransSecs: 10,
	}, {
		Name: "default_tg_pt_gp", ID: 0, State: 0, Status: ALUAStatusNone, AccessType: ALUAImplicit | ALUAExplicit,
		Supported: allSup,
		Members: []TargetPort{
			{Fabric: "iSCSI", WWN: iqn, TPGT: 1, LUN: 0, RelPortID: 1, ProtoID: 5, Enabled: true},
			{Fabric: "loopback", WWN: loopWWN, TPGT: 1, LUN: 2, RelPortID: 2, ProtoID: 6, Enabled: true, AlwaysOn: true},
		},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ALUAGroups (-want +got):\n%s", diff)
	}

	// A disabled TPG and an empty default group.
	c = aluaTree(t)
	c.setAt(iscsiLUN, map[string]string{"enable": "0\n"})
	c.set(map[string]string{"alua/default_tg_pt_gp/members": "iSCSI/" + iqn + "/tpgt_1/lun_0\n\x00"})
	got, err = c.open().ALUAGroups()
	if err != nil || len(got) != 2 || len(got[1].Members) != 1 || got[1].Members[0].Enabled {
		t.Fatalf("with tpgt_1 disabled: %+v, %v", got, err)
	}
	c.set(map[string]string{"alua/default_tg_pt_gp/members": ""})
	got, err = c.open().ALUAGroups()
	if err != nil || len(got) != 1 || got[0].Name != "ao" {
		t.Fatalf("with an empty default group: %+v, %v; want only ao", got, err)
	}
}

func TestALUAGroupsRejectBadFiles(t *testing.T) {
	tests := []struct {
		name  string
		group string
		files map[string]string
	}{
		{"id not a number", "ao", map[string]string{"tg_pt_gp_id": "one\n"}},
		{"id past 16 bits", "ao", map[string]string{"tg_pt_gp_id": "65536\n"}},
		{"state past 4 bits", "ao", map[string]string{"alua_access_state": "16\n"}},
		{"unknown status", "ao", map[string]string{"alua_access_status": "Fine\n"}},
		{"unknown access type", "ao", map[string]string{"alua_access_type": "Both\n"}},
		{"support flag 2", "ao", map[string]string{"alua_support_standby": "2\n"}},
		{"member with three parts", "default_tg_pt_gp", map[string]string{"members": "iSCSI/" + iqn + "/lun_0\n\x00"}},
		{"member with a .. wwn", "default_tg_pt_gp", map[string]string{"members": "iSCSI/../tpgt_1/lun_0\n\x00"}},
		{"member without tpgt_", "default_tg_pt_gp", map[string]string{"members": "iSCSI/" + iqn + "/1/lun_0\n\x00"}},
		{"member without lun_", "default_tg_pt_gp", map[string]string{"members": "iSCSI/" + iqn + "/tpgt_1/0\n\x00"}},
		{"member tpgt past 16 bits", "default_tg_pt_gp", map[string]string{"members": "iSCSI/" + iqn + "/tpgt_70000/lun_0\n\x00"}},
		{"member of an unknown LUN", "default_tg_pt_gp", map[string]string{"members": "iSCSI/" + iqn + "/tpgt_1/lun_9\n\x00"}},
		{"members file too long", "default_tg_pt_gp", map[string]string{"members": strings.Repeat("x", 4097)}},
		{"missing support file", "ao", map[string]string{"alua_support_offline": "\x00delete"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := aluaTree(t)
			for f, v := range tt.files {
				if v == "\x00delete" {
					os.Remove(filepath.Join(c.dir, "alua", tt.group, f))
					continue
				}
				c.set(map[string]string{"alua/" + tt.group + "/" + f: v})
			}
			if got, err := c.open().ALUAGroups(); err == nil {
				t.Fatalf("ALUAGroups = %+v, want an error", got)
			} else {
				t.Log(err)
			}
		})
	}

	for _, bad := range []string{"0\n", "65536\n", "x\n"} {
		c := aluaTree(t)
		c.setAt(iscsiLUN, map[string]string{"lun/lun_0/statistics/scsi_port/indx": bad})
		if _, err := c.open().ALUAGroups(); err == nil {
			t.Errorf("relative port id %q accepted", bad)
		}
	}
	c := aluaTree(t)
	c.setAt(iscsiLUN, map[string]string{"lun/lun_0/statistics/scsi_transport/proto_id": "16\n"})
	if _, err := c.open().ALUAGroups(); err == nil {
		t.Error("protocol id 16 accepted")
	}
	c = newConfigTree(t)
	if _, err := c.open().ALUAGroups(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no alua directory: %v, want ErrNotExist", err)
	}
}
