package handler

// Hooks for the device-level tests of package handler_test.

// SetCopyPeer connects devices for EXTENDED COPY as the device manager does.
func SetCopyPeer(d *Device, peer func(naa [16]byte) (*Device, error)) { d.copyPeer = peer }

// NAADesignator is naaDesignator: tests build target descriptors with it.
func NAADesignator(serial string) [16]byte { return naaDesignator(serial) }

// BlockLimits returns the device's block limits as VPD page B0h reports
// them: maximum UNMAP LBA count, UNMAP descriptor count and WRITE SAME
// length.
func BlockLimits(d *Device) (maxUnmapLBAs, maxUnmapDescriptors uint32, maxWriteSame uint64) {
	l := d.blockLimits()
	return l.maxUnmapLBAs, l.maxUnmapDescriptors, l.maxWriteSame
}

// ReachMaxAge is reachMaxAge: how long a reading of configfs may allow
// copies between devices.
const ReachMaxAge = reachMaxAge

// LookupNAA is Manager.lookupNAA: the device serving a NAA designator.
func LookupNAA(m *Manager, naa [16]byte) *Device {
	d, _ := m.lookupNAA(naa)
	return d
}

// SoleTenant is soleTenant: who alone reaches a device by its access paths.
func SoleTenant(paths []string) (string, bool) { return soleTenant(paths) }
