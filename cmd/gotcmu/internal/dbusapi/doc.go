// Package dbusapi serves org.kernel.TCMUService1 on the system bus, the
// interface targetcli and external TCMU handlers use to talk to the
// userspace handler daemon (tcmu-runner's tcmu-handler.xml and main.c).
//
// Objects, all on the bus name org.kernel.TCMUService1:
//
//	/org/kernel/TCMUService1                  org.freedesktop.DBus.ObjectManager
//	                                          (GetManagedObjects, InterfacesAdded,
//	                                          InterfacesRemoved) and, when a
//	                                          StatusSource is given,
//	                                          org.kernel.TCMUService1.Gotcmu1.Status
//	/org/kernel/TCMUService1/<subtype>        org.kernel.TCMUService1: property
//	                                          ConfigDesc, CheckConfig(s) -> (b, s)
//	/org/kernel/TCMUService1/HandlerManager1  org.kernel.TCMUService1.HandlerManager1:
//	                                          RegisterHandler(s, s) -> (b, s)
//
// Every object answers org.freedesktop.DBus.Introspectable (with its child
// nodes) and org.freedesktop.DBus.Peer; handler objects answer
// org.freedesktop.DBus.Properties.
//
// Callers are untrusted. Arguments that are not sane strings (over the size
// bounds, invalid UTF-8, a malformed subtype) get an
// org.freedesktop.DBus.Error.InvalidArgs reply; a well-formed config string
// that is wrong gets (false, reason), which targetcli shows the operator.
// CheckConfig passes the caller's credentials to the handler in its context
// (handler.WithCaller) and, for callers other than root, runs the check on an
// OS thread with the caller's filesystem credentials, so the answer never
// depends on files the caller could not read. Status and RegisterHandler are
// for root only, checked here as well as in the bus policy, because the
// policy of an installed tcmu-runner package is laxer and merges with ours.
//
// The package never requests the bus name before every object is exported
// (Serve does that), never opens a device, and never closes the connection
// it was given. A Service is safe for concurrent use; godbus runs every
// incoming call on its own goroutine.
package dbusapi
