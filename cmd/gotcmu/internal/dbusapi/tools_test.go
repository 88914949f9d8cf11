package dbusapi

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// targetcliScript runs targetcli's own discovery of user backstores
// (UIBackstores._user_backstores in targetcli/ui_backstore.py: a Gio
// ObjectManager proxy, then a Gio proxy per object) and its create-time
// CheckConfig call, and prints what it found as JSON.
const targetcliScript = `
import json, sys
from targetcli.ui_backstore import UIBackstores
found = {}
for name, iface, props in UIBackstores._user_backstores(None):
    desc = props.get("org.kernel.TCMUService1", {}).get("ConfigDesc", "No description.")
    ok, msg = iface.CheckConfig('(s)', name + "/" + sys.argv[1])
    found[name] = {"desc": desc, "valid": ok, "message": msg}
print(json.dumps(found))
`

// TestTargetcliDiscovery runs targetcli's own code against gotcmu, as
// root and as uid 65534 (targetcli lists backstores for anyone).
func TestTargetcliDiscovery(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import targetcli.ui_backstore, gi").Run(); err != nil {
		t.Skip("targetcli-fb with python3-gi is not installed (apt-get install targetcli-fb): ", err)
	}
	addr := startBus(t, "")
	startService(t, addr)

	type entry struct {
		Desc    string `json:"desc"`
		Valid   bool   `json:"valid"`
		Message string `json:"message"`
	}
	want := map[string]entry{}
	for st, d := range builtinDescs {
		want[st] = entry{Desc: d, Valid: false, Message: "config string must not contain ':'"}
	}
	for _, asNobody := range []bool{false, true} {
		cmd := exec.Command(python, "-c", targetcliScript, "bad:config")
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+addr)
		if asNobody {
			if os.Geteuid() != 0 {
				continue
			}
			cmd = exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", python}, cmd.Args[1:]...)...)
			cmd.Env = []string{"DBUS_SYSTEM_BUS_ADDRESS=" + addr, "HOME=/nonexistent"}
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("targetcli discovery (nobody=%v): %v: %s", asNobody, err, exitStderr(err))
		}
		var got map[string]entry
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("targetcli output %q: %v", out, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("targetcli saw (nobody=%v) (-want +got):\n%s", asNobody, diff)
		}
	}
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// TestBusTools checks that the standard tools can walk gotcmu's objects
// from the introspection data alone.
func TestBusTools(t *testing.T) {
	addr := startBus(t, "")
	startService(t, addr)
	tests := []struct {
		name string
		tool string
		args []string
		want []string
	}{
		{"busctl_tree", "busctl", []string{"--address=" + addr, "tree", BusName}, []string{
			"/org/kernel/TCMUService1/HandlerManager1", "/org/kernel/TCMUService1/mem", "/org/kernel/TCMUService1/probe",
		}},
		{"busctl_introspect", "busctl", []string{"--address=" + addr, "introspect", BusName, "/org/kernel/TCMUService1/mem"}, []string{
			".CheckConfig", "method", ".ConfigDesc", "property", `"mem/<anything but bad>"`,
		}},
		{"gdbus_introspect_recurse", "gdbus", []string{"introspect", "--address", addr, "--dest", BusName, "--object-path", RootPath, "--recurse"}, []string{
			"GetManagedObjects(out a{oa{sa{sv}}} objects)", "RegisterHandler(in  s subtype,", "readonly s ConfigDesc",
			"node /org/kernel/TCMUService1/slow",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exec.LookPath(tt.tool); err != nil {
				t.Skipf("%s is not installed: %v", tt.tool, err)
			}
			out, err := exec.Command(tt.tool, tt.args...).Output()
			if err != nil {
				t.Fatalf("%s: %v: %s", tt.tool, err, exitStderr(err))
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s output lacks %q:\n%s", tt.tool, w, out)
				}
			}
		})
	}
}
