package handler

// ctl is the CDB usage of the CONTROL byte, the last of every CDB.
const ctl = 0x07

// spcCommands are the commands that describe and control the logical unit
// without touching the medium: SPC-4's primary commands, and SBC-3's READ
// CAPACITY and START STOP UNIT. The usage masks are the CDB bits each
// function evaluates (REPORT SUPPORTED OPERATION CODES reports them).
var spcCommands = []opInfo{
	{name: "TEST UNIT READY", op: 0x00, usage: []byte{0x00, 0, 0, 0, 0, ctl}, dir: dataNone, medium: mediumNone, fn: testUnitReady},
	{name: "REQUEST SENSE", op: 0x03, usage: []byte{0x03, 0x01, 0, 0, 0xff, ctl}, dir: dataIn, medium: mediumNone, flags: flagNoUA, fn: requestSense},
	{name: "INQUIRY", op: 0x12, usage: []byte{0x12, 0x03, 0xff, 0xff, 0xff, ctl}, dir: dataIn, medium: mediumNone, flags: flagNoUA, fn: inquiry},
	{name: "MODE SELECT(6)", op: 0x15, usage: []byte{0x15, 0x11, 0, 0, 0xff, ctl}, dir: dataOut, medium: mediumNone, fn: modeSelect},
	{name: "MODE SENSE(6)", op: 0x1a, usage: []byte{0x1a, 0x08, 0xff, 0xff, 0xff, ctl}, dir: dataIn, medium: mediumNone, fn: modeSense},
	{name: "START STOP UNIT", op: 0x1b, usage: []byte{0x1b, 0x01, 0, 0x0f, 0xf7, ctl}, dir: dataNone, medium: mediumNone, fn: startStopUnit},
	{name: "READ CAPACITY(10)", op: 0x25, usage: []byte{0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, ctl}, dir: dataIn, medium: mediumNone, fn: readCapacity10},
	{name: "MODE SELECT(10)", op: 0x55, usage: []byte{0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, ctl}, dir: dataOut, medium: mediumNone, fn: modeSelect},
	{name: "MODE SENSE(10)", op: 0x5a, usage: []byte{0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, ctl}, dir: dataIn, medium: mediumNone, fn: modeSense},
	{
		name: "READ CAPACITY(16)", op: 0x9e, sa: 0x10, hasSA: true,
		dir: dataIn, medium: mediumNone,
		usage: []byte{0x9e, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, ctl},
		fn:    readCapacity16,
	},
	{
		name: "REPORT TARGET PORT GROUPS", op: 0xa3, sa: 0x0a, hasSA: true,
		dir: dataIn, medium: mediumNone,
		usage: []byte{0xa3, 0xe0 | 0x0a, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, ctl},
		fn:    reportTargetPortGroups,
	},
	{
		name: "REPORT SUPPORTED OPERATION CODES", op: 0xa3, sa: 0x0c, hasSA: true,
		dir: dataIn, medium: mediumNone,
		usage: []byte{0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, ctl},
		fn:    reportSupportedOpcodes,
	},
	{
		name: "SET TARGET PORT GROUPS", op: 0xa4, sa: 0x0a, hasSA: true,
		dir: dataOut, medium: mediumNone,
		usage:   []byte{0xa4, 0x0a, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, ctl},
		fn:      setTargetPortGroups,
		enabled: explicitALUA,
	},
}

// testUnitReady: the medium is always ready (SPC-4 6.47).
func testUnitReady(c *Cmd) result { return c.good() }

// respond returns p as the command's parameter data, cut to the CDB's
// ALLOCATION LENGTH: SPC-4 4.2.5.6 has the device server stop at
// whichever of the allocation length and the data ends first, and a
// field cut in the middle is simply cut.
func (c *Cmd) respond(p []byte, alloc int) result {
	c.dataIn(p[:min(len(p), alloc)])
	return c.good()
}

// paramList returns a copy of the command's parameter list: the first n
// bytes of the Data-Out buffer, n being the CDB's PARAMETER LIST LENGTH.
// It returns false when the initiator sent fewer bytes: the kernel passes
// the initiator's transfer length through unchecked (target_core_user.c
// maps the command's data as the initiator sent it), and a list cut short is a PARAMETER LIST LENGTH ERROR.
func (c *Cmd) paramList(n int) ([]byte, bool) {
	if c.DataLen() < n {
		return nil, false
	}
	p := make([]byte, n)
	c.dataOut(p)
	return p, true
}

// configFailed answers a command that needs the device's configfs state
// when reading it failed.
func (c *Cmd) configFailed(err error) result {
	c.dev.log.Error().Err(err).Uint8("op", c.op()).Msg("read device configuration")
	return c.check(keyHardwareError, ascInternalTargetFailure)
}

// unitSerial returns the device's unit serial number as configfs has it
// now, at most maxSerialLen bytes.
func (d *Device) unitSerial() (string, error) {
	if d.cfg == nil {
		return "", nil
	}
	s, err := d.cfg.UnitSerial()
	if err != nil {
		return "", err
	}
	if len(s) > maxSerialLen {
		s = s[:maxSerialLen]
	}
	return s, nil
}

// maxSerialLen is the longest unit serial the kernel accepts in
// wwn/vpd_unit_serial (INQUIRY_VPD_SERIAL_LEN, 254, with its NUL).
const maxSerialLen = 253

// portGroups returns the device's ALUA port groups as configfs has them.
func (d *Device) portGroups() ([]PortGroup, error) {
	if d.cfg == nil {
		return nil, nil
	}
	return d.cfg.PortGroups()
}
