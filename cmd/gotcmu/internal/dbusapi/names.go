package dbusapi

import "time"

// Bus names, object paths and interfaces of org.kernel.TCMUService1, as in
// tcmu-runner's tcmu-handler.xml and main.c.
const (
	BusName           = "org.kernel.TCMUService1"
	RootPath          = "/org/kernel/TCMUService1"
	HandlerInterface  = "org.kernel.TCMUService1"
	ManagerPath       = RootPath + "/HandlerManager1"
	ManagerInterface  = "org.kernel.TCMUService1.HandlerManager1"
	ExternalBusPrefix = ManagerInterface + "." // + subtype: an external handler's bus name
	StatusInterface   = "org.kernel.TCMUService1.Gotcmu1"

	objectManagerInterface = "org.freedesktop.DBus.ObjectManager"
	propertiesInterface    = "org.freedesktop.DBus.Properties"
	introspectInterface    = "org.freedesktop.DBus.Introspectable"
	busDaemonName          = "org.freedesktop.DBus"
	busDaemonPath          = "/org/freedesktop/DBus"
)

// D-Bus error names sent back to callers.
const (
	errInvalidArgs    = "org.freedesktop.DBus.Error.InvalidArgs"
	errAccessDenied   = "org.freedesktop.DBus.Error.AccessDenied"
	errLimitsExceeded = "org.freedesktop.DBus.Error.LimitsExceeded"
	errUnknownIface   = "org.freedesktop.DBus.Error.UnknownInterface"
	errUnknownProp    = "org.freedesktop.DBus.Error.UnknownProperty"
	errReadOnly       = "org.freedesktop.DBus.Error.PropertyReadOnly"
	errFailed         = "org.freedesktop.DBus.Error.Failed"
)

// Bounds on what callers may send and what handlers may answer.
const (
	// maxArgLen bounds any string argument. Anything longer is refused
	// before it is looked at: no legitimate config string or description
	// comes near it, and the system bus accepts 32 MiB messages.
	maxArgLen = 4096
	// maxKernelConfigLen is TCMU_CONFIG_LEN - 1 in
	// drivers/target/target_core_user.c: the kernel keeps dev_config,
	// "<subtype>/<config>", in 256 bytes including the NUL.
	maxKernelConfigLen = 255
	// maxSubtypeLen bounds a handler subtype; the kernel has no limit of
	// its own beyond dev_config's.
	maxSubtypeLen = 32
	// maxMessageLen bounds the message returned from CheckConfig and
	// RegisterHandler, whatever a handler put in its error.
	maxMessageLen = 1024
	// maxExternalHandlers bounds RegisterHandler so a misbehaving client
	// cannot grow the daemon without limit.
	maxExternalHandlers = 32
	// maxConcurrentChecks bounds CheckConfig calls in progress, counting
	// checks that ignored their deadline and are still running.
	maxConcurrentChecks = 16
	// DefaultCheckTimeout is how long CheckConfig waits for a handler;
	// targetcli's Gio proxy gives up after 25 s.
	DefaultCheckTimeout = 10 * time.Second
	// busCallTimeout bounds calls gotcmu makes to the bus daemon.
	busCallTimeout = 5 * time.Second
)
