package handler

import "testing"

func TestStartStopUnit(t *testing.T) {
	d := newTestDevice(t, testDev{})
	ssu := func(immed, modifier, b4 byte) []byte { return []byte{0x1b, immed, 0, modifier, b4, 0} }
	runCases(t, d, []cmdCase{
		{name: "start_immediate", cdb: ssu(1, 0, 0x01)},
		{name: "start", cdb: ssu(0, 0, 0x01)},
		{name: "start_no_flush", cdb: ssu(1, 0, 0x05)},
		{name: "stop", cdb: ssu(1, 0, 0x00), sense: invalidCDB(4, 0)},
		// libiscsi's StartStopUnit.Simple: ejecting a non-removable unit fails.
		{name: "eject", cdb: ssu(1, 0, 0x02), sense: invalidCDB(4, 1)},
		{name: "load", cdb: ssu(1, 0, 0x03), sense: invalidCDB(4, 1)},
		{name: "power_condition_active", cdb: ssu(1, 0, 0x11), sense: invalidCDB(4, 7)},
		{name: "power_condition_standby", cdb: ssu(1, 0, 0x30), sense: invalidCDB(4, 7)},
		{name: "power_condition_modifier", cdb: ssu(1, 0x01, 0x01), sense: invalidCDB(3, 3)},
	})
}
