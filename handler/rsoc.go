package handler

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// The command table REPORT SUPPORTED OPERATION CODES describes, and its
// rows in the order the command lists them: by operation code, then
// service action. They are set in init: reportSupportedOpcodes is itself a
// row of commands, so referring to commands from it would be an
// initialization cycle.
var (
	supportedTable    *opTable
	supportedCommands []*opInfo
)

func init() {
	supportedTable = commands
	supportedCommands = slices.Clone(commands.all)
	slices.SortStableFunc(supportedCommands, func(a, b *opInfo) int {
		return cmp.Or(cmp.Compare(a.op, b.op), cmp.Compare(a.sa, b.sa))
	})
}

// SUPPORT values of the one_command parameter data (SPC-4 6.35.3).
const (
	supportNo  = 0x1
	supportYes = 0x3
)

// timeoutsDescriptor is a command timeouts descriptor (SPC-4 6.35.4) whose
// timeouts are zero: not specified.
var timeoutsDescriptor = [12]byte{0x00, 0x0a}

// reportSupportedOpcodes answers REPORT SUPPORTED OPERATION CODES,
// MAINTENANCE IN A3h/0Ch (SPC-4 6.35), from the same table that dispatches
// commands, so the two cannot disagree.
func reportSupportedOpcodes(c *Cmd) result {
	cdb := c.CDB
	rctd := cdb[2]&0x80 != 0
	alloc := int(be32(cdb[6:]))
	switch opts := cdb[2] & 0x07; opts {
	case 0x0:
		return c.respond(allCommandsData(c.dev, rctd), alloc)
	case 0x1, 0x2, 0x3:
		p, ok := oneCommandData(c.dev, opts, cdb[3], be16(cdb[4:]), rctd)
		if !ok {
			return c.invalidCDBField(2, 2)
		}
		return c.respond(p, alloc)
	default:
		return c.invalidCDBField(2, 2)
	}
}

// allCommandsData is the all_commands parameter data: one command
// descriptor per supported operation code and service action.
func allCommandsData(d *Device, rctd bool) []byte {
	size := 8
	if rctd {
		size += len(timeoutsDescriptor)
	}
	p := make([]byte, 4, 4+size*len(supportedCommands))
	for _, o := range supportedCommands {
		if !o.enabledOn(d) {
			continue
		}
		var desc [8]byte
		desc[0] = o.op
		if o.hasSA {
			binary.BigEndian.PutUint16(desc[2:], o.sa)
			desc[5] = 0x01 // SERVACTV
		}
		if rctd {
			desc[5] |= 0x02 // CTDP
		}
		binary.BigEndian.PutUint16(desc[6:], uint16(len(o.usage)))
		p = append(p, desc[:]...)
		if rctd {
			p = append(p, timeoutsDescriptor[:]...)
		}
	}
	binary.BigEndian.PutUint32(p[0:], uint32(len(p)-4))
	return p
}

// oneCommandData is the one_command parameter data for reporting options
// 001b (operation code), 010b (operation code and service action) and 011b
// (either). It returns false when the options do not fit the operation
// code: 001b for one with service actions, 010b for one without.
func oneCommandData(d *Device, opts, op byte, sa uint16, rctd bool) ([]byte, bool) {
	rows := supportedTable.byOp[op]
	hasSA := len(rows) > 0 && rows[0].hasSA
	var row *opInfo
	switch {
	case len(rows) == 0:
		// Not supported, whatever the options.
	case opts == 0x1 && hasSA, opts == 0x2 && !hasSA:
		return nil, false
	case !hasSA:
		// 011b asks for service action 0 of a command without any.
		if opts == 0x1 || sa == 0 {
			row = rows[0]
		}
	default:
		for _, o := range rows {
			if o.sa == sa {
				row = o
			}
		}
	}
	if row == nil || !row.enabledOn(d) {
		return []byte{0, supportNo, 0, 0}, true
	}
	p := make([]byte, 4, 4+len(row.usage)+len(timeoutsDescriptor))
	p[1] = supportYes
	binary.BigEndian.PutUint16(p[2:], uint16(len(row.usage)))
	p = append(p, row.usage...)
	if rctd {
		p[1] |= 0x80 // CTDP
		p = append(p, timeoutsDescriptor[:]...)
	}
	return p, true
}
