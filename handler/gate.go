package handler

import (
	"syscall"
	"time"

	"github.com/gotcmu/gotcmu/handler/lockgate"
)

// The device's side of its lock gate (package lockgate): NewDevice gives a
// device whose backend implements Locker a gate, which admits medium
// access (dispatch.go) and learns of lost locks and connections from
// failed I/O (errors.go). What is SCSI stays here: the gate's verdicts
// become status and sense, and SPC-4's rules for port groups that allow
// explicit transitions only become the refusals the gate answers with.

// Locker is what a backend shared by several gateways offers the lock gate
// (lockgate.Locker); rbd.Image implements it.
type Locker = lockgate.Locker

// LockStatus is what a device's lock gate says about the image's lock.
type LockStatus = lockgate.Status

// refuse answers a command the gate did not let pass: BUSY while it takes
// the lock, reopens or recovers (for as long as busy.go bounds it), NOT
// READY / LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE
// (04/0B) or UNAVAILABLE STATE (04/0C) as a port in that ALUA state
// answers (SPC-4 5.15.2.4-5).
func (c *Cmd) refuse(v lockgate.Verdict) result {
	switch v {
	case lockgate.Standby:
		return c.check(keyNotReady, ascLUNotReadyStandby)
	case lockgate.Unavailable:
		return c.check(keyNotReady, ascLUNotReadyUnavailable)
	}
	class := busyLock
	if c.dev.gate.Status().State == "recovering" {
		class = busyConn
	}
	return c.busy(class, 0)
}

// cmdTimeouter is a DeviceConfig that knows the kernel's time limit on the
// device's commands (configfs attrib/cmd_time_out).
type cmdTimeouter interface {
	CmdTimeout() (time.Duration, error)
}

// newGate returns the lock gate of a device whose backend is lk, sharing
// holds (nil: its own) with the other devices' gates.
func (d *Device) newGate(lk Locker, holds *lockgate.Holds) *lockgate.Gate {
	gc := lockgate.Config{
		Log:      d.log,
		Locker:   lk,
		WaitIdle: d.WaitIdle,
		Holds:    holds,
	}
	if d.cfg != nil {
		gc.Ports = gatePorts{d.cfg}
	}
	if sw, ok := d.cfg.(lockgate.TPGSwitch); ok {
		gc.Switch = sw
	}
	if ct, ok := d.cfg.(cmdTimeouter); ok {
		gc.CmdTimeout = func() time.Duration {
			limit, err := ct.CmdTimeout()
			if err != nil {
				d.log.Warn().Err(err).Msg("read cmd_time_out; taking target portal groups offline without waiting for it")
			}
			return limit
		}
	}
	return lockgate.New(gc)
}

// gatePorts answers the gate's questions about port groups from the
// device's configfs.
type gatePorts struct{ cfg DeviceConfig }

// Refusal implements lockgate.Ports.
func (p gatePorts) Refusal() (lockgate.Verdict, error) {
	groups, err := p.cfg.PortGroups()
	if err != nil {
		return lockgate.Pass, err
	}
	return explicitRefusal(groups), nil
}

// LocalTPGs implements lockgate.Ports: the TPGs of the device's ports that
// are enabled, on a gateway its own (ceph-iscsi enables only the local
// TPG; see TargetPort.Enabled), and that can be disabled: tcm_loop's have
// no enable attribute, and writing it only logged an error at every
// recovery (make soak of 2026-12-05 15:44).
func (p gatePorts) LocalTPGs() ([]lockgate.TPG, error) {
	groups, err := p.cfg.PortGroups()
	if err != nil {
		return nil, err
	}
	var tpgs []lockgate.TPG
	seen := map[lockgate.TPG]bool{}
	for _, pg := range groups {
		for _, p := range pg.Ports {
			t := lockgate.TPG{WWN: p.TargetName, TPGT: p.TPGT}
			if p.Enabled && !p.AlwaysOn && p.TargetName != "" && !seen[t] {
				seen[t] = true
				tpgs = append(tpgs, t)
			}
		}
	}
	return tpgs, nil
}

// explicitRefusal is the answer to media access at a gateway whose port
// groups allow explicit transitions only and are all standby or
// unavailable (SPC-4 5.15.2.4-5): the kernel does not check ALUA states
// for TCMU devices (TRANSPORT_FLAG_PASSTHROUGH_ALUA), so the handler must.
// Groups that allow implicit transitions let I/O take the lock instead.
func explicitRefusal(groups []PortGroup) lockgate.Verdict {
	refusal := lockgate.Pass
	for _, pg := range groups {
		if !hasLocalPort(pg) {
			continue
		}
		v := refusalOf(pg.State)
		if v == lockgate.Pass || pg.Implicit || !pg.Explicit {
			return lockgate.Pass
		}
		refusal = max(refusal, v)
	}
	return refusal
}

// refusalOf is how a port in access state answers media access: Standby
// or Unavailable (refuse's 04/0B, 04/0C), Pass for states that serve it.
func refusalOf(state uint8) lockgate.Verdict {
	switch state {
	case aluaStandby:
		return lockgate.Standby
	case aluaUnavailable, aluaOffline:
		return lockgate.Unavailable
	}
	return lockgate.Pass
}

// hasLocalPort reports whether one of pg's ports is this gateway's.
func hasLocalPort(pg PortGroup) bool {
	for _, p := range pg.Ports {
		if p.Enabled {
			return true
		}
	}
	return false
}

// transitionOf is what SET TARGET PORT GROUPS left this gateway's groups
// in: a group of its ports active/optimized means the initiator chose this
// gateway, which takes the lock; all of them refusing media access means
// it gives the lock up.
func transitionOf(groups []PortGroup) lockgate.Transition {
	t := lockgate.Transition{Inactive: true, Refusal: explicitRefusal(groups)}
	for _, pg := range groups {
		if !hasLocalPort(pg) {
			continue
		}
		t.Active = t.Active || pg.State == aluaActiveOptimized
		t.Inactive = t.Inactive && refusalOf(pg.State) != lockgate.Pass
	}
	return t
}

// noteIOError tells the gate, if any, that an I/O failed with errno.
func (d *Device) noteIOError(errno syscall.Errno) {
	if d.gate != nil {
		d.gate.NoteError(errno)
	}
}

// explicitTransition lets the gate act on a SET TARGET PORT GROUPS that
// changed group states (rtpg.go). A command that waits for the lock to be
// taken or given up completes then, GOOD or HARDWARE ERROR / SET TARGET
// PORT GROUPS COMMAND FAILED (SPC-4 6.36).
func (d *Device) explicitTransition(c *Cmd) result {
	if d.gate == nil {
		return c.good()
	}
	groups, err := d.portGroups()
	if err != nil {
		return c.configFailed(err)
	}
	v, waiting := d.gate.Transition(transitionOf(groups), func(err error) {
		if err != nil {
			c.check(keyHardwareError, ascSetTargetPortGroupsFailed)
		} else {
			c.good()
		}
		d.complete(c, true)
	})
	switch {
	case waiting:
		return pending
	case v == lockgate.Pass:
		return c.good()
	}
	return c.refuse(v)
}

// SetLockHoldDown sets how long the device refuses writes after losing
// the image's lock to another gateway (lockgate.DefaultHoldDown until set;
// 0 takes the lock back at once, as tcmu-runner does), also for a
// hold-down running now. It does nothing for a backend without a lock.
func (d *Device) SetLockHoldDown(hold time.Duration) {
	if d.gate != nil {
		d.gate.SetHoldDown(hold)
	}
}

// LockStatus reports the device's lock gate; ok is false when the
// backend has no lock.
func (d *Device) LockStatus() (s LockStatus, ok bool) {
	if d.gate == nil {
		return LockStatus{}, false
	}
	return d.gate.Status(), true
}
