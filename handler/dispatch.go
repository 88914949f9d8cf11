package handler

import "github.com/gotcmu/gotcmu/handler/lockgate"

// opFlags describe how the dispatcher treats a command.
type opFlags uint8

const (
	// flagNoUA: the command is answered even with a unit attention
	// pending (INQUIRY, REQUEST SENSE; SAM-5 5.14).
	flagNoUA opFlags = 1 << iota
	// flagIO: the lock gate admits the command (implicit ALUA): at a
	// gateway without the image's lock, one that changes the medium
	// triggers lock acquisition; one that only reads passes.
	flagIO
	// flagBlockData: the Data-In or Data-Out buffer holds logical blocks
	// read from or written to the medium; the metrics count its bytes as
	// read or written.
	flagBlockData
)

// dataDir is the direction of a command's data transfer, when it has one.
type dataDir uint8

const (
	_        dataDir = iota // unset: a row must say
	dataNone                // no data buffer
	dataIn                  // Data-In: device to initiator
	dataOut                 // Data-Out: initiator to device
)

// mediumUse is what a command does to the medium.
type mediumUse uint8

const (
	_             mediumUse = iota // unset: a row must say
	mediumNone                     // does not touch it
	mediumReads                    // reads blocks or their state, changes nothing
	mediumChanges                  // changes it, or orders its changes (a flush)
)

// opInfo is one row of the command table: it dispatches the command and
// describes it for REPORT SUPPORTED OPERATION CODES, so the two can never
// disagree.
type opInfo struct {
	name string
	// op is the operation code; sa the service action when hasSA.
	op    byte
	sa    uint16
	hasSA bool
	// usage is the CDB usage data (SPC-4 6.35.3): the CDB length and, for
	// each byte, which bits the command looks at. usage[0] is the opcode.
	usage []byte
	// dir and medium say what the command moves and what it does to the
	// medium; every row sets both (TestCommandTableFacts). The lock gate
	// lets a gated command that does not change the medium pass without
	// the lock, and the metrics class comes from them (class).
	dir    dataDir
	medium mediumUse
	flags  opFlags
	fn     func(c *Cmd) result
	// enabled, when set, says whether the device supports the command
	// now (SET TARGET PORT GROUPS only with explicit ALUA groups). A
	// disabled row is answered as if absent, and REPORT SUPPORTED
	// OPERATION CODES leaves it out.
	enabled func(d *Device) bool
}

// class is the row's class in the metrics: reads and writes of blocks,
// and everything else.
func (o *opInfo) class() OpClass {
	switch {
	case o == nil || o.flags&flagBlockData == 0:
		return ClassOther
	case o.medium == mediumChanges:
		return ClassWrite
	case o.medium == mediumReads:
		return ClassRead
	}
	return ClassOther
}

// enabledOn reports whether the row is supported on d.
func (o *opInfo) enabledOn(d *Device) bool { return o.enabled == nil || o.enabled(d) }

// serviceAction returns the service action of a CDB whose opcode carries
// one (SPC-4 4.2.5.2): bits 0-4 of byte 1, or bytes 8-9 of a variable
// length CDB.
func serviceAction(cdb []byte) uint16 {
	if cdb[0] == 0x7f {
		if len(cdb) < 10 {
			return 0xffff
		}
		return be16(cdb[8:])
	}
	if len(cdb) < 2 {
		return 0xffff
	}
	return uint16(cdb[1] & 0x1f)
}

// opTable indexes the command table by opcode.
type opTable struct {
	byOp [256][]*opInfo
	all  []*opInfo
}

func newOpTable(families ...[]opInfo) *opTable {
	t := &opTable{}
	for _, f := range families {
		for i := range f {
			o := &f[i]
			if len(o.usage) == 0 || o.usage[0] != o.op {
				panic("handler: command table row " + o.name + " has no CDB usage data")
			}
			t.byOp[o.op] = append(t.byOp[o.op], o)
			t.all = append(t.all, o)
		}
	}
	return t
}

// lookup finds the row for a CDB, or nil.
func (t *opTable) lookup(cdb []byte) *opInfo {
	rows := t.byOp[cdb[0]]
	if len(rows) == 0 {
		return nil
	}
	if !rows[0].hasSA {
		return rows[0]
	}
	sa := serviceAction(cdb)
	for _, o := range rows {
		if o.sa == sa {
			return o
		}
	}
	return nil
}

// supportsOp reports whether d supports any command with operation code op.
func (t *opTable) supportsOp(d *Device, op byte) bool {
	for _, o := range t.byOp[op] {
		if o.enabledOn(d) {
			return true
		}
	}
	return false
}

// commands is the table every device dispatches from; each family file
// contributes its rows.
var commands = newOpTable(
	spcCommands,
	sbcCommands,
)

// execute runs one command to the point where it is done or an IO is in
// flight.
func (d *Device) execute(c *Cmd) result {
	c.row = nil
	if c.Err != nil {
		// A malformed ring entry: nothing in it may be touched.
		d.log.Warn().Err(c.Err).Uint16("cmd_id", c.ID).Msg("malformed command entry")
		return c.check(keyHardwareError, ascInternalTargetFailure)
	}
	o := commands.lookup(c.CDB)
	if o == nil || !o.enabledOn(d) {
		return c.unsupported()
	}
	c.row = o
	if len(c.CDB) < len(o.usage) {
		// Only a variable-length CDB can be shorter than its command's.
		return c.check(keyIllegalRequest, ascInvalidFieldInCDB)
	}
	if o.flags&flagNoUA == 0 && d.uaCapacityChanged.CompareAndSwap(true, false) {
		return c.check(keyUnitAttention, ascCapacityDataChanged)
	}
	if o.flags&flagIO != 0 && d.gate != nil {
		if v := d.gate.Admit(o.medium == mediumChanges); v != lockgate.Pass {
			return c.refuse(v)
		}
	}
	return o.fn(c)
}

// unsupported answers a command no enabled row describes: an unknown
// operation code is INVALID COMMAND OPERATION CODE; an unknown service
// action of a supported one is INVALID FIELD IN CDB pointing at the
// SERVICE ACTION field (SPC-4 4.2.5.2, 5.13).
func (c *Cmd) unsupported() result {
	op := c.CDB[0]
	if !commands.supportsOp(c.dev, op) {
		return c.check(keyIllegalRequest, ascInvalidCommandOperationCode)
	}
	if op == 0x7f {
		return c.invalidCDBField(8, 7)
	}
	return c.invalidCDBField(1, 4)
}
