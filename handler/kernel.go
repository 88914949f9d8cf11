package handler

import (
	"fmt"
	"time"

	"github.com/gotcmu/gotcmu/uio"
)

// uioKernel is the Kernel of a real system: /dev/uioN, sysfs and configfs
// through package uio.
type uioKernel struct{ roots uio.Roots }

// NewUIOKernel returns the Kernel that reaches devices through the running
// system's /dev, /sys and configfs.
func NewUIOKernel() Kernel { return uioKernel{} }

func (k uioKernel) Open(ref DeviceRef) (Port, error) {
	d, err := k.roots.Open(int(ref.Minor))
	if err != nil {
		return nil, err
	}
	if d.Name() != ref.UIOName {
		d.Close()
		return nil, fmt.Errorf("uio%d is %q, not %q", ref.Minor, d.Name(), ref.UIOName)
	}
	return d, nil
}

func (k uioKernel) Files(ref DeviceRef) (DeviceFiles, error) {
	c, err := k.roots.Configfs(ref.UIOName)
	if err != nil {
		return nil, err
	}
	return configfsFiles{c}, nil
}

func (k uioKernel) Reach() (Reach, error) { return k.roots.Reach() }

func (k uioKernel) List() ([]DeviceRef, error) {
	found, err := k.roots.Scan()
	if err != nil {
		return nil, err
	}
	refs := make([]DeviceRef, len(found))
	for i, f := range found {
		refs[i] = DeviceRef{UIOName: f.Name, Minor: uint32(f.Minor)}
	}
	return refs, nil
}

// configfsFiles adapts uio.Configfs to DeviceFiles.
type configfsFiles struct{ c *uio.Configfs }

func (f configfsFiles) UnitSerial() (string, error) { return f.c.UnitSerial() }

func (f configfsFiles) BlockDev(on bool) error { return f.c.BlockDev(on) }

func (f configfsFiles) ResetRing() error { return f.c.ResetRing(uio.ResetBusy) }

func (f configfsFiles) SetPortGroupState(id uint16, state uint8) error {
	return f.c.SetALUAState(id, state)
}

// CmdTimeout is the device's attrib/cmd_time_out (0: none), for the lock
// gate (lockgate.Config.CmdTimeout).
func (f configfsFiles) CmdTimeout() (time.Duration, error) {
	a, err := f.c.Attrib()
	return a.CmdTimeOut, err
}

func (f configfsFiles) Attributes() (size int64, blockSize, maxSectors uint32, writeCache bool, err error) {
	a, err := f.c.Attrib()
	if err != nil {
		return 0, 0, 0, false, err
	}
	info, err := f.c.Info()
	if err != nil {
		return 0, 0, 0, false, err
	}
	if info.Size > 1<<62 {
		return 0, 0, 0, false, fmt.Errorf("device size %d out of range", info.Size)
	}
	return int64(info.Size), a.HWBlockSize, a.HWMaxSectors, a.EmulateWriteCache, nil
}

func (f configfsFiles) PortGroups() ([]PortGroup, error) {
	gs, err := f.c.ALUAGroups()
	if err != nil {
		return nil, err
	}
	out := make([]PortGroup, len(gs))
	for i, g := range gs {
		pg := PortGroup{
			Name:                   g.Name,
			ID:                     g.ID,
			State:                  g.State,
			Supported:              g.Supported,
			Preferred:              g.Preferred,
			Implicit:               g.AccessType&uio.ALUAImplicit != 0,
			Explicit:               g.AccessType&uio.ALUAExplicit != 0,
			ImplicitTransitionSecs: uint8(min(g.ImplicitTransSecs, 255)),
			Status:                 g.Status,
		}
		for _, m := range g.Members {
			pg.Ports = append(pg.Ports, TargetPort{
				RelativeID: m.RelPortID,
				ProtocolID: m.ProtoID,
				TargetName: m.WWN,
				TPGT:       m.TPGT,
				Enabled:    m.Enabled,
				AlwaysOn:   m.AlwaysOn,
			})
		}
		out[i] = pg
	}
	return out, nil
}

// SetTPGEnabled implements lockgate.TPGSwitch for the running system's
// configfs.
func (f configfsFiles) SetTPGEnabled(wwn string, tpgt uint16, on bool) error {
	return f.c.SetTPGEnabled(wwn, tpgt, on)
}
