package dbusapi

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

// externalHandler connects as an external handler would with
// libtcmu-register.c: owns its name, exports CheckConfig at
// ManagerPath/<subtype>. It answers valid only for "<subtype>/good".
func connectExternal(t *testing.T, addr, subtype string, own bool) *dbus.Conn {
	t.Helper()
	conn := connect(t, addr)
	check := func(cfg string) (bool, string, *dbus.Error) {
		if cfg == subtype+"/good" {
			return true, "external says fine", nil
		}
		return false, "external refuses " + cfg, nil
	}
	if err := conn.ExportMethodTable(map[string]any{"CheckConfig": check}, dbus.ObjectPath(ManagerPath+"/"+subtype), HandlerInterface); err != nil {
		t.Fatal(err)
	}
	if own {
		reply, err := conn.RequestName(ExternalBusPrefix+subtype, dbus.NameFlagDoNotQueue)
		if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("own %s: %v %v", ExternalBusPrefix+subtype, reply, err)
		}
	}
	return conn
}

func register(t *testing.T, conn *dbus.Conn, args ...any) (bool, string, error) {
	t.Helper()
	call := conn.Object(BusName, ManagerPath).Call(ManagerInterface+".RegisterHandler", 0, args...)
	if call.Err != nil {
		return false, "", call.Err
	}
	var ok bool
	var msg string
	if err := call.Store(&ok, &msg); err != nil {
		t.Fatal(err)
	}
	return ok, msg, nil
}

// objectSignals collects InterfacesAdded and InterfacesRemoved from gotcmu.
func objectSignals(t *testing.T, conn *dbus.Conn) <-chan *dbus.Signal {
	t.Helper()
	if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(RootPath), dbus.WithMatchInterface(objectManagerInterface)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 16)
	conn.Signal(ch)
	return ch
}

func nextSignal(t *testing.T, ch <-chan *dbus.Signal, name string) *dbus.Signal {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case sig := <-ch:
			if sig.Name == objectManagerInterface+"."+name {
				return sig
			}
		case <-timeout:
			t.Fatalf("no %s signal", name)
		}
	}
}

func TestRegisterHandlerLifecycle(t *testing.T) {
	skipUnlessRoot(t, "RegisterHandler answers root only")
	addr := startBus(t, "")
	startService(t, addr)
	observer := connect(t, addr)
	sigs := objectSignals(t, observer)

	ext := connectExternal(t, addr, "ext", true)
	ok, msg, err := register(t, ext, "ext", "ext/<anything>")
	if err != nil || !ok {
		t.Fatalf("RegisterHandler = (%v, %q, %v), want success", ok, msg, err)
	}

	added := nextSignal(t, sigs, "InterfacesAdded")
	wantAdded := []any{handlerPath("ext"), map[string]map[string]dbus.Variant{HandlerInterface: {"ConfigDesc": dbus.MakeVariant("ext/<anything>")}}}
	if diff := cmp.Diff(wantAdded, added.Body, variantCmp()); diff != "" {
		t.Errorf("InterfacesAdded (-want +got):\n%s", diff)
	}
	var objs map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	if err := observer.Object(BusName, RootPath).Call(objectManagerInterface+".GetManagedObjects", 0).Store(&objs); err != nil {
		t.Fatal(err)
	}
	if _, ok := objs[handlerPath("ext")]; !ok {
		t.Errorf("GetManagedObjects lacks the external handler: %v", objs)
	}

	for cfg, want := range map[string]string{"ext/good": "true external says fine", "ext/bad": "false external refuses ext/bad", "other/x": `false config string must start with "ext/"`} {
		var valid bool
		var m string
		if err := observer.Object(BusName, handlerPath("ext")).Call(HandlerInterface+".CheckConfig", 0, cfg).Store(&valid, &m); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(strings.Join([]string{boolString(valid), m}, " ")); got != want {
			t.Errorf("CheckConfig(%q) forwarded = %q, want %q", cfg, got, want)
		}
	}

	// The external handler goes away: its object must go too.
	ext.Close()
	removed := nextSignal(t, sigs, "InterfacesRemoved")
	if diff := cmp.Diff([]any{handlerPath("ext"), []string{HandlerInterface}}, removed.Body); diff != "" {
		t.Errorf("InterfacesRemoved (-want +got):\n%s", diff)
	}
	objs = nil
	if err := observer.Object(BusName, RootPath).Call(objectManagerInterface+".GetManagedObjects", 0).Store(&objs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantManaged(builtinDescs), objs, variantCmp()); diff != "" {
		t.Errorf("after the handler vanished (-want +got):\n%s", diff)
	}
	call := observer.Object(BusName, handlerPath("ext")).Call(HandlerInterface+".CheckConfig", 0, "ext/good")
	if call.Err == nil {
		t.Errorf("CheckConfig on a vanished handler answered %v", call.Body)
	}

	// The subtype is free again for a new process.
	ext2 := connectExternal(t, addr, "ext", true)
	if ok, msg, err := register(t, ext2, "ext", "again"); err != nil || !ok {
		t.Fatalf("registering again = (%v, %q, %v)", ok, msg, err)
	}
}

func skipUnlessRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip(why + "; the test must run as root")
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestRegisterHandlerRefusals(t *testing.T) {
	skipUnlessRoot(t, "RegisterHandler answers root only")
	addr := startBus(t, "")
	startService(t, addr)
	owner := connectExternal(t, addr, "taken", true)
	if ok, msg, err := register(t, owner, "taken", "d"); err != nil || !ok {
		t.Fatalf("first registration = (%v, %q, %v)", ok, msg, err)
	}
	notOwner := connectExternal(t, addr, "unowned", false)
	memOwner := connectExternal(t, addr, "mem", true)

	tests := []struct {
		name    string
		conn    *dbus.Conn
		args    []any
		wantMsg string
		wantErr string
	}{
		{name: "caller_does_not_own_the_name", conn: notOwner, args: []any{"unowned", "d"}, wantMsg: "must own " + ExternalBusPrefix + "unowned"},
		{name: "someone_else_owns_the_name", conn: notOwner, args: []any{"taken", "d"}, wantMsg: "must own"},
		{name: "already_registered", conn: owner, args: []any{"taken", "d"}, wantMsg: "already registered"},
		{name: "collides_with_builtin", conn: memOwner, args: []any{"mem", "d"}, wantMsg: "served by gotcmu itself"},
		{name: "subtype_with_slash", conn: owner, args: []any{"a/b", "d"}, wantErr: errInvalidArgs},
		{name: "subtype_leading_digit", conn: owner, args: []any{"9a", "d"}, wantErr: errInvalidArgs},
		{name: "empty_subtype", conn: owner, args: []any{"", "d"}, wantErr: errInvalidArgs},
		{name: "reserved_subtype", conn: owner, args: []any{"HandlerManager1", "d"}, wantErr: errInvalidArgs},
		{name: "long_subtype", conn: owner, args: []any{strings.Repeat("a", 33), "d"}, wantErr: errInvalidArgs},
		{name: "huge_description", conn: owner, args: []any{"x", strings.Repeat("d", 1<<20)}, wantErr: errInvalidArgs},
		{name: "wrong_types", conn: owner, args: []any{"x", uint64(1)}, wantErr: errInvalidArgs},
		{name: "one_argument", conn: owner, args: []any{"x"}, wantErr: errInvalidArgs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, msg, err := register(t, tt.conn, tt.args...)
			checkErrName(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			if ok || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("RegisterHandler = (%v, %q), want (false, ...%q...)", ok, msg, tt.wantMsg)
			}
		})
	}
}
