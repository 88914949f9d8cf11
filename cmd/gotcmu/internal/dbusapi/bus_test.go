package dbusapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// systemDefaultPolicy is the default context of dbus's system.conf: no
// name may be owned and no method called unless a policy file allows it.
const systemDefaultPolicy = `
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>`

// tcmuRunnerPolicy is tcmu-runner's /etc/dbus-1/system.d/tcmu-runner.conf,
// which merges with ours where both packages are installed.
const tcmuRunnerPolicy = `
  <policy user="root"><allow own="org.kernel.TCMUService1"/></policy>
  <policy context="default">
    <allow send_destination="org.kernel.TCMUService1"/>
    <allow own_prefix="org.kernel.TCMUService1.HandlerManager1"/>
    <allow send_interface="org.kernel.TCMUService1"/>
  </policy>`

// startBus runs a private system-like dbus-daemon with gotcmu's policy file
// from systemd/ (and extra policy text) and returns its address.
func startBus(t testing.TB, extraPolicy string) string {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon is not installed (apt-get install dbus): ", err)
	}
	policy, err := filepath.Abs("../../../../systemd/org.kernel.TCMUService1.conf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(policy); err != nil {
		t.Fatalf("policy file: %v", err)
	}
	if uid := os.Geteuid(); uid != 0 {
		// Not root: give the test's user what the policy gives root, as
		// if gotcmu ran as this user.
		extraPolicy += fmt.Sprintf(`
  <policy user="%d">
    <allow own="org.kernel.TCMUService1"/>
    <allow own_prefix="org.kernel.TCMUService1.HandlerManager1"/>
    <allow send_destination="org.kernel.TCMUService1"/>
    <allow send_destination_prefix="org.kernel.TCMUService1.HandlerManager1"/>
  </policy>`, uid)
	}
	dir := worldReadableDir(t)
	conf := fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s/bus</listen>
  <auth>EXTERNAL</auth>
  %s
  <include>%s</include>
  %s
</busconfig>`, dir, systemDefaultPolicy, policy, extraPolicy)
	confPath := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config-file="+confPath, "--nofork", "--nopidfile", "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addrc := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addrc <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case addr := <-addrc:
		if addr == "" {
			t.Fatalf("dbus-daemon printed no address: %s", stderr.String())
		}
		return addr
	case <-time.After(10 * time.Second):
		t.Fatalf("dbus-daemon did not start: %s", stderr.String())
	}
	return ""
}

// worldReadableDir makes a temporary directory that uid 65534 can enter,
// which t.TempDir (mode 0700) is not.
func worldReadableDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gotcmu-dbusapi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func connect(t testing.TB, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// clientCall is one call an unprivileged client process makes.
type clientCall struct {
	Own    string   `json:"own,omitempty"` // request this name instead of calling
	Path   string   `json:"path,omitempty"`
	Method string   `json:"method,omitempty"` // interface.member
	Args   []string `json:"args,omitempty"`
}

// clientResult is what the client process reports for one call.
type clientResult struct {
	ErrName string   `json:"err_name,omitempty"`
	ErrMsg  string   `json:"err_msg,omitempty"`
	Body    []string `json:"body,omitempty"`
}

const clientEnv = "GOTCMU_DBUSAPI_TEST_CLIENT"

// runAsNobody runs the calls from a copy of this test binary running as
// uid/gid 65534, a real other process whose credentials the bus daemon
// takes from its socket.
func runAsNobody(t *testing.T, addr string, calls []clientCall) []clientResult {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running a client as uid 65534 needs root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(worldReadableDir(t), "client")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	req, _ := json.Marshal(calls)
	cmd := exec.Command(bin)
	cmd.Env = []string{clientEnv + "=" + addr}
	cmd.Stdin = bytes.NewReader(req)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as nobody: %v: %s", err, stderr.String())
	}
	var res []clientResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if len(res) != len(calls) {
		t.Fatalf("client answered %d calls of %d", len(res), len(calls))
	}
	return res
}

// clientMain is the client process: calls from stdin, results to stdout.
func clientMain(addr string) int {
	var calls []clientCall
	if err := json.NewDecoder(os.Stdin).Decode(&calls); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	conn, err := dbus.Connect(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer conn.Close()
	res := make([]clientResult, len(calls))
	for i, c := range calls {
		var err error
		if c.Own != "" {
			var reply dbus.RequestNameReply
			reply, err = conn.RequestName(c.Own, dbus.NameFlagDoNotQueue)
			res[i].Body = []string{fmt.Sprint(reply)}
		} else {
			args := make([]any, len(c.Args))
			for j, a := range c.Args {
				args[j] = a
			}
			call := conn.Object(BusName, dbus.ObjectPath(c.Path)).Call(c.Method, 0, args...)
			err = call.Err
			for _, v := range call.Body {
				res[i].Body = append(res[i].Body, fmt.Sprint(v))
			}
		}
		if derr, ok := err.(dbus.Error); ok {
			res[i].ErrName = derr.Name
			res[i].ErrMsg = derr.Error()
		} else if err != nil {
			res[i].ErrName = "client"
			res[i].ErrMsg = err.Error()
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 2
	}
	return 0
}

func TestMain(m *testing.M) {
	if addr := os.Getenv(clientEnv); addr != "" {
		os.Exit(clientMain(addr))
	}
	os.Exit(m.Run())
}
