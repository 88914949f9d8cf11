package lockgate

import "context"

// Locker is what a backend shared by several gateways offers the gate;
// rbd.Image implements it.
//
// The gate calls the methods from one goroutine at a time, off the I/O
// path; the backend's I/O may run concurrently with any of them. Errors
// keep their errno: ESHUTDOWN means this gateway's client is fenced,
// ETIMEDOUT that the cluster does not answer.
type Locker interface {
	// IsLockOwner reports whether this gateway's client holds the lock.
	IsLockOwner() (bool, error)
	// AcquireLock takes the lock, breaking the current owner's first;
	// breaking fences the owner, so that none of its writes lands after
	// this gateway's first.
	AcquireLock(ctx context.Context) error
	// ReleaseLock gives the lock up if this gateway holds it.
	ReleaseLock() error
	// Reopen replaces the backend's connection with a fresh one, after
	// the old one was fenced or lost. It waits for the backend's own
	// operations in flight, fails operations submitted meanwhile with an
	// error wrapping ESHUTDOWN, and leaves the backend usable with the
	// old connection if it fails.
	Reopen(ctx context.Context) error
	// LockOwner names the lock's holder ("" when nobody holds it).
	LockOwner() (string, error)
}

// connLossNoter is a Locker that counts lost connections where its
// operators look (rbd: the service map).
type connLossNoter interface {
	NoteConnectionLost()
}

// connWatcher is a Locker that can learn of a lost connection before any
// of its I/O fails with it. rbd holds a write that timed out until its
// client is on the OSD blocklist (a failed write must never land later),
// and the blocklist needs the monitors: while the gateway is cut off from
// the cluster no I/O error reaches the gate, so without this signal the
// gate would keep the TPGs online, TUR would keep passing, and the
// initiator would fail back into the cut-off gateway every time its path
// checker ran.
type connWatcher interface {
	// WatchConnection registers lost, which the Locker calls (from any
	// goroutine, holding none of its own locks) when it finds the
	// cluster unreachable.
	WatchConnection(lost func())
}

// Ports is what the gate asks about the device's ALUA target port groups;
// package handler answers from configfs.
type Ports interface {
	// Refusal is the answer to media access at this gateway as its port
	// groups stand now: Standby or Unavailable when they refuse it
	// whoever holds the lock, Pass otherwise.
	Refusal() (Verdict, error)
	// LocalTPGs names the fabric target portal groups of this gateway's
	// ports, the ones taken offline while the connection is lost.
	LocalTPGs() ([]TPG, error)
}

// TPGSwitch takes fabric target portal groups offline and back (configfs
// tpgt_N/enable). Without one a lost connection is still recovered from,
// but the initiators are not pushed to another gateway meanwhile.
type TPGSwitch interface {
	SetTPGEnabled(wwn string, tpgt uint16, on bool) error
}
