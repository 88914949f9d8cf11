package handler

// startStopUnit answers START STOP UNIT (SBC-3 5.25) as a disk that is
// always started and has no medium to eject, as LIO's
// sbc_emulate_startstop: START=1 with POWER CONDITION 0h (START_VALID) and
// LOEJ=0 succeeds at once; stopping, loading or ejecting, and power
// condition changes are refused as INVALID FIELD IN CDB. Unlike LIO, IMMED
// may be either value (with nothing to wait for, both mean "done now") and
// NO_FLUSH is accepted (nothing is flushed when starting).
func startStopUnit(c *Cmd) result {
	cdb := c.CDB
	switch {
	case cdb[3]&0x0f != 0:
		return c.invalidCDBField(3, 3) // POWER CONDITION MODIFIER
	case cdb[4]&0xf0 != 0:
		return c.invalidCDBField(4, 7) // POWER CONDITION
	case cdb[4]&0x02 != 0:
		return c.invalidCDBField(4, 1) // LOEJ: not removable
	case cdb[4]&0x01 == 0:
		return c.invalidCDBField(4, 0) // START=0: the unit cannot stop
	}
	return c.good()
}
