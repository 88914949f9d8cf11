//go:build guest

package guest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// allFaults is every fault of make test-faults, in the order they run
// (FAULTS picks a subset). See test/vm/guest-faults.sh for what each is.
var allFaults = []string{"reset-ring", "tiny-data-area", "delete", "netlink-kill",
	"sigkill", "sigterm", "osd-restart", "osd-timeout", "stale-write",
	"mon-sigkill", "osd-sigkill", "below-min-size", "osd-freeze", "caps"}

// hardFaults are test/cmd/hardfaults' faults, run on a cluster of their
// own (3 OSDs, pool size 3, min_size 2).
var hardFaults = []string{"mon-sigkill", "osd-sigkill", "below-min-size", "osd-freeze"}

// rbdFaults need the one-OSD cluster and its user:rbd LUN.
var rbdFaults = []string{"sigkill", "sigterm", "osd-restart", "osd-timeout", "stale-write"}

const (
	cephDir  = "/tmp/ceph"  // the one-OSD cluster
	ceph3Dir = "/tmp/ceph3" // the hard faults' three-OSD cluster
	metrics  = "http://127.0.0.1:9560/metrics"
)

// faults is the state the faults share: one gotcmu, a user:file LUN all
// along, a user:rbd LUN once Ceph is up.
type faults struct {
	*env
	d       *daemon
	nlog    int // gotcmu-N.log files started
	fileBS  string
	fileDev string
	rbdDev  string
	ceph    <-chan error // the one-OSD cluster's start, nil if not wanted
	ceph3   <-chan error
	t0      time.Time // when the clusters' start began
}

// TestFaults is make test-faults: issue 8 point 1, gotcmu under faults
// with a verifying write load on each LUN, and point 4's capabilities.
func TestFaults(t *testing.T) {
	e := loadEnv(t, "/out/faults")
	want := allFaults
	if s := os.Getenv("FAULTS"); s != "" {
		want = strings.Fields(s)
		for _, name := range want {
			if !slices.Contains(allFaults, name) {
				t.Fatalf("FAULTS: unknown fault %q (known: %s)", name, strings.Join(allFaults, " "))
			}
		}
	}
	wanted := func(names ...string) bool {
		return slices.ContainsFunc(names, func(n string) bool { return slices.Contains(want, n) })
	}
	logf("faults: %s", strings.Join(want, " "))
	f := &faults{env: e, d: &daemon{bin: e.gotcmu, args: e.gotcmuArgs, repo: e.repo}}
	t.Cleanup(f.cleanup)
	if !t.Run("gotcmu starts", func(t *testing.T) { f.start(t) }) {
		t.FailNow()
	}
	// Both clusters start in the background while the user:file faults
	// run (one to two minutes under TCG, the three-OSD one up to ten).
	// micro-ceph.sh sets osd heartbeat grace 4 s and interval 2 s, so the
	// LUN's osd_op_timeout=10 stays 10 s (gotcmu raises a value below
	// grace+interval to grace+interval+5, tcmu-runner's rule).
	f.t0 = time.Now()
	if wanted(rbdFaults...) {
		f.ceph = startCluster(f, cephDir, "ceph-start.log", 1<<30, "rbd/faults", "256M",
			"MON_PORT_V2=3300", "MON_PORT_V1=6789")
	}
	if wanted(hardFaults...) {
		f.ceph3 = startCluster(f, ceph3Dir, "ceph3-start.log", 384<<20, "rbd/hard", "128M",
			"OSDS=3", "MON_PORT_V2=3310", "MON_PORT_V1=6790")
	}
	if !t.Run("user:file LUN", f.fileLUN) {
		t.FailNow()
	}
	for _, fault := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"reset-ring", f.resetRing},
		{"tiny-data-area", f.tinyDataArea},
		{"delete", f.delete},
		{"netlink-kill", f.netlinkKill},
		{"user:rbd LUN", f.rbdLUN},
		{"sigkill", f.sigkill},
		{"sigterm", f.sigterm},
		{"osd-restart", f.osdRestart},
		{"osd-timeout", f.osdTimeout},
		{"stale-write", f.staleWrite},
		{"hard faults", func(t *testing.T) { f.hardFaults(t, want) }},
		{"caps", f.caps},
	} {
		switch fault.name {
		case "user:rbd LUN":
			if f.ceph == nil {
				continue
			}
		case "hard faults":
			if !wanted(hardFaults...) {
				continue
			}
		default:
			if !wanted(fault.name) {
				continue
			}
		}
		logf("=== %s", fault.name)
		t.Run(fault.name, fault.run)
		// A fault that left gotcmu dead fails here too; the next fault
		// gets a gotcmu started again.
		if !f.d.alive() {
			t.Run("gotcmu running after "+fault.name, func(t *testing.T) {
				t.Errorf("gotcmu is not running after %s (%v); its log: %s", fault.name, f.d.waitErr, tail(f.d.logPath, 5))
				f.start(t)
			})
			if !f.d.alive() {
				t.FailNow()
			}
		}
	}
	t.Run("gotcmu exits 0 on the final SIGTERM", func(t *testing.T) {
		if rc := f.d.stop(); rc != 0 {
			t.Errorf("exit status %d", rc)
		}
	})
}

// cleanup stops what the faults leave running, whatever happened.
func (f *faults) cleanup() {
	if f.d.alive() {
		f.d.signal(syscall.SIGCONT)
		if rc := f.d.stop(); rc != 0 {
			logf("gotcmu did not stop cleanly (status %d)", rc)
		}
	}
	for _, dir := range []string{cephDir, ceph3Dir} {
		if exists(dir) {
			exec.Command(filepath.Join(f.repo, "test/micro-ceph.sh"), "stop", dir).Run()
		}
	}
	if b, err := os.ReadFile(f.fig.path); err == nil && len(b) > 0 {
		fmt.Printf("==== fault figures\n%s", b)
	}
}

// start starts gotcmu with a numbered log of its own, or fails t.
func (f *faults) start(t *testing.T) {
	t.Helper()
	f.nlog++
	if err := f.d.start(filepath.Join(f.out, fmt.Sprintf("gotcmu-%d.log", f.nlog))); err != nil {
		t.Fatalf("gotcmu start: %v", err)
	}
}

// logs is everything every gotcmu of this suite logged.
func (f *faults) logs() []byte {
	var all []byte
	paths, _ := filepath.Glob(filepath.Join(f.out, "gotcmu-*.log"))
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		all = append(all, b...)
	}
	return all
}

// logged reports whether some gotcmu of the suite logged msg with fields.
func (f *faults) logged(msg string, fields map[string]string) bool {
	return len(LogMatch(f.logs(), msg, fields)) > 0
}

// running fails t if gotcmu is gone.
func (f *faults) running(t *testing.T) {
	t.Run("gotcmu still running", func(t *testing.T) {
		if !f.d.alive() {
			t.Errorf("gotcmu exited: %v; its log: %s", f.d.waitErr, tail(f.d.logPath, 5))
		}
	})
}

// startCluster starts a micro Ceph (test/micro-ceph.sh) in dir and creates
// image in it, in the background; the channel says how that ended.
func startCluster(f *faults, dir, logName string, osdSize int64, image, size string, env ...string) <-chan error {
	done := make(chan error, 1)
	go func() {
		out, err := os.Create(filepath.Join(f.out, logName))
		if err != nil {
			done <- err
			return
		}
		defer out.Close()
		start := exec.Command(filepath.Join(f.repo, "test/micro-ceph.sh"), "start", dir, fmt.Sprint(osdSize))
		start.Env = append(os.Environ(), env...)
		start.Stdout, start.Stderr = out, out
		if err := start.Run(); err != nil {
			done <- fmt.Errorf("micro-ceph.sh start: %v", err)
			return
		}
		create := exec.Command("rbd", "create", image, "--size", size)
		create.Env = append(os.Environ(), "CEPH_CONF="+dir+"/ceph.conf")
		create.Stdout, create.Stderr = out, out
		if err := create.Run(); err != nil {
			done <- fmt.Errorf("rbd create %s: %v", image, err)
			return
		}
		done <- nil
	}()
	return done
}

// clusterUp waits for a cluster's start and fails t if it did not come up.
func (f *faults) clusterUp(t *testing.T, done <-chan error, logName string) {
	if err := <-done; err != nil {
		t.Fatalf("%v (see %s: %s)", err, logName, tail(filepath.Join(f.out, logName), 20))
	}
	logf("up and image created %.0f s after the start", time.Since(f.t0).Seconds())
}

func (f *faults) fileLUN(t *testing.T) {
	if err := createFile("/tmp/file0.img", 256<<20, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("user:file backstore enabled", func(t *testing.T) {
		var err error
		if f.fileBS, err = makeLUN(1, "file0", "file//tmp/file0.img", 256<<20, time.Minute); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("exported on tcm_loop", func(t *testing.T) {
		if f.fileBS == "" {
			t.Fatal("no backstore")
		}
		var err error
		if f.fileDev, err = loopExport(loopWWN(1), f.fileBS); err != nil {
			t.Fatal(err)
		}
		t.Logf("user:file LUN %s", f.fileDev)
	})
}

// resetRing: action/reset_ring written 3 times while commands are in
// flight.
func (f *faults) resetRing(t *testing.T) {
	s := startStream(t, f.env, "reset-ring", f.fileDev, region(64<<20, 32)...)
	time.Sleep(5 * time.Second)
	for i := 1; i <= 3; i++ {
		if err := put(filepath.Join(f.fileBS, "action/reset_ring"), "1"); err != nil {
			t.Errorf("reset_ring %d: %v", i, err)
		}
		logf("reset_ring %d written with %d writes acknowledged", i, s.acked())
		time.Sleep(3 * time.Second)
	}
	m := s.acked()
	s.recovered(m, 2*time.Minute)
	s.end(t, m)
	f.running(t)
	t.Run("gotcmu noticed the reset and resynchronised its ring", func(t *testing.T) {
		if !f.logged("command ring reset; serving again", nil) {
			t.Error(`gotcmu never logged "command ring reset; serving again"`)
		}
	})
}

// tinyDataArea: max_data_area_mb=1, 64 writes of 64 KiB in flight (4 MiB
// wanted), and gotcmu SIGSTOPped for 5 s with qfull_time_out=1:
// queue-full (TASK SET FULL), no hang.
func (f *faults) tinyDataArea(t *testing.T) {
	if err := createFile("/tmp/tiny.img", 128<<20, 0o644); err != nil {
		t.Fatal(err)
	}
	var bs, dev string
	ok := t.Run("backstore with max_data_area_mb=1 enabled", func(t *testing.T) {
		var err error
		if bs, err = makeLUN(2, "tiny", "file//tmp/tiny.img", 128<<20, time.Minute, "max_data_area_mb=1"); err != nil {
			t.Fatal(err)
		}
		// Commands waiting for data-area space more than 1 s are failed
		// with TASK SET FULL.
		if err := put(filepath.Join(bs, "attrib/qfull_time_out"), "1"); err != nil {
			t.Fatal(err)
		}
	}) && t.Run("exported on tcm_loop", func(t *testing.T) {
		var err error
		if dev, err = loopExport(loopWWN(2), bs); err != nil {
			t.Fatal(err)
		}
	})
	defer func() {
		if dev != "" {
			loopUnexport(loopWWN(2))
		}
		if bs != "" {
			removeBackstore(bs)
		}
	}()
	if !ok {
		return
	}
	trace := newSCSITrace()
	s := startStream(t, f.env, "tiny-data-area", dev, "-bs", "65536", "-blocks", "1024", "-depth", "64")
	time.Sleep(6 * time.Second)
	f.d.signal(syscall.SIGSTOP)
	logf("gotcmu stopped for 5 s with the data area full (%d writes acknowledged)", s.acked())
	time.Sleep(5 * time.Second)
	f.d.signal(syscall.SIGCONT)
	m := s.acked()
	s.recovered(m, 2*time.Minute)
	s.end(t, m)
	t.Run("the kernel answered TASK SET FULL while the queue was full", func(t *testing.T) {
		n, err := trace.count("TASK_SET_FULL")
		if err != nil {
			t.Skipf("no count of TASK SET FULL answers: %v", err)
		}
		f.fig.add("tiny-data-area: TASK SET FULL answers seen by the initiator: %d", n)
		if n == 0 {
			t.Error("the SCSI trace holds no TASK_SET_FULL completion")
		}
	})
}

// scsiTrace is the kernel's scsi_dispatch_cmd_done trace event, on from
// newSCSITrace until count.
type scsiTrace struct {
	dir string
	err error // why there is no trace
}

func newSCSITrace() *scsiTrace {
	tr := &scsiTrace{dir: "/sys/kernel/tracing"}
	if !exists(tr.dir + "/events") {
		exec.Command("mount", "-t", "tracefs", "nodev", tr.dir).Run()
	}
	if tr.err = os.WriteFile(tr.dir+"/trace", nil, 0); tr.err == nil {
		tr.err = put(tr.dir+"/events/scsi/scsi_dispatch_cmd_done/enable", "1")
	}
	if tr.err != nil {
		tr.err = fmt.Errorf("no tracefs in the guest kernel (%w)", tr.err)
	}
	return tr
}

// count turns the event off and counts the trace's lines holding s.
func (tr *scsiTrace) count(s string) (int, error) {
	if tr.err != nil {
		return 0, tr.err
	}
	put(tr.dir+"/events/scsi/scsi_dispatch_cmd_done/enable", "0")
	b, err := os.ReadFile(tr.dir + "/trace")
	if err != nil {
		return 0, err
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n, nil
}

// delete: the backstore deleted with targetcli while its stream runs:
// gotcmu survives, what was acknowledged is in the image, the other LUNs
// still serve.
func (f *faults) delete(t *testing.T) {
	const wwnN = 3
	if err := createFile("/tmp/del.img", 64<<20, 0o644); err != nil {
		t.Fatal(err)
	}
	var bs, dev string
	if !t.Run("exported on tcm_loop", func(t *testing.T) {
		var err error
		if bs, err = makeLUN(wwnN, "fdel", "file//tmp/del.img", 64<<20, time.Minute); err != nil {
			t.Fatal(err)
		}
		if dev, err = loopExport(loopWWN(wwnN), bs); err != nil {
			t.Fatal(err)
		}
	}) {
		return
	}
	// The writer gives up 5 s after its device is gone.
	s := startStream(t, f.env, "delete", dev, "-blocks", "4096", "-depth", "16", "-give-up", "5s")
	time.Sleep(6 * time.Second)
	t.Run("targetcli deleted the backstore under I/O", func(t *testing.T) {
		// targetcli finds user: backstores through gotcmu's D-Bus service;
		// should it fail, configfs directly (what targetcli does
		// underneath) still tests gotcmu.
		t0 := time.Now()
		cmd := exec.Command("timeout", "90", "targetcli", "/backstores/user:file", "delete", "fdel")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		rc := 124
		if err := cmd.Start(); err == nil {
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				rc = exitStatus(err)
			case <-time.After(95 * time.Second):
			}
		}
		os.WriteFile(filepath.Join(f.out, "targetcli-delete.txt"), out.Bytes(), 0o644)
		fmt.Print(out.String())
		if !exists(bs) {
			t.Logf("deleted in %.0f s (targetcli exit %d)", time.Since(t0).Seconds(), rc)
			return
		}
		t.Errorf("targetcli (exit %d) left %s; removing it through configfs", rc, bs)
		loopUnexport(loopWWN(wwnN))
		if err := removeBackstore(bs); err != nil {
			t.Errorf("rmdir %s: %v", bs, err)
		}
	})
	t.Run("backstore gone", func(t *testing.T) {
		if exists(bs) {
			t.Errorf("%s is still there", bs)
		}
	})
	s.wait(2 * time.Minute)
	vrc, line := s.verify("/tmp/del.img", "-direct=false")
	if line == "" {
		line = "verify failed"
	}
	f.fig.add("delete: %s (verified in the backing file after the delete)", line)
	t.Run("every write acknowledged before the delete is in the image (lost=0)", func(t *testing.T) {
		if vrc != 0 {
			t.Errorf("ackwriter verify of the backing file exited %d: %s", vrc, line)
		}
	})
	f.running(t)
	t.Run("gotcmu closed the device", func(t *testing.T) {
		if !f.logged("device closed", map[string]string{"dev": "fdel"}) {
			t.Error(`gotcmu never logged "device closed" for fdel`)
		}
	})
	t.Run("the other LUN still serves (4 MiB round trip)", func(t *testing.T) {
		if err := quickIO(f.fileDev); err != nil {
			t.Error(err)
		}
	})
	// targetcli took the LUN away with the backstore; the empty target
	// stays.
	tpg := filepath.Join(configfs, "loopback", loopWWN(wwnN), "tpgt_1")
	for _, d := range []string{tpg + "/lun/lun_0", tpg, filepath.Dir(tpg)} {
		rmdir(d)
	}
}

// quickIO writes 4 MiB of random data to dev at offset 0 with O_DIRECT
// and reads it back (dd: its buffers are aligned for O_DIRECT).
func quickIO(dev string) error {
	script := `dd if=/dev/urandom of=/tmp/qio bs=1M count=4 status=none &&
		dd if=/tmp/qio of="$1" bs=1M oflag=direct status=none &&
		dd if="$1" of=/tmp/qio.back bs=1M count=4 iflag=direct status=none &&
		cmp /tmp/qio /tmp/qio.back`
	if out, err := exec.Command("sh", "-c", script, "sh", dev).CombinedOutput(); err != nil {
		return fmt.Errorf("4 MiB round trip on %s: %v: %s", dev, err, out)
	}
	return nil
}

// netlinkKill: gotcmu SIGKILLed while an enable write waits for its
// netlink reply: the next gotcmu unblocks the writer, the retried enable
// works, nothing is left in D state.
func (f *faults) netlinkKill(t *testing.T) {
	if err := createFile("/tmp/nl.img", 16<<20, 0o644); err != nil {
		t.Fatal(err)
	}
	nl := filepath.Join(configfs, "core/user_5/nl0")
	if err := os.MkdirAll(nl, 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() { bounded(30*time.Second, func() error { return rmdir(nl) }) }()
	for _, tok := range []string{"dev_config=file//tmp/nl.img", fmt.Sprintf("dev_size=%d", 16<<20)} {
		if err := put(nl+"/control", tok); err != nil {
			t.Fatal(err)
		}
	}
	f.d.signal(syscall.SIGSTOP)
	defer f.d.signal(syscall.SIGCONT)
	// The enable from a process of its own, whose state /proc shows.
	errPath := filepath.Join(f.out, "netlink-enable-1.txt")
	en := exec.Command("sh", "-c", `printf %s 1 > "$1" 2> "$2"`, "sh", nl+"/enable", errPath)
	if err := en.Start(); err != nil {
		t.Fatal(err)
	}
	enDone := make(chan error, 1)
	go func() { enDone <- en.Wait() }()
	defer func() {
		select {
		case <-enDone:
		default:
			unblockNetlink()
			<-enDone
		}
	}()
	time.Sleep(3 * time.Second)
	t.Run("the enable write waits for gotcmu's reply", func(t *testing.T) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", en.Process.Pid))
		if err != nil {
			t.Fatalf("the writer is gone: %v", err)
		}
		if st, err := ParseProcStat(string(b)); err != nil || st.State != 'D' {
			t.Errorf("the writer's state is %q, not D (%v)", st.State, err)
		}
	})
	f.d.kill()
	time.Sleep(2 * time.Second)
	var enErr error
	t.Run("the writer is still blocked with gotcmu dead", func(t *testing.T) {
		select {
		case enErr = <-enDone:
			enDone <- enErr
			t.Errorf("the enable returned (%v) with no gotcmu to answer it", enErr)
		default:
		}
	})
	t0 := time.Now()
	if !t.Run("gotcmu started again", func(t *testing.T) { f.start(t) }) {
		t.FailNow()
	}
	t.Run("the blocked enable returned after the start", func(t *testing.T) {
		select {
		case err := <-enDone:
			enDone <- err
			msg, _ := os.ReadFile(errPath)
			t.Logf("returned %d ms after the start (exit %d: %s)", time.Since(t0).Milliseconds(), exitStatus(err), strings.TrimSpace(string(msg)))
		case <-time.After(30 * time.Second):
			t.Error("the enable write still blocked 30 s after gotcmu started")
		}
	})
	t.Run("the device is enabled, by the first enable or a retry", func(t *testing.T) {
		if b, _ := os.ReadFile(nl + "/enable"); strings.TrimSpace(string(b)) == "1" {
			t.Log("the first enable went through after all")
			return
		}
		// The reset that ended the first enable blocks netlink until the
		// new gotcmu has adopted its devices: an enable in that window
		// is failed with EAGAIN, to be retried.
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := bounded(30*time.Second, func() error { return put(nl+"/enable", "1") })
			if err == nil {
				return
			}
			if !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
				t.Fatalf("the retried enable: %v", err)
			}
			t.Logf("the retried enable: %v (netlink still blocked); again", err)
			time.Sleep(500 * time.Millisecond)
		}
	})
	t.Run("gotcmu serves the device", func(t *testing.T) {
		if !waitUntil(10*time.Second, func() bool { return f.logged("serving device", map[string]string{"dev": "nl0"}) }) {
			t.Error(`gotcmu did not log "serving device" for nl0 within 10 s`)
		}
	})
	t.Run("no process left in D state", func(t *testing.T) {
		// A writer left blocked stays in D; one caught in passing (I/O)
		// leaves it within seconds.
		if !waitUntil(15*time.Second, func() bool { return len(dState()) == 0 }) {
			t.Errorf("in D state after 15 s: %s", strings.Join(dState(), ", "))
		}
	})
}

// rbdLUN waits for the one-OSD cluster and exports a user:rbd LUN on it.
func (f *faults) rbdLUN(t *testing.T) {
	if !t.Run("micro Ceph up and rbd/faults created", func(t *testing.T) { f.clusterUp(t, f.ceph, "ceph-start.log") }) {
		return
	}
	var bs string
	t.Run("user:rbd backstore enabled", func(t *testing.T) {
		var err error
		bs, err = makeLUN(4, "rbd0", "rbd/rbd/faults;osd_op_timeout=10;conf="+cephDir+"/ceph.conf", 256<<20, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("exported on tcm_loop", func(t *testing.T) {
		if bs == "" {
			t.Fatal("no backstore")
		}
		var err error
		if f.rbdDev, err = loopExport(loopWWN(4), bs); err != nil {
			t.Fatal(err)
		}
		t.Logf("user:rbd LUN %s", f.rbdDev)
	})
}

// needRBD fails t when there is no user:rbd LUN.
func (f *faults) needRBD(t *testing.T) {
	if f.rbdDev == "" {
		t.Fatal("no user:rbd LUN (see user:rbd LUN above)")
	}
}

// streamPair starts a stream on the user:file LUN and one on the user:rbd
// LUN (nil without it), both at offset.
func (f *faults) streamPair(t *testing.T, name string, offset int64) (file, rbd *stream) {
	file = startStream(t, f.env, name+"-file", f.fileDev, region(offset, 16)...)
	if f.rbdDev != "" {
		rbd = startStream(t, f.env, name+"-rbd", f.rbdDev, region(offset, 16)...)
	}
	return file, rbd
}

// endPair waits for both streams to recover and ends them, checks under
// "file" and "rbd".
func (f *faults) endPair(t *testing.T, file, rbd *stream) {
	mf, mr := file.acked(), rbd.acked()
	file.recovered(mf, 2*time.Minute)
	if rbd != nil {
		rbd.recovered(mr, 2*time.Minute)
	}
	t.Run("file", func(t *testing.T) { file.end(t, mf) })
	t.Run("rbd", func(t *testing.T) {
		f.needRBD(t)
		rbd.end(t, mr)
	})
}

// sigkill: gotcmu SIGKILLed and restarted 5 times under two streams.
func (f *faults) sigkill(t *testing.T) {
	file, rbd := f.streamPair(t, "sigkill", 0)
	for i := 1; i <= 5; i++ {
		time.Sleep(6 * time.Second)
		before := fmt.Sprintf("%d/%d", file.acked(), rbd.acked())
		f.d.kill()
		logf("SIGKILL %d with %s writes acknowledged (file/rbd)", i, before)
		time.Sleep(time.Second)
		if !t.Run(fmt.Sprintf("gotcmu restarted after SIGKILL %d", i), func(t *testing.T) { f.start(t) }) {
			t.FailNow()
		}
	}
	f.endPair(t, file, rbd)
}

// sigterm: gotcmu stopped with SIGTERM (exit 0, drained) and restarted.
func (f *faults) sigterm(t *testing.T) {
	file, rbd := f.streamPair(t, "sigterm", 32<<20)
	time.Sleep(8 * time.Second)
	t0 := time.Now()
	logPath := f.d.logPath
	rc := f.d.stop()
	t.Run("gotcmu exits 0 on SIGTERM under load", func(t *testing.T) {
		t.Logf("status %d after %d ms", rc, time.Since(t0).Milliseconds())
		if rc != 0 {
			t.Errorf("exit status %d", rc)
		}
	})
	t.Run("gotcmu drained its devices before exiting", func(t *testing.T) {
		if b, _ := os.ReadFile(logPath); !bytes.Contains(b, []byte(`"drained":true`)) {
			t.Errorf(`%s has no "drained":true`, logPath)
		}
	})
	time.Sleep(time.Second)
	if !t.Run("gotcmu restarted", func(t *testing.T) { f.start(t) }) {
		t.FailNow()
	}
	f.endPair(t, file, rbd)
}

// microCeph runs test/micro-ceph.sh ARG on the one-OSD cluster.
func (f *faults) microCeph(t *testing.T, arg string) {
	cmd := exec.Command(filepath.Join(f.repo, "test/micro-ceph.sh"), arg, cephDir)
	cmd.Env = append(os.Environ(), "CEPH_CONF="+cephDir+"/ceph.conf")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("micro-ceph.sh %s: %v: %s", arg, err, out)
	}
}

// osdRestart: the OSD stopped and started again under the rbd stream.
func (f *faults) osdRestart(t *testing.T) {
	f.needRBD(t)
	s := startStream(t, f.env, "osd-restart", f.rbdDev, region(64<<20, 16)...)
	time.Sleep(6 * time.Second)
	t0 := time.Now()
	t.Run("OSD stopped", func(t *testing.T) { f.microCeph(t, "stop-osd") })
	t.Run("OSD started again", func(t *testing.T) { f.microCeph(t, "start-osd") })
	logf("OSD down and up again in %.0f s", time.Since(t0).Seconds())
	m := s.acked()
	s.recovered(m, 3*time.Minute)
	s.end(t, m)
}

// busy is how many commands gotcmu answered BUSY on rbd0 so far.
func busy(t *testing.T) float64 {
	text, err := fetch(metrics)
	if err != nil {
		t.Fatalf("gotcmu's metrics: %v", err)
	}
	return MetricSum(text, "gotcmu_status_total", map[string]string{"device": "rbd0", "status": "busy"})
}

// osdTimeout: the OSD stopped for longer than osd_op_timeout: commands
// answered BUSY (ETIMEDOUT's mapping), I/O recovers after.
func (f *faults) osdTimeout(t *testing.T) {
	f.needRBD(t)
	busy0 := busy(t)
	s := startStream(t, f.env, "osd-timeout", f.rbdDev, region(96<<20, 16)...)
	time.Sleep(6 * time.Second)
	t.Run("OSD stopped", func(t *testing.T) { f.microCeph(t, "stop-osd") })
	time.Sleep(25 * time.Second)
	t.Run("commands answered BUSY while the OSD was down", func(t *testing.T) {
		n := busy(t) - busy0
		f.fig.add("osd-timeout: commands answered BUSY while the OSD was down: %.0f", n)
		if n <= 0 {
			t.Errorf("gotcmu_status_total{device=rbd0,status=busy} did not grow (%.0f)", busy0)
		}
	})
	t.Run("OSD started again", func(t *testing.T) { f.microCeph(t, "start-osd") })
	m := s.acked()
	s.recovered(m, 3*time.Minute)
	s.end(t, m)
	f.running(t)
}
