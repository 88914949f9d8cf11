package handler

// spcCommands are the primary commands (SPC-4) every logical unit answers.
var spcCommands = []opInfo{
	{name: "TEST UNIT READY", op: 0x00, usage: []byte{0x00, 0, 0, 0, 0, 0x07}, fn: testUnitReady},
}

// testUnitReady: the medium is always ready (SPC-4 6.47).
func testUnitReady(c *Cmd) result { return c.good() }
