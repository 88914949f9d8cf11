package dbusapi

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
)

// FuzzCallerArgs feeds arbitrary subtypes and config strings to every check
// that stands between a D-Bus caller and a handler, and verifies what each
// promises about what it lets through.
func FuzzCallerArgs(f *testing.F) {
	f.Add("rbd", "rbd/pool/image;osd_op_timeout=30")
	f.Add("file", "file//var/lib/images/disk0.img")
	f.Add("file", "file/")
	f.Add("rbd", "rbd/pool/image:snap")
	f.Add("HandlerManager1", "HandlerManager1/x")
	f.Add("9abc", "9abc/a,b")
	f.Add("a_b", "a_b/\xff\xfe")
	f.Add("x", "x/a\x00b")
	f.Add("", "/")
	f.Fuzz(func(t *testing.T, subtype, cfgstring string) {
		if derr := checkArg("config string", cfgstring); derr == nil {
			if len(cfgstring) > maxArgLen || !utf8.ValidString(cfgstring) || strings.IndexByte(cfgstring, 0) >= 0 {
				t.Fatalf("checkArg let through %q", cfgstring)
			}
		}
		if err := checkSubtype(subtype); err == nil {
			if !handlerPath(subtype).IsValid() {
				t.Fatalf("subtype %q accepted but %s is not an object path", subtype, handlerPath(subtype))
			}
			if !validBusName(ExternalBusPrefix + subtype) {
				t.Fatalf("subtype %q accepted but %s is not a bus name", subtype, ExternalBusPrefix+subtype)
			}
			if reservedSubtypes[subtype] {
				t.Fatalf("reserved subtype %q accepted", subtype)
			}
		}
		if config, err := splitConfig(subtype, cfgstring); err == nil {
			if subtype+"/"+config != cfgstring {
				t.Fatalf("splitConfig(%q, %q) = %q: not the string after the prefix", subtype, cfgstring, config)
			}
			if len(cfgstring) > maxKernelConfigLen || strings.ContainsAny(cfgstring, ":,\n\x00") {
				t.Fatalf("splitConfig let through %q, which the kernel or rtslib cannot take", cfgstring)
			}
		}
		msg := clampMessage(cfgstring)
		if !utf8.ValidString(msg) || len(msg) > maxMessageLen || strings.IndexByte(msg, 0) >= 0 {
			t.Fatalf("clampMessage(%q) = %q: not fit to send", cfgstring, msg)
		}
		// A message fit to send must really encode as CheckConfig's reply.
		reply := &dbus.Message{
			Type: dbus.TypeMethodReply,
			Headers: map[dbus.HeaderField]dbus.Variant{
				dbus.FieldReplySerial: dbus.MakeVariant(uint32(1)),
				dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(false, msg)),
			},
			Body: []any{false, msg},
		}
		if err := reply.IsValid(); err != nil {
			t.Fatalf("clamped message does not encode: %v", err)
		}
	})
}

// validBusName follows "Valid Bus Names" in the D-Bus specification for
// well-known names.
func validBusName(s string) bool {
	if len(s) > 255 {
		return false
	}
	elems := strings.Split(s, ".")
	if len(elems) < 2 {
		return false
	}
	for _, e := range elems {
		if e == "" || '0' <= e[0] && e[0] <= '9' {
			return false
		}
		for _, c := range []byte(e) {
			if !(c == '_' || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
				return false
			}
		}
	}
	return true
}
