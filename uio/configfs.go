package uio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// uioNamePrefix starts the uio name of every TCMU device
// (tcmu_update_uio_info).
const uioNamePrefix = "tcm-user/"

// UIOName is a TCMU device's uio name taken apart. The kernel builds it as
// "tcm-user/<hba>/<dev_name>/<dev_config>", or without "/<dev_config>"
// when dev_config is empty; dev_config may itself contain '/'.
type UIOName struct {
	HBA    uint32 // N in core/user_N (the hba's host_id)
	Device string // the backstore's configfs directory name
	Config string // dev_config, e.g. "file//var/lib/disk.img"; may be empty
}

// ParseUIOName parses a TCMU uio name. dev_name becomes a path component,
// so it must be a plain name.
func ParseUIOName(s string) (UIOName, error) {
	rest, ok := strings.CutPrefix(s, uioNamePrefix)
	if !ok {
		return UIOName{}, fmt.Errorf("parse uio name %q: no %q prefix", s, uioNamePrefix)
	}
	hba, rest, _ := strings.Cut(rest, "/")
	n, err := strconv.ParseUint(hba, 10, 32)
	if err != nil {
		return UIOName{}, fmt.Errorf("parse uio name %q: hba %q: %w", s, hba, err)
	}
	dev, cfg, hasCfg := strings.Cut(rest, "/")
	if err := checkPathName(dev); err != nil {
		return UIOName{}, fmt.Errorf("parse uio name %q: device name: %w", s, err)
	}
	if hasCfg && cfg == "" {
		// The kernel leaves out the separator with an empty dev_config.
		return UIOName{}, fmt.Errorf("parse uio name %q: empty dev_config after '/'", s)
	}
	return UIOName{HBA: uint32(n), Device: dev, Config: cfg}, nil
}

// String rebuilds the uio name.
func (n UIOName) String() string {
	s := uioNamePrefix + strconv.FormatUint(uint64(n.HBA), 10) + "/" + n.Device
	if n.Config != "" {
		s += "/" + n.Config
	}
	return s
}

// checkPathName accepts s as one component of a configfs path.
func checkPathName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case s == "." || s == "..":
		return fmt.Errorf("%q is not a name", s)
	case strings.ContainsAny(s, "/\x00"):
		return fmt.Errorf("%q contains '/' or NUL", s)
	}
	return nil
}

// Configfs is one TCMU device's configfs directory,
// <configfs>/target/core/user_<hba>/<dev_name>. Every read is fresh (the
// files change under a running device: rtslib writes wwn/vpd_unit_serial
// after enable, targetcli changes ALUA states) and bounded in size, and
// every value is parsed strictly. Methods are safe for concurrent use.
type Configfs struct {
	name   UIOName
	dir    string // the device's directory
	target string // <configfs>/target, where fabric directories live
}

// Configfs returns the configfs view of the TCMU device with the given
// uio name. It fails if the device's directory does not exist.
func (r Roots) Configfs(uioName string) (*Configfs, error) {
	n, err := ParseUIOName(uioName)
	if err != nil {
		return nil, err
	}
	target := filepath.Join(r.configfs(), "target")
	dir := filepath.Join(target, "core", "user_"+strconv.FormatUint(uint64(n.HBA), 10), n.Device)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("find configfs of %s: %w", uioName, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("find configfs of %s: %s is not a directory", uioName, dir)
	}
	return &Configfs{name: n, dir: dir, target: target}, nil
}

// Dir returns the device's configfs directory.
func (c *Configfs) Dir() string { return c.dir }

// Name returns the parsed uio name the view was made from.
func (c *Configfs) Name() UIOName { return c.name }

// Attrib holds the attrib/ values a handler needs.
type Attrib struct {
	HWBlockSize       uint32        // attrib/hw_block_size: logical block size in bytes
	HWMaxSectors      uint32        // attrib/hw_max_sectors: largest transfer, in blocks
	EmulateWriteCache bool          // attrib/emulate_write_cache
	CmdTimeOut        time.Duration // attrib/cmd_time_out (whole seconds); 0 disables
	MaxDataAreaMB     uint32        // attrib/max_data_area_mb
}

// Attrib reads the device's attrib/ files.
func (c *Configfs) Attrib() (Attrib, error) {
	var a Attrib
	var err error
	if a.HWBlockSize, err = c.readUint32("attrib/hw_block_size"); err != nil {
		return Attrib{}, err
	}
	if a.HWBlockSize == 0 {
		return Attrib{}, fmt.Errorf("read %s: block size 0", c.path("attrib/hw_block_size"))
	}
	if a.HWMaxSectors, err = c.readUint32("attrib/hw_max_sectors"); err != nil {
		return Attrib{}, err
	}
	if a.EmulateWriteCache, err = c.readBool("attrib/emulate_write_cache"); err != nil {
		return Attrib{}, err
	}
	secs, err := c.readUint32("attrib/cmd_time_out")
	if err != nil {
		return Attrib{}, err
	}
	a.CmdTimeOut = time.Duration(secs) * time.Second
	if a.MaxDataAreaMB, err = c.readUint32("attrib/max_data_area_mb"); err != nil {
		return Attrib{}, err
	}
	return a, nil
}

// DevInfo is the device's info file: "Config: <cfg> Size: <n>
// MaxDataAreaMB: <n> DataPagesPerBlk: <n> CmdRingSizeMB: <n>"
// (tcmu_show_configfs_dev_params). Kernels before 5.13 print only the
// first three; the others are then 0.
type DevInfo struct {
	Config          string // "" when the kernel prints NULL
	Size            uint64 // dev_size in bytes
	MaxDataAreaMB   uint32
	DataPagesPerBlk uint32
	CmdRingSizeMB   uint32
}

// Info reads and parses the device's info file.
func (c *Configfs) Info() (DevInfo, error) {
	path := c.path("info")
	s, err := readAttr(path, maxSysfsAttr)
	if err != nil {
		return DevInfo{}, err
	}
	info, err := parseDevInfo(s)
	if err != nil {
		return DevInfo{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return info, nil
}

// parseDevInfo parses the info file. The kernel first prints the core's
// device state (transport_dump_dev_state: "Status: ... HwMaxSectors: N"),
// then TCMU's parameters from "Config: " on. Those are parsed from the
// right, because dev_config, which comes first, is free text that may
// contain spaces.
func parseDevInfo(s string) (DevInfo, error) {
	s = strings.TrimSpace(s)
	start := strings.Index(s, "Config: ")
	if start < 0 {
		return DevInfo{}, fmt.Errorf("%q has no \"Config: \"", s)
	}
	rest := s[start+len("Config: "):]
	i := strings.LastIndex(rest, " Size: ")
	if i < 0 {
		return DevInfo{}, fmt.Errorf("%q has no Size", s)
	}
	var info DevInfo
	if cfg := rest[:i]; cfg != "NULL" {
		info.Config = cfg
	}
	fields := strings.Fields(rest[i+1:])
	if len(fields)%2 != 0 {
		return DevInfo{}, fmt.Errorf("%q: fields after Config are not key/value pairs", s)
	}
	seen := map[string]bool{}
	for j := 0; j < len(fields); j += 2 {
		key, val := fields[j], fields[j+1]
		if seen[key] {
			return DevInfo{}, fmt.Errorf("%q: %s twice", s, key)
		}
		seen[key] = true
		var err error
		switch key {
		case "Size:":
			info.Size, err = strconv.ParseUint(val, 10, 64)
		case "MaxDataAreaMB:":
			info.MaxDataAreaMB, err = parseUint32(val)
		case "DataPagesPerBlk:":
			info.DataPagesPerBlk, err = parseUint32(val)
		case "CmdRingSizeMB:":
			info.CmdRingSizeMB, err = parseUint32(val)
		default:
			// A field a newer kernel added: skip it, its value is not ours to check.
			continue
		}
		if err != nil {
			return DevInfo{}, fmt.Errorf("%q: %s %q: %w", s, key, val, err)
		}
	}
	return info, nil
}

// UnitSerial reads wwn/vpd_unit_serial, the VPD page 0x80 serial number,
// "" if none was set. rtslib writes it after enable, so call it when
// INQUIRY asks, not when the device is added.
func (c *Configfs) UnitSerial() (string, error) {
	path := c.path("wwn/vpd_unit_serial")
	s, err := readAttr(path, maxSysfsAttr)
	if err != nil {
		return "", err
	}
	const prefix = "T10 VPD Unit Serial Number: " // target_wwn_vpd_unit_serial_show
	serial, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return "", fmt.Errorf("parse %s: %q does not start with %q", path, s, prefix)
	}
	for _, r := range serial {
		if r < 0x20 || r > 0x7e {
			return "", fmt.Errorf("parse %s: serial %q is not printable ASCII", path, serial)
		}
	}
	return serial, nil
}

// ResetMode is what action/reset_ring does to the commands in the ring.
type ResetMode int

const (
	// ResetBusy completes outstanding commands with BUSY, so
	// initiators retry them (tcmu-runner's choice when reopening).
	ResetBusy ResetMode = 1
	// ResetCheckCondition fails them with CHECK CONDITION.
	ResetCheckCondition ResetMode = 2
)

// BlockDev writes action/block_dev: true makes the kernel complete what
// the ring has finished, fail queued commands with BUSY and answer new
// ones with LUN BUSY; false lets commands through again.
func (c *Configfs) BlockDev(block bool) error {
	v := "0"
	if block {
		v = "1"
	}
	return c.write("action/block_dev", v)
}

// ResetRing writes action/reset_ring. The kernel completes every command
// in the ring, zeroes cmd_head and cmd_tail and clears a broken ring. Call
// Ring.Reset just before it (see there).
func (c *Configfs) ResetRing(mode ResetMode) error {
	if mode != ResetBusy && mode != ResetCheckCondition {
		return fmt.Errorf("reset ring of %s: mode %d is neither 1 nor 2", c.name, mode)
	}
	return c.write("action/reset_ring", strconv.Itoa(int(mode)))
}

func (c *Configfs) path(rel string) string { return filepath.Join(c.dir, rel) }

// write writes one configfs attribute; the kernel's error (EINVAL, EIO)
// comes back wrapped.
func (c *Configfs) write(rel, val string) error {
	path := c.path(rel)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.WriteString(val)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", val, path, err)
	}
	return nil
}

func (c *Configfs) readUint32(rel string) (uint32, error) {
	return readUint32File(c.path(rel))
}

func (c *Configfs) readBool(rel string) (bool, error) {
	return readBoolFile(c.path(rel))
}

func readUint32File(path string) (uint32, error) {
	s, err := readAttr(path, maxSizeAttr)
	if err != nil {
		return 0, err
	}
	v, err := parseUint32(s)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}

func readBoolFile(path string) (bool, error) {
	v, err := readUint32File(path)
	if err != nil {
		return false, err
	}
	if v > 1 {
		return false, fmt.Errorf("parse %s: %d is not 0 or 1", path, v)
	}
	return v == 1, nil
}

func parseUint32(s string) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, err
	}
	return uint32(v), nil
}
