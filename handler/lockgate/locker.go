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
