package handler

import "encoding/binary"

// Asymmetric access states (SPC-4 6.37, table 287).
const (
	aluaActiveOptimized    = 0x0
	aluaActiveNonOptimized = 0x1
	aluaStandby            = 0x2
	aluaUnavailable        = 0x3
	aluaLBADependent       = 0x4
	aluaOffline            = 0xe
	aluaTransitioning      = 0xf
)

// Bits of PortGroup.Supported (SPC-4 6.37, the target port group
// descriptor's byte 1).
const (
	supAO  = 0x01
	supANO = 0x02
	supS   = 0x04
	supU   = 0x08
	supLBD = 0x10
	supO   = 0x40
	supT   = 0x80
)

// reportTargetPortGroups answers REPORT TARGET PORT GROUPS, MAINTENANCE
// IN A3h/0Ah (SPC-4 6.37), from the port groups configfs has now: the
// gateway that owns a group's state may have changed it since the last
// command.
func reportTargetPortGroups(c *Cmd) result {
	cdb := c.CDB
	format := cdb[1] >> 5
	if format > 1 {
		return c.invalidCDBField(1, 7) // PARAMETER DATA FORMAT 000b or 001b
	}
	groups, err := c.dev.portGroups()
	if err != nil {
		return c.configFailed(err)
	}
	hdr := 4
	if format == 1 {
		hdr = 8
	}
	p := make([]byte, hdr, hdr+(8+4)*len(groups))
	if format == 1 {
		// Extended header: FORMAT TYPE 001b and the longest implicit
		// transition of any group (the one commands arrive through is
		// not known).
		p[4] = 0x10
		for _, g := range groups {
			p[5] = max(p[5], g.ImplicitTransitionSecs)
		}
	}
	for _, g := range groups {
		ports := g.Ports[:min(len(g.Ports), 0xff)]
		var desc [8]byte
		desc[0] = g.State & 0x0f
		if g.Preferred {
			desc[0] |= 0x80 // PREF
		}
		desc[1] = g.Supported
		binary.BigEndian.PutUint16(desc[2:], g.ID)
		desc[5] = g.Status
		desc[7] = byte(len(ports)) // TARGET PORT COUNT
		p = append(p, desc[:]...)
		for _, port := range ports {
			p = append(p, 0, 0, byte(port.RelativeID>>8), byte(port.RelativeID))
		}
	}
	binary.BigEndian.PutUint32(p[0:], uint32(len(p)-4)) // RETURN DATA LENGTH
	return c.respond(p, int(be32(cdb[6:])))
}

// explicitALUA enables SET TARGET PORT GROUPS: some group allows explicit
// transitions, and INQUIRY's TPGS says so. When configfs cannot be read
// the command stays enabled so that it reports the failure.
func explicitALUA(d *Device) bool {
	groups, err := d.portGroups()
	return err != nil || tpgs(groups)&0x2 != 0
}

// setTargetPortGroups answers SET TARGET PORT GROUPS, MAINTENANCE OUT
// A4h/0Ah (SPC-4 6.36): explicit ALUA. Every descriptor is checked before
// any group changes; each change is made through
// DeviceConfig.SetPortGroupState. tcmu-runner disabled this command as
// buggy (its explicit ALUA mapped states onto the image lock's tag); here
// the state lives in configfs, where RTPG reads it, and a group of this
// gateway's that becomes active/optimized makes the device's lock gate
// take the image's lock before the command completes.
func setTargetPortGroups(c *Cmd) result {
	n := int(be32(c.CDB[6:]))
	if n == 0 {
		return c.good() // no parameter list is not an error
	}
	p, ok := c.paramList(n)
	if !ok || len(p) < 4 || len(p)%4 != 0 {
		// A 4-byte reserved header and 4-byte descriptors.
		return c.check(keyIllegalRequest, ascParameterListLengthError)
	}
	groups, err := c.dev.portGroups()
	if err != nil {
		return c.configFailed(err)
	}
	if tpgs(groups)&0x2 == 0 {
		// The groups changed since dispatch: explicit ALUA is gone.
		return c.check(keyIllegalRequest, ascInvalidCommandOperationCode)
	}
	type change struct {
		id    uint16
		state uint8
	}
	changes := make([]change, 0, len(p)/4-1)
	for off := 4; off < len(p); off += 4 {
		state, id := p[off]&0x0f, be16(p[off+2:])
		g := findPortGroup(groups, id)
		if g == nil || !g.Explicit {
			return c.invalidParamField(off+2, -1)
		}
		if !explicitStateAllowed(g, state) {
			return c.invalidParamField(off, 3)
		}
		for _, ch := range changes {
			if ch.id == id {
				// One group given two states.
				return c.invalidParamField(off+2, -1)
			}
		}
		changes = append(changes, change{id, state})
	}
	for _, ch := range changes {
		if err := c.dev.cfg.SetPortGroupState(ch.id, ch.state); err != nil {
			c.dev.log.Error().Err(err).Uint16("group", ch.id).Uint8("state", ch.state).Msg("explicit ALUA transition")
			return c.check(keyHardwareError, ascSetTargetPortGroupsFailed)
		}
	}
	// A group of this gateway's that became active/optimized takes the
	// image's lock before the command completes (gate.go).
	return c.dev.explicitTransition(c)
}

func findPortGroup(groups []PortGroup, id uint16) *PortGroup {
	for i := range groups {
		if groups[i].ID == id {
			return &groups[i]
		}
	}
	return nil
}

// explicitStateAllowed reports whether SET TARGET PORT GROUPS may put group
// g in state: a primary state the group supports. Offline is a secondary
// state of single target ports, and transitioning is entered by the device
// itself, never requested (SPC-4 5.15.2.3; the kernel's
// core_alua_check_transition refuses both too). LBA dependent is refused
// as well: the kernel allows it only to implicit-only groups
// (target_tg_pt_gp_alua_access_state_store), and this command only
// changes groups that allow explicit transitions.
func explicitStateAllowed(g *PortGroup, state uint8) bool {
	var need uint8
	switch state {
	case aluaActiveOptimized:
		need = supAO
	case aluaActiveNonOptimized:
		need = supANO
	case aluaStandby:
		need = supS
	case aluaUnavailable:
		need = supU
	default:
		return false
	}
	return g.Supported&need != 0
}
