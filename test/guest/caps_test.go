//go:build guest

package guest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// hardFaults runs issue 15 point 1's faults (test/cmd/hardfaults) on the
// three-OSD cluster; hardfaults writes its own PASS/FAIL lines and
// figures.
func (f *faults) hardFaults(t *testing.T, want []string) {
	var names []string
	for _, h := range hardFaults {
		if slices.Contains(want, h) {
			names = append(names, h)
		}
	}
	if !t.Run("micro Ceph with 3 OSDs up and rbd/hard created", func(t *testing.T) { f.clusterUp(t, f.ceph3, "ceph3-start.log") }) {
		return
	}
	var dev string
	if !t.Run("user:rbd LUN on tcm_loop", func(t *testing.T) {
		bs, err := makeLUN(7, "hard0", "rbd/rbd/hard;osd_op_timeout=10;conf="+ceph3Dir+"/ceph.conf", 128<<20, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if dev, err = loopExport(loopWWN(7), bs); err != nil {
			t.Fatal(err)
		}
	}) {
		return
	}
	t.Run("hardfaults ran its checks", func(t *testing.T) {
		if f.hardfaults == "" {
			t.Fatal("HARDFAULTS not set")
		}
		// Every step inside is bounded; this bounds the whole.
		args := append([]string{"-k", "10", "1200", f.hardfaults, "-dev", dev, "-ceph", ceph3Dir,
			"-micro-ceph", filepath.Join(f.repo, "test/micro-ceph.sh"), "-ackwriter", f.ackwriter,
			"-device", "hard0", "-out", f.out, "-summary", f.summary, "-figures", f.fig.path,
			"-osd-op-timeout", "10s", "-handler-pid", fmt.Sprint(f.d.pid())}, names...)
		cmd := exec.Command("timeout", args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		switch rc := exitStatus(cmd.Run()); rc {
		case 0:
		case 1:
			t.Error("hardfaults: a check failed (its FAIL lines above)")
		default:
			t.Errorf("hardfaults did not complete (exit %d)", rc)
		}
	})
}

// dbusUp reports whether gotcmu's bus name answers.
func dbusUp() bool {
	return exec.Command("dbus-send", "--system", "--print-reply", "--dest=org.kernel.TCMUService1",
		"/org/kernel/TCMUService1", "org.freedesktop.DBus.Peer.Ping").Run() == nil
}

// asNobody is a D-Bus call to gotcmu from uid 65534: its reply or error,
// on one line.
func asNobody(args ...string) string {
	out, _ := output("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups",
		"dbus-send", "--system", "--print-reply", "--dest=org.kernel.TCMUService1"}, args...)...)
	return strings.Join(strings.Fields(out), " ")
}

// checkConfig is the D-Bus call CheckConfig of a file backstore on path.
func checkConfig(path string) []string {
	return []string{"/org/kernel/TCMUService1/file", "org.kernel.TCMUService1.CheckConfig", "string:file/" + path}
}

// nobodyGets fails t unless gotcmu's answer to the D-Bus call from uid
// 65534 holds want.
func nobodyGets(t *testing.T, want string, call ...string) {
	t.Helper()
	r := asNobody(call...)
	t.Logf("%s from uid 65534: %s", call[1], r)
	if !strings.Contains(r, want) {
		t.Errorf("want %q in the answer", want)
	}
}

// startCapped starts gotcmu with the bounding and inheritable sets cut to
// caps (as root its permitted and effective sets are then caps), no new
// privileges, and waits for its bus name.
func (f *faults) startCapped(logName string, caps []string) error {
	err := f.d.start(filepath.Join(f.out, logName), "setpriv", "--bounding-set", BoundingSet(caps), "--inh-caps", "-all", "--no-new-privs")
	if err != nil {
		return err
	}
	if !waitUntil(20*time.Second, dbusUp) {
		return fmt.Errorf("gotcmu with %s: no answer on D-Bus within 20 s", strings.Join(caps, " "))
	}
	return nil
}

// without is caps less drop.
func without(caps []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(caps), func(c string) bool { return slices.Contains(drop, c) })
}

// caps: gotcmu under setpriv with only the unit's CapabilityBoundingSet
// serves a LUN and answers an unprivileged CheckConfig with the caller's
// permissions (Status refused); without CAP_NET_ADMIN no device can be
// enabled; without CAP_DAC_OVERRIDE another user's 0600 image is refused;
// without CAP_SETUID/SETGID an unprivileged CheckConfig is refused;
// metrics on loopback.
func (f *faults) caps(t *testing.T) {
	f.d.stop()
	unit, err := os.ReadFile(filepath.Join(f.repo, "systemd/gotcmu.service"))
	if err != nil {
		t.Fatal(err)
	}
	caps := strings.Fields(UnitValue(string(unit), "CapabilityBoundingSet"))
	if len(caps) == 0 {
		t.Fatal("systemd/gotcmu.service sets no CapabilityBoundingSet")
	}
	logf("unit CapabilityBoundingSet: %s", strings.Join(caps, " "))
	for _, img := range []struct {
		path string
		uid  int
	}{{"/tmp/secret.img", 0}, {"/tmp/other.img", 65534}} {
		err := createFile(img.path, 16<<20, 0o600)
		if err == nil {
			err = os.Chown(img.path, img.uid, img.uid)
		}
		if err == nil {
			err = os.Chmod(img.path, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	user6 := filepath.Join(configfs, "core/user_6")
	t.Run("with the unit's capabilities", func(t *testing.T) {
		defer f.d.stop()
		if err := f.startCapped("gotcmu-caps.log", caps); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", f.d.pid())); err == nil {
			for line := range strings.Lines(string(b)) {
				if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
					dec, _ := output("capsh", "--decode="+strings.TrimSpace(v))
					logf("CapEff %s: %s", strings.TrimSpace(v), strings.TrimSpace(dec))
				}
			}
		}
		t.Run("a LUN is served (4 MiB round trip)", func(t *testing.T) {
			if err := createFile("/tmp/caps.img", 64<<20, 0o644); err != nil {
				t.Fatal(err)
			}
			bs, err := makeLUN(6, "caps0", "file//tmp/caps.img", 64<<20, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			defer removeBackstore(bs)
			dev, err := loopExport(loopWWN(6), bs)
			if err != nil {
				t.Fatal(err)
			}
			defer loopUnexport(loopWWN(6))
			if err := quickIO(dev); err != nil {
				t.Error(err)
			}
		})
		// CAP_SETUID/SETGID: CheckConfig from an unprivileged caller runs
		// with the caller's file system credentials, so root's 0600 image
		// is not readable for it.
		t.Run("CheckConfig from uid 65534 is answered with its permissions (false)", func(t *testing.T) {
			nobodyGets(t, "boolean false", checkConfig("/tmp/secret.img")...)
		})
		t.Run("Status (every device and config string) is refused to uid 65534", func(t *testing.T) {
			nobodyGets(t, "AccessDenied", "/org/kernel/TCMUService1", "org.kernel.TCMUService1.Gotcmu1.Status")
		})
		t.Run("another user's 0600 image opens (CAP DAC OVERRIDE)", func(t *testing.T) {
			bs, err := makeLUN(6, "other0", "file//tmp/other.img", 16<<20, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			removeBackstore(bs)
		})
	})
	// Without CAP_DAC_OVERRIDE the same image is refused: the capability
	// is really used.
	t.Run("without CAP DAC OVERRIDE", func(t *testing.T) {
		defer f.d.stop()
		if err := f.startCapped("gotcmu-nodac.log", without(caps, "CAP_DAC_OVERRIDE")); err != nil {
			t.Fatal(err)
		}
		t.Run("another user's 0600 image is refused", func(t *testing.T) {
			if bs, err := makeLUN(6, "other1", "file//tmp/other.img", 16<<20, time.Minute); err == nil {
				removeBackstore(bs)
				t.Fatal("another user's 0600 image was opened")
			}
		})
		if dir := filepath.Join(user6, "other1"); exists(dir) {
			removeBackstore(dir)
		}
	})
	// Without CAP_SETUID/SETGID an unprivileged CheckConfig cannot take the
	// caller's credentials and is refused rather than answered with the
	// daemon's.
	t.Run("without CAP SETUID and CAP SETGID", func(t *testing.T) {
		defer f.d.stop()
		if err := f.startCapped("gotcmu-nosetid.log", without(caps, "CAP_SETUID", "CAP_SETGID")); err != nil {
			t.Fatal(err)
		}
		t.Run("an unprivileged CheckConfig is refused, not answered as root", func(t *testing.T) {
			nobodyGets(t, "credentials", checkConfig("/tmp/secret.img")...)
		})
	})
	// Without CAP_NET_ADMIN: TCM-USER's netlink commands are
	// GENL_ADMIN_PERM.
	t.Run("without CAP NET ADMIN no new device can be enabled", func(t *testing.T) {
		// gotcmu may well not start; the device must not be enabled either way.
		upErr := f.startCapped("gotcmu-nonet.log", without(caps, "CAP_NET_ADMIN"))
		up := upErr == nil
		if err := createFile("/tmp/nonet.img", 16<<20, 0o644); err != nil {
			f.d.kill()
			t.Fatal(err)
		}
		bs, err := makeLUN(6, "nonet", "file//tmp/nonet.img", 16<<20, 15*time.Second)
		f.d.kill()
		if dir := filepath.Join(user6, "nonet"); exists(dir) {
			unblockNetlink()
			removeBackstore(dir)
		}
		if err == nil {
			t.Fatalf("%s was enabled (gotcmu up: %v)", bs, up)
		}
		t.Logf("refused (gotcmu up: %v); its log: %s", up, tail(filepath.Join(f.out, "gotcmu-nonet.log"), 3))
	})
	rmdir(user6)
	// Metrics: loopback only by default.
	if !t.Run("gotcmu restarted with defaults", func(t *testing.T) { f.start(t) }) {
		t.FailNow()
	}
	t.Run("metrics listen on 127.0.0.1:9560 only", func(t *testing.T) {
		var all []string
		for _, p := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			b, err := os.ReadFile(p)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			all = append(all, Listening(string(b), 9560)...)
		}
		if len(all) != 1 || all[0] != "0100007F:2558" {
			t.Errorf("listening on %v, want only 0100007F:2558 (127.0.0.1:9560)", all)
		}
	})
	t.Run("metrics answer on loopback", func(t *testing.T) {
		text, err := fetch(metrics)
		if err != nil {
			t.Fatal(err)
		}
		if MetricSum(text, "go_goroutines", nil) <= 0 {
			t.Error("no go_goroutines sample above 0")
		}
	})
}
