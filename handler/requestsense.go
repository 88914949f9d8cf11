package handler

import "github.com/gotcmu/gotcmu/uio"

// requestSense answers REQUEST SENSE (SPC-4 6.39). Sense data is returned
// with each CHECK CONDITION (autosense), so the only condition left to
// report is a pending unit attention, which reporting clears; otherwise NO
// SENSE. DESC selects descriptor format, whatever D_SENSE says.
func requestSense(c *Cmd) result {
	s := sense{key: keyNoSense, asc: ascNone}
	if c.dev.uaCapacityChanged.CompareAndSwap(true, false) {
		s = sense{key: keyUnitAttention, asc: ascCapacityDataChanged}
	}
	var buf [uio.SenseBufferSize]byte
	return c.respond(s.encode(buf[:], c.CDB[1]&0x01 != 0), int(c.CDB[4]))
}
