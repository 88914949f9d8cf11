package dbusapi

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
)

// reservedSubtypes cannot be handler subtypes because their object path
// under RootPath is taken.
var reservedSubtypes = map[string]bool{"HandlerManager1": true}

// checkArg refuses a string argument that is not one gotcmu will look at:
// longer than maxArgLen, not UTF-8, or holding a NUL. The bus daemon
// already refuses invalid UTF-8 and NULs (the D-Bus specification,
// "Valid strings"), but the checks cost nothing and keep this package
// correct on a peer-to-peer connection too.
func checkArg(what, s string) *dbus.Error {
	switch {
	case len(s) > maxArgLen:
		return invalidArgs("%s is %d bytes; at most %d are accepted", what, len(s), maxArgLen)
	case !utf8.ValidString(s):
		return invalidArgs("%s is not valid UTF-8", what)
	case strings.IndexByte(s, 0) >= 0:
		return invalidArgs("%s contains a NUL byte", what)
	}
	return nil
}

// checkSubtype reports whether s can be a handler subtype. A subtype is
// both the last element of an object path (RootPath/<subtype>) and of a bus
// name (ExternalBusPrefix<subtype>), so it takes the characters both allow
// ([A-Za-z0-9_]) and, like a bus name element, does not start with a digit.
func checkSubtype(s string) error {
	if s == "" || len(s) > maxSubtypeLen {
		return fmt.Errorf("subtype must be 1 to %d characters long", maxSubtypeLen)
	}
	for i, c := range []byte(s) {
		ok := c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9'
		if !ok {
			return fmt.Errorf("subtype %q: only letters, digits and '_' are allowed, and no leading digit", s)
		}
	}
	if reservedSubtypes[s] {
		return fmt.Errorf("subtype %q is reserved", s)
	}
	return nil
}

// splitConfig checks that cfgstring, as targetcli sends it to CheckConfig,
// is "<subtype>/<config>" and that the kernel and rtslib could store it,
// and returns <config>. Its errors are reasons for a (false, reason) reply.
func splitConfig(subtype, cfgstring string) (string, error) {
	config, ok := strings.CutPrefix(cfgstring, subtype+"/")
	if !ok {
		return "", fmt.Errorf("config string must start with %q", subtype+"/")
	}
	if len(cfgstring) > maxKernelConfigLen {
		return "", fmt.Errorf("config string is %d bytes; the kernel keeps at most %d", len(cfgstring), maxKernelConfigLen)
	}
	for _, r := range cfgstring {
		switch {
		case r == ':':
			// rtslib's UserBackedStorageObject refuses it.
			return "", fmt.Errorf("config string must not contain ':'")
		case r == ',':
			// The kernel's control file splits its tokens at ',' and
			// '\n' (tcmu_set_configfs_dev_params), so dev_config
			// cannot hold them.
			return "", fmt.Errorf("config string must not contain ','")
		case r < 0x20 || r == 0x7f:
			return "", fmt.Errorf("config string must not contain control characters")
		}
	}
	return config, nil
}

// clampMessage makes a message from a handler fit to send back: valid
// UTF-8 without NULs (or godbus refuses to encode the reply) and at most
// maxMessageLen bytes, cut at a rune boundary.
func clampMessage(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= maxMessageLen {
		return s
	}
	cut := maxMessageLen - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// checkSignature refuses a call whose arguments do not have the signature
// want. godbus converts what it can when it stores arguments (an int32 into
// a string, for one), so the types must be checked on the message itself.
func checkSignature(msg dbus.Message, want string) *dbus.Error {
	var got string
	if v, ok := msg.Headers[dbus.FieldSignature]; ok {
		if sig, ok := v.Value().(dbus.Signature); ok {
			got = sig.String()
		}
	}
	if got != want {
		return invalidArgs("arguments have signature %q; want %q", got, want)
	}
	return nil
}

// senderOf returns the unique name of the caller, which the bus daemon
// sets on every message it routes.
func senderOf(msg dbus.Message) string {
	s, _ := msg.Headers[dbus.FieldSender].Value().(string)
	return s
}

func invalidArgs(format string, a ...any) *dbus.Error {
	return dbus.NewError(errInvalidArgs, []any{fmt.Sprintf(format, a...)})
}
