package lockgate

import (
	"strconv"
	"time"
)

// Verdict is the gate's answer to a command that accesses the medium.
type Verdict uint8

const (
	// Pass: the command runs now.
	Pass Verdict = iota
	// Busy: the gate is taking the lock, reopening or recovering; the
	// initiator retries here.
	Busy
	// Standby: this gateway refuses the command as a port in standby
	// state does (after losing the lock, or in an explicit standby
	// group); the initiator sends it through another path.
	Standby
	// Unavailable: refused as a port in unavailable state does.
	Unavailable
)

var verdictNames = [...]string{Pass: "pass", Busy: "busy", Standby: "standby", Unavailable: "unavailable"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// Status is what a gate says about the image's lock.
type Status struct {
	// State is "unlocked", "held-down" (unlocked, and refusing writes
	// until HoldDownUntil), "locking", "locked", "lost", "reopening" or
	// "recovering".
	State string
	// Owner is the lock's holder as last seen ("" if unknown or none).
	Owner         string
	HoldDownUntil time.Time
	// Acquisitions counts the times this gateway took the lock: each is
	// one move of the lock onto it. Losses counts lock losses seen
	// through I/O, ConnLosses lost connections, Refused the writes
	// refused during hold-down, Escalations the recoveries the device
	// asked for after answering Busy past its bound (Escalate).
	Acquisitions, Losses, ConnLosses, Refused, Escalations uint64
}
