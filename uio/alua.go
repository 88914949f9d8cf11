package uio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// TPGS bits of the ALUA access type, as in INQUIRY byte 5 (SPC-4 6.6.2)
// and the kernel's TPGS_IMPLICIT_ALUA / TPGS_EXPLICIT_ALUA.
const (
	ALUAImplicit = 0x10
	ALUAExplicit = 0x20
)

// Supported-state bits of an ALUA group, as in a REPORT TARGET PORT GROUPS
// descriptor (SPC-4 6.37, byte 1) and the kernel's ALUA_*_SUP.
const (
	ALUASupTransitioning      = 0x80
	ALUASupOffline            = 0x40
	ALUASupLBADependent       = 0x10
	ALUASupUnavailable        = 0x08
	ALUASupStandby            = 0x04
	ALUASupActiveNonOptimized = 0x02
	ALUASupActiveOptimized    = 0x01
)

// ALUA access status values (REPORT TARGET PORT GROUPS byte 5).
const (
	ALUAStatusNone             = 0
	ALUAStatusAlteredExplicit  = 1 // altered by SET TARGET PORT GROUPS
	ALUAStatusAlteredImplicit  = 2 // altered by implicit ALUA
	defaultTargetPortGroupName = "default_tg_pt_gp"
)

// ALUAGroup is one target port group under the device's alua/ directory.
type ALUAGroup struct {
	Name              string // directory name, e.g. "default_tg_pt_gp"
	ID                uint16 // tg_pt_gp_id
	State             uint8  // alua_access_state: the SPC-4 asymmetric access state
	Status            uint8  // alua_access_status: ALUAStatus*
	AccessType        uint8  // alua_access_type: ALUAImplicit|ALUAExplicit bits, 0 for None
	Supported         uint8  // alua_support_*: ALUASup* bits
	Preferred         bool   // preferred
	ImplicitTransSecs uint32 // implicit_trans_secs
	Members           []TargetPort
}

// TargetPort is a member of an ALUA group: a LUN of a fabric's target
// portal group that exports the device.
type TargetPort struct {
	Fabric    string // fabric name as in members, e.g. "iSCSI", "loopback"
	WWN       string // target name, e.g. "iqn.2003-01.org.linux-iscsi.x"
	TPGT      uint16 // target portal group tag
	LUN       uint64
	RelPortID uint16 // relative target port id (lun_rtpi), statistics/scsi_port/indx
	ProtoID   uint8  // SCSI protocol identifier, statistics/scsi_transport/proto_id
	Enabled   bool   // tpgt_N/enable
	AlwaysOn  bool   // no tpgt_N/enable: tcm_loop's TPGs cannot be disabled
}

// ALUAGroups reads the device's target port groups in name order.
//
// Which groups are returned: every group with a valid tg_pt_gp_id (a
// group whose id was never set shows an empty tg_pt_gp_id and cannot be
// reported to an initiator), and default_tg_pt_gp (id 0) only when it has
// members. tcmu-runner skips default_tg_pt_gp altogether, but in LIO every
// LUN not put in another group is a member of it, and the kernel's own
// REPORT TARGET PORT GROUPS lists it; leaving it out would make RTPG on a
// device exported without ALUA set-up report no port at all. An empty
// default group is left out, since it describes no port.
func (c *Configfs) ALUAGroups() ([]ALUAGroup, error) {
	dir := c.path("alua")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read ALUA groups: %w", err)
	}
	var groups []ALUAGroup
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		g, ok, err := c.aluaGroup(filepath.Join(dir, e.Name()), e.Name())
		if err != nil {
			return nil, fmt.Errorf("read ALUA group %s: %w", e.Name(), err)
		}
		if !ok || (g.Name == defaultTargetPortGroupName && len(g.Members) == 0) {
			continue
		}
		groups = append(groups, g)
	}
	return groups, nil
}

// aluaGroup reads one group; ok is false if it has no valid id.
func (c *Configfs) aluaGroup(dir, name string) (g ALUAGroup, ok bool, err error) {
	g.Name = name
	idPath := filepath.Join(dir, "tg_pt_gp_id")
	id, err := readAttr(idPath, maxSizeAttr)
	if err != nil {
		return g, false, err
	}
	if id == "" {
		return g, false, nil
	}
	v, err := strconv.ParseUint(id, 10, 16)
	if err != nil {
		return g, false, fmt.Errorf("parse %s: %w", idPath, err)
	}
	g.ID = uint16(v)

	state, err := readUint32File(filepath.Join(dir, "alua_access_state"))
	if err != nil {
		return g, false, err
	}
	if state > 0x0f {
		return g, false, fmt.Errorf("parse %s: access state %d is not a 4-bit value", filepath.Join(dir, "alua_access_state"), state)
	}
	g.State = uint8(state)

	if g.Status, err = readALUAStatus(filepath.Join(dir, "alua_access_status")); err != nil {
		return g, false, err
	}
	if g.AccessType, err = readALUAType(filepath.Join(dir, "alua_access_type")); err != nil {
		return g, false, err
	}
	for _, s := range []struct {
		file string
		bit  uint8
	}{
		{"alua_support_transitioning", ALUASupTransitioning},
		{"alua_support_offline", ALUASupOffline},
		{"alua_support_lba_dependent", ALUASupLBADependent},
		{"alua_support_unavailable", ALUASupUnavailable},
		{"alua_support_standby", ALUASupStandby},
		{"alua_support_active_nonoptimized", ALUASupActiveNonOptimized},
		{"alua_support_active_optimized", ALUASupActiveOptimized},
	} {
		on, err := readBoolFile(filepath.Join(dir, s.file))
		if err != nil {
			return g, false, err
		}
		if on {
			g.Supported |= s.bit
		}
	}
	if g.Preferred, err = readBoolFile(filepath.Join(dir, "preferred")); err != nil {
		return g, false, err
	}
	if g.ImplicitTransSecs, err = readUint32File(filepath.Join(dir, "implicit_trans_secs")); err != nil {
		return g, false, err
	}
	if g.Members, err = c.readMembers(filepath.Join(dir, "members")); err != nil {
		return g, false, err
	}
	return g, true, nil
}

func readALUAStatus(path string) (uint8, error) {
	s, err := readAttr(path, maxSizeAttr)
	if err != nil {
		return 0, err
	}
	switch s { // core_alua_dump_status
	case "None":
		return ALUAStatusNone, nil
	case "Altered by Explicit STPG":
		return ALUAStatusAlteredExplicit, nil
	case "Altered by Implicit ALUA":
		return ALUAStatusAlteredImplicit, nil
	}
	return 0, fmt.Errorf("parse %s: unknown ALUA access status %q", path, s)
}

func readALUAType(path string) (uint8, error) {
	s, err := readAttr(path, maxSizeAttr)
	if err != nil {
		return 0, err
	}
	// core_alua_show_access_type; kernels before 3.12 misspelled
	// "Implict" and "Explict".
	switch s {
	case "None":
		return 0, nil
	case "Implicit", "Implict":
		return ALUAImplicit, nil
	case "Explicit", "Explict":
		return ALUAExplicit, nil
	case "Implicit and Explicit", "Implict and Explict":
		return ALUAImplicit | ALUAExplicit, nil
	}
	return 0, fmt.Errorf("parse %s: unknown ALUA access type %q", path, s)
}

// readMembers parses a members file: one "<fabric>/<wwn>/tpgt_<N>/lun_<M>"
// per line, each line followed by a NUL byte as well as the newline
// (target_tg_pt_gp_members_show copies the terminator).
func (c *Configfs) readMembers(path string) ([]TargetPort, error) {
	b, err := readBounded(path, maxSysfsAttr)
	if err != nil {
		return nil, err
	}
	var ports []TargetPort
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.Trim(line, "\x00")
		if line == "" {
			continue
		}
		p, err := parseMember(line)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		if err := c.readPort(&p); err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	slices.SortFunc(ports, func(a, b TargetPort) int { return int(a.RelPortID) - int(b.RelPortID) })
	return ports, nil
}

func parseMember(s string) (TargetPort, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 4 {
		return TargetPort{}, fmt.Errorf("member %q is not <fabric>/<wwn>/tpgt_<n>/lun_<n>", s)
	}
	for _, p := range parts[:2] {
		if err := checkPathName(p); err != nil {
			return TargetPort{}, fmt.Errorf("member %q: %w", s, err)
		}
	}
	tpgt, ok := strings.CutPrefix(parts[2], "tpgt_")
	if !ok {
		return TargetPort{}, fmt.Errorf("member %q: %q is not tpgt_<n>", s, parts[2])
	}
	t, err := strconv.ParseUint(tpgt, 10, 16)
	if err != nil {
		return TargetPort{}, fmt.Errorf("member %q: tpgt: %w", s, err)
	}
	lun, ok := strings.CutPrefix(parts[3], "lun_")
	if !ok {
		return TargetPort{}, fmt.Errorf("member %q: %q is not lun_<n>", s, parts[3])
	}
	l, err := strconv.ParseUint(lun, 10, 64)
	if err != nil {
		return TargetPort{}, fmt.Errorf("member %q: lun: %w", s, err)
	}
	return TargetPort{Fabric: parts[0], WWN: parts[1], TPGT: uint16(t), LUN: l}, nil
}

// fabricDir maps a fabric name as members prints it to its configfs
// directory: iSCSI registers as "iSCSI" with the alias "iscsi", which
// target_register_template uses for the directory.
func fabricDir(fabric string) string {
	if fabric == "iSCSI" {
		return "iscsi"
	}
	return fabric
}

// readPort fills in what the fabric's configfs says about a member port.
func (c *Configfs) readPort(p *TargetPort) error {
	tpg := filepath.Join(c.target, fabricDir(p.Fabric), p.WWN, "tpgt_"+strconv.FormatUint(uint64(p.TPGT), 10))
	stats := filepath.Join(tpg, "lun", "lun_"+strconv.FormatUint(p.LUN, 10), "statistics")

	indx := filepath.Join(stats, "scsi_port", "indx")
	rtpi, err := readUint32File(indx)
	if err != nil {
		return fmt.Errorf("read relative port id: %w", err)
	}
	if rtpi == 0 || rtpi > 0xffff {
		// SPC-4: relative port 0 is reserved; lun_rtpi is a u16.
		return fmt.Errorf("parse %s: relative port id %d out of range", indx, rtpi)
	}
	p.RelPortID = uint16(rtpi)

	protoPath := filepath.Join(stats, "scsi_transport", "proto_id")
	proto, err := readUint32File(protoPath)
	if err != nil {
		return fmt.Errorf("read protocol id: %w", err)
	}
	if proto > 0x0f {
		return fmt.Errorf("parse %s: protocol id %d is not a 4-bit value", protoPath, proto)
	}
	p.ProtoID = uint8(proto)

	if p.Enabled, err = readBoolFile(filepath.Join(tpg, "enable")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// tcm_loop has no enable attribute: its TPGs are always on.
			p.Enabled, p.AlwaysOn = true, true
			return nil
		}
		return fmt.Errorf("read port state: %w", err)
	}
	return nil
}
