package dbusapi

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
)

// testHandlers are fakes with the behaviours CheckConfig must cope with.
// "probe" opens the file its config names, as a file backend would, and
// answers "whoami" with the caller it was given.
func testHandlers(release <-chan struct{}) []handler.Handler {
	return []handler.Handler{
		{
			Subtype:    "mem",
			ConfigDesc: "mem/<anything but bad>",
			CheckConfig: func(_ context.Context, cfg string) error {
				if cfg == "bad" {
					return errors.New("bad is not a good config")
				}
				return nil
			},
		},
		{
			Subtype:    "probe",
			ConfigDesc: "probe/<path> or probe/whoami",
			CheckConfig: func(ctx context.Context, cfg string) error {
				if cfg == "whoami" {
					c, ok := handler.CallerFrom(ctx)
					return fmt.Errorf("caller=%v uid=%d", ok, c.UID)
				}
				f, err := os.Open(cfg)
				if err != nil {
					return err
				}
				return f.Close()
			},
		},
		{
			Subtype:    "slow",
			ConfigDesc: "never answers in time",
			CheckConfig: func(context.Context, string) error {
				<-release
				return nil
			},
		},
		{
			Subtype:    "panicky",
			ConfigDesc: "panics",
			CheckConfig: func(context.Context, string) error {
				panic("handler bug")
			},
		},
	}
}

type fakeStatus []handler.DeviceStatus

func (f fakeStatus) Status() []handler.DeviceStatus { return append([]handler.DeviceStatus(nil), f...) }

var testDevices = fakeStatus{
	{Name: "d1", UIO: "uio1", Handler: "rbd", Config: "pool/img1", Size: 1 << 30, BlockSize: 512, State: "running", LockOwner: "client.4123", LockState: "owner", InFlight: 3, Errors: 1},
	{Name: "d0", UIO: "uio0", Handler: "file", Config: "/srv/d0.img", Size: 64 << 20, BlockSize: 4096, State: "running"},
}

// startService serves testHandlers on the bus at addr until the test ends.
func startService(t testing.TB, addr string, opts ...Option) *Service {
	t.Helper()
	release := make(chan struct{})
	conn := connect(t, addr)
	opts = append([]Option{WithCheckTimeout(500 * time.Millisecond), WithStatus(testDevices)}, opts...)
	s, err := New(conn, testHandlers(release), zerolog.New(zerolog.NewTestWriter(t)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		close(release)
	})
	waitOwned(t, conn, BusName)
	return s
}

func waitOwned(t testing.TB, conn *dbus.Conn, name string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var has bool
		if err := conn.BusObject().Call(busDaemonName+".NameHasOwner", 0, name).Store(&has); err == nil && has {
			return
		}
	}
	t.Fatalf("%s never got an owner", name)
}

func wantManaged(descs map[string]string) map[dbus.ObjectPath]map[string]map[string]dbus.Variant {
	m := make(map[dbus.ObjectPath]map[string]map[string]dbus.Variant)
	for st, d := range descs {
		m[handlerPath(st)] = map[string]map[string]dbus.Variant{HandlerInterface: {"ConfigDesc": dbus.MakeVariant(d)}}
	}
	return m
}

var builtinDescs = map[string]string{
	"mem":     "mem/<anything but bad>",
	"probe":   "probe/<path> or probe/whoami",
	"slow":    "never answers in time",
	"panicky": "panics",
}

func variantCmp() cmp.Option {
	return cmp.Comparer(func(a, b dbus.Variant) bool {
		return a.Signature() == b.Signature() && cmp.Equal(a.Value(), b.Value())
	})
}

func TestGetManagedObjects(t *testing.T) {
	addr := startBus(t, "")
	startService(t, addr)
	client := connect(t, addr)

	call := client.Object(BusName, RootPath).Call(objectManagerInterface+".GetManagedObjects", 0)
	if call.Err != nil {
		t.Fatal(call.Err)
	}
	if got := dbus.SignatureOf(call.Body...).String(); got != "a{oa{sa{sv}}}" {
		t.Errorf("signature = %s, want a{oa{sa{sv}}}", got)
	}
	var got map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	if err := call.Store(&got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantManaged(builtinDescs), got, variantCmp()); diff != "" {
		t.Errorf("GetManagedObjects (-want +got):\n%s", diff)
	}
}

func TestConfigDescProperty(t *testing.T) {
	addr := startBus(t, "")
	startService(t, addr)
	obj := connect(t, addr).Object(BusName, handlerPath("mem"))

	tests := []struct {
		name    string
		method  string
		args    []any
		want    any
		wantErr string
	}{
		{name: "get", method: "Get", args: []any{HandlerInterface, "ConfigDesc"}, want: dbus.MakeVariant(builtinDescs["mem"])},
		{name: "get_all", method: "GetAll", args: []any{HandlerInterface}, want: map[string]dbus.Variant{"ConfigDesc": dbus.MakeVariant(builtinDescs["mem"])}},
		{name: "get_all_any_interface", method: "GetAll", args: []any{""}, want: map[string]dbus.Variant{"ConfigDesc": dbus.MakeVariant(builtinDescs["mem"])}},
		{name: "unknown_property", method: "Get", args: []any{HandlerInterface, "Nope"}, wantErr: errUnknownProp},
		{name: "unknown_interface", method: "GetAll", args: []any{"org.example.Nope"}, wantErr: errUnknownIface},
		{name: "set_is_refused", method: "Set", args: []any{HandlerInterface, "ConfigDesc", dbus.MakeVariant("x")}, wantErr: errReadOnly},
		{name: "huge_interface_name", method: "GetAll", args: []any{strings.Repeat("a", 1<<20)}, wantErr: errInvalidArgs},
		{name: "wrong_type", method: "Get", args: []any{HandlerInterface, uint32(7)}, wantErr: errInvalidArgs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := obj.Call(propertiesInterface+"."+tt.method, 0, tt.args...)
			checkErrName(t, call.Err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			if diff := cmp.Diff([]any{tt.want}, call.Body, variantCmp()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func checkErrName(t *testing.T, err error, want string) {
	t.Helper()
	var derr dbus.Error
	switch {
	case want == "" && err != nil:
		t.Fatalf("error %v, want none", err)
	case want != "" && !errors.As(err, &derr):
		t.Fatalf("error %v, want a %s reply", err, want)
	case want != "" && derr.Name != want:
		t.Fatalf("error %s (%v), want %s", derr.Name, derr, want)
	}
}

func TestCheckConfig(t *testing.T) {
	addr := startBus(t, "")
	startService(t, addr)
	client := connect(t, addr)

	tests := []struct {
		name      string
		subtype   string
		args      []any
		wantValid bool
		wantMsg   string // substring
		wantErr   string
	}{
		{name: "valid", subtype: "mem", args: []any{"mem/fine"}, wantValid: true, wantMsg: "success"},
		{name: "refused_by_handler", subtype: "mem", args: []any{"mem/bad"}, wantMsg: "bad is not a good config"},
		{name: "wrong_prefix", subtype: "mem", args: []any{"rbd/pool/img"}, wantMsg: `must start with "mem/"`},
		{name: "no_prefix", subtype: "mem", args: []any{"fine"}, wantMsg: `must start with "mem/"`},
		{name: "longer_than_kernel_keeps", subtype: "mem", args: []any{"mem/" + strings.Repeat("x", 252)}, wantMsg: "at most 255"},
		{name: "colon_refused_like_rtslib", subtype: "mem", args: []any{"mem/a:b"}, wantMsg: "':'"},
		{name: "comma_splits_control", subtype: "mem", args: []any{"mem/a,b"}, wantMsg: "','"},
		{name: "newline", subtype: "mem", args: []any{"mem/a\nb"}, wantMsg: "control characters"},
		{name: "handler_panic_is_contained", subtype: "panicky", args: []any{"panicky/x"}, wantMsg: "handler panicked"},
		{name: "handler_timeout", subtype: "slow", args: []any{"slow/x"}, wantMsg: "timed out after 500ms"},
		{name: "huge_string", subtype: "mem", args: []any{"mem/" + strings.Repeat("x", 8<<20)}, wantErr: errInvalidArgs},
		{name: "wrong_type", subtype: "mem", args: []any{int32(3)}, wantErr: errInvalidArgs},
		{name: "no_argument", subtype: "mem", wantErr: errInvalidArgs},
		{name: "two_arguments", subtype: "mem", args: []any{"mem/a", "mem/b"}, wantErr: errInvalidArgs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := client.Object(BusName, handlerPath(tt.subtype)).Call(HandlerInterface+".CheckConfig", 0, tt.args...)
			checkErrName(t, call.Err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			var valid bool
			var msg string
			if err := call.Store(&valid, &msg); err != nil {
				t.Fatal(err)
			}
			if valid != tt.wantValid || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("CheckConfig = (%v, %q), want (%v, ...%q...)", valid, msg, tt.wantValid, tt.wantMsg)
			}
		})
	}
	// The service survived all of it.
	var valid bool
	var msg string
	if err := client.Object(BusName, handlerPath("mem")).Call(HandlerInterface+".CheckConfig", 0, "mem/ok").Store(&valid, &msg); err != nil || !valid {
		t.Fatalf("after bad input: (%v, %q, %v)", valid, msg, err)
	}
}

// TestCheckConfigInvalidUTF8 calls the method as godbus would: the bus
// daemon refuses invalid UTF-8 before it reaches gotcmu (and godbus will not
// encode it), so only a direct call can reach the check.
func TestCheckConfigInvalidUTF8(t *testing.T) {
	b := &builtinHandler{s: &Service{}, h: testHandlers(nil)[0]}
	_, _, derr := b.checkConfig(callMessage("s"), "mem/\xff\xfe")
	if derr == nil || derr.Name != errInvalidArgs {
		t.Fatalf("checkConfig(invalid UTF-8) error = %v, want %s", derr, errInvalidArgs)
	}
	var s Service
	_, _, derr = s.registerHandler(callMessage("ss"), "x\xff", "desc")
	if derr == nil || derr.Name != errInvalidArgs {
		t.Fatalf("registerHandler(invalid UTF-8) error = %v, want %s", derr, errInvalidArgs)
	}
}

// callMessage is the message godbus hands a method called with arguments
// of signature sig.
func callMessage(sig string) dbus.Message {
	return dbus.Message{Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldSender:    dbus.MakeVariant(":1.1"),
		dbus.FieldSignature: dbus.MakeVariant(dbus.ParseSignatureMust(sig)),
	}}
}

// secretFiles makes a directory only root can enter, with one file in it,
// and returns the paths of that file and of a missing one beside it.
func secretFiles(t *testing.T) (exists, missing string) {
	t.Helper()
	secret := filepath.Join(worldReadableDir(t), "secret")
	if err := os.Mkdir(secret, 0o700); err != nil {
		t.Fatal(err)
	}
	exists = filepath.Join(secret, "exists")
	if err := os.WriteFile(exists, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return exists, filepath.Join(secret, "missing")
}

func TestCheckConfigAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the caller is root only when the test runs as root")
	}
	addr := startBus(t, "")
	startService(t, addr)
	obj := connect(t, addr).Object(BusName, handlerPath("probe"))
	exists, missing := secretFiles(t)

	tests := []struct {
		cfg       string
		wantValid bool
		wantMsg   string
	}{
		{cfg: "probe/" + exists, wantValid: true, wantMsg: "success"},
		{cfg: "probe/" + missing, wantMsg: "no such file or directory"},
		{cfg: "probe/whoami", wantMsg: "caller=true uid=0"},
	}
	for _, tt := range tests {
		var valid bool
		var msg string
		if err := obj.Call(HandlerInterface+".CheckConfig", 0, tt.cfg).Store(&valid, &msg); err != nil {
			t.Fatal(err)
		}
		if valid != tt.wantValid || !strings.Contains(msg, tt.wantMsg) {
			t.Errorf("CheckConfig(%q) = (%v, %q), want (%v, ...%q...)", tt.cfg, valid, msg, tt.wantValid, tt.wantMsg)
		}
	}
}

// TestUnprivilegedCaller calls every method from a process running as
// uid 65534 through the real policy file.
func TestUnprivilegedCaller(t *testing.T) {
	addr := startBus(t, "")
	startService(t, addr)
	exists, missing := secretFiles(t)

	calls := []clientCall{
		{Path: RootPath, Method: introspectInterface + ".Introspect"},
		{Path: RootPath, Method: objectManagerInterface + ".GetManagedObjects"},
		{Path: string(handlerPath("mem")), Method: propertiesInterface + ".Get", Args: []string{HandlerInterface, "ConfigDesc"}},
		{Path: string(handlerPath("mem")), Method: propertiesInterface + ".GetAll", Args: []string{HandlerInterface}},
		{Path: string(handlerPath("mem")), Method: HandlerInterface + ".CheckConfig", Args: []string{"mem/fine"}},
		{Path: string(handlerPath("probe")), Method: HandlerInterface + ".CheckConfig", Args: []string{"probe/whoami"}},
		{Path: string(handlerPath("probe")), Method: HandlerInterface + ".CheckConfig", Args: []string{"probe/" + exists}},
		{Path: string(handlerPath("probe")), Method: HandlerInterface + ".CheckConfig", Args: []string{"probe/" + missing}},
		{Path: RootPath, Method: StatusInterface + ".Status"},
		{Path: ManagerPath, Method: ManagerInterface + ".RegisterHandler", Args: []string{"evil", "desc"}},
		{Own: ExternalBusPrefix + "evil"},
		{Own: BusName},
	}
	res := runAsNobody(t, addr, calls)

	for i := 0; i < 6; i++ {
		if res[i].ErrName != "" {
			t.Errorf("%s %s as nobody: %s", calls[i].Path, calls[i].Method, res[i].ErrMsg)
		}
	}
	if got := strings.Join(res[5].Body, " "); got != "false caller=true uid=65534" {
		t.Errorf("probe/whoami as nobody = %q, want the handler to see uid 65534", got)
	}
	// The secret directory is not searchable by nobody: an existing and a
	// missing file inside it must get the same answer.
	e := strings.ReplaceAll(strings.Join(res[6].Body, " "), exists, "PATH")
	m := strings.ReplaceAll(strings.Join(res[7].Body, " "), missing, "PATH")
	if e != m || !strings.HasPrefix(e, "false ") {
		t.Errorf("existing file answered %q, missing file %q: the answers must be the same refusal", e, m)
	}
	for _, i := range []int{8, 9} {
		if res[i].ErrName != errAccessDenied {
			t.Errorf("%s as nobody = %+v, want %s", calls[i].Method, res[i], errAccessDenied)
		}
	}
	for _, i := range []int{10, 11} {
		if res[i].ErrName != errAccessDenied {
			t.Errorf("owning %s as nobody = %+v, want %s", calls[i].Own, res[i], errAccessDenied)
		}
	}
}

// TestUnprivilegedCallerUnderTcmuRunnerPolicy merges tcmu-runner's laxer
// policy, as on a host with both packages: gotcmu's own checks must still
// keep Status and RegisterHandler to root.
func TestUnprivilegedCallerUnderTcmuRunnerPolicy(t *testing.T) {
	addr := startBus(t, tcmuRunnerPolicy)
	startService(t, addr)

	res := runAsNobody(t, addr, []clientCall{
		{Path: RootPath, Method: StatusInterface + ".Status"},
		{Own: ExternalBusPrefix + "evil"},
		{Path: ManagerPath, Method: ManagerInterface + ".RegisterHandler", Args: []string{"evil", "desc"}},
	})
	if res[0].ErrName != errAccessDenied || !strings.Contains(res[0].ErrMsg, "only root may read the status") {
		t.Errorf("Status = %+v, want gotcmu's own refusal", res[0])
	}
	if res[1].ErrName != "" {
		t.Fatalf("owning the handler name under tcmu-runner's policy: %+v", res[1])
	}
	if res[2].ErrName != errAccessDenied || !strings.Contains(res[2].ErrMsg, "only root may register") {
		t.Errorf("RegisterHandler = %+v, want gotcmu's own refusal", res[2])
	}
}

func TestStatus(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("Status answers root only; the test must run as root")
	}
	addr := startBus(t, "")
	startService(t, addr)
	got, err := FetchStatus(context.Background(), connect(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	want := StatusReport{Devices: []handler.DeviceStatus{testDevices[1], testDevices[0]}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestIntrospect(t *testing.T) {
	addr := startBus(t, "")
	startService(t, addr)
	client := connect(t, addr)

	tests := []struct {
		path         dbus.ObjectPath
		wantIfaces   []string
		wantChildren []string
	}{
		{RootPath, []string{objectManagerInterface, StatusInterface, introspectInterface, "org.freedesktop.DBus.Peer"}, []string{"mem", "panicky", "probe", "slow", "HandlerManager1"}},
		{ManagerPath, []string{ManagerInterface, introspectInterface, "org.freedesktop.DBus.Peer"}, nil},
		{handlerPath("mem"), []string{HandlerInterface, propertiesInterface, introspectInterface, "org.freedesktop.DBus.Peer"}, nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.path), func(t *testing.T) {
			var data string
			if err := client.Object(BusName, tt.path).Call(introspectInterface+".Introspect", 0).Store(&data); err != nil {
				t.Fatal(err)
			}
			var n introspect.Node
			if err := xml.Unmarshal([]byte(data), &n); err != nil {
				t.Fatalf("introspection data does not parse: %v\n%s", err, data)
			}
			var ifaces, children []string
			for _, i := range n.Interfaces {
				ifaces = append(ifaces, i.Name)
			}
			for _, c := range n.Children {
				children = append(children, c.Name)
			}
			if diff := cmp.Diff(tt.wantIfaces, ifaces); diff != "" {
				t.Errorf("interfaces (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantChildren, children); diff != "" {
				t.Errorf("children (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServeFailsWhenNameTaken(t *testing.T) {
	addr := startBus(t, "")
	startService(t, addr)
	conn := connect(t, addr)
	s, err := New(conn, nil, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = s.Serve(ctx)
	if err == nil || !strings.Contains(err.Error(), "owned by") {
		t.Fatalf("Serve with the name taken = %v, want an error naming the owner", err)
	}
}

func TestNewRefusesBadHandlers(t *testing.T) {
	addr := startBus(t, "")
	conn := connect(t, addr)
	ok := func(context.Context, string) error { return nil }
	tests := []struct {
		name     string
		handlers []handler.Handler
	}{
		{"bad_subtype", []handler.Handler{{Subtype: "a/b", CheckConfig: ok}}},
		{"reserved_subtype", []handler.Handler{{Subtype: "HandlerManager1", CheckConfig: ok}}},
		{"duplicate", []handler.Handler{{Subtype: "a", CheckConfig: ok}, {Subtype: "a", CheckConfig: ok}}},
		{"no_check", []handler.Handler{{Subtype: "a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := New(conn, tt.handlers, zerolog.Nop()); err == nil {
				s.Close()
				t.Fatal("New accepted it")
			}
		})
	}
}

// TestCheckConfigBoundsStuckHandlers fills every check slot with checks
// that never return: the next check is refused at once, and the rest of
// the service still answers.
func TestCheckConfigBoundsStuckHandlers(t *testing.T) {
	addr := startBus(t, "")
	startService(t, addr)
	client := connect(t, addr)
	slow := client.Object(BusName, handlerPath("slow"))

	calls := make([]*dbus.Call, maxConcurrentChecks)
	for i := range calls {
		calls[i] = slow.Go(HandlerInterface+".CheckConfig", 0, nil, "slow/x")
	}
	for _, c := range calls {
		<-c.Done
		var valid bool
		var msg string
		if err := c.Store(&valid, &msg); err != nil || valid || !strings.Contains(msg, "timed out") {
			t.Fatalf("stuck check = (%v, %q, %v), want a time-out", valid, msg, err)
		}
	}
	call := client.Object(BusName, handlerPath("mem")).Call(HandlerInterface+".CheckConfig", 0, "mem/fine")
	checkErrName(t, call.Err, errLimitsExceeded)
	if err := client.Object(BusName, RootPath).Call(objectManagerInterface+".GetManagedObjects", 0).Err; err != nil {
		t.Fatalf("GetManagedObjects with every check slot taken: %v", err)
	}
}
