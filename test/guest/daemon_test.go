//go:build guest

package guest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// daemon is gotcmu run by the test, each start logging to a file of its
// own.
type daemon struct {
	bin  string
	args []string // GOTCMU_ARGS
	repo string   // for the D-Bus policy in systemd/

	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// start starts gotcmu, logging to logPath, run through wrap (e.g. setpriv
// and its arguments) if given; it succeeds when gotcmu is still alive two
// seconds later.
func (d *daemon) start(logPath string, wrap ...string) error {
	if err := startDBus(d.repo); err != nil {
		logf("no system D-Bus (%v); gotcmu runs without it", err)
	}
	out, err := os.Create(logPath)
	if err != nil {
		return err
	}
	argv := append(append(append([]string(nil), wrap...), d.bin), d.args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.logPath = logPath
	if err := d.cmd.Start(); err != nil {
		out.Close()
		d.cmd = nil
		return err
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		d.waitErr = cmd.Wait()
		out.Close()
		close(exited)
	}(d.cmd, d.exited)
	time.Sleep(2 * time.Second)
	if !d.alive() {
		return fmt.Errorf("%s exited within 2 s (%v); its log: %s", strings.Join(argv, " "), d.waitErr, tail(logPath, 5))
	}
	return nil
}

// alive reports whether the gotcmu last started runs.
func (d *daemon) alive() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// pid is the running gotcmu's pid, 0 if none.
func (d *daemon) pid() int {
	if !d.alive() {
		return 0
	}
	return d.cmd.Process.Pid
}

func (d *daemon) signal(sig syscall.Signal) {
	if d.alive() {
		d.cmd.Process.Signal(sig)
	}
}

// kill SIGKILLs gotcmu and reaps it.
func (d *daemon) kill() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
}

// stop sends SIGTERM and waits up to 20 s; it returns gotcmu's exit
// status, 124 when it hung (and was then SIGKILLed), 0 if none ran.
func (d *daemon) stop() int {
	if d.cmd == nil {
		return 0
	}
	d.cmd.Process.Signal(syscall.SIGCONT)
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.kill()
		return 124
	}
	d.cmd = nil
	return exitStatus(d.waitErr)
}

// exitStatus is the shell's $? for a process's Wait error: 128+n when
// killed by signal n.
func exitStatus(err error) int {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err != nil {
			return -1
		}
		return 0
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}

// startDBus starts a system bus, with the D-Bus policy files the project
// ships in systemd/ (the <busconfig> ones), unless one runs.
func startDBus(repo string) error {
	if exists("/run/dbus/system_bus_socket") {
		return nil
	}
	if err := os.MkdirAll("/etc/dbus-1/system.d", 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll("/run/dbus", 0o755); err != nil {
		return err
	}
	confs, _ := filepath.Glob(filepath.Join(repo, "systemd/*.conf"))
	for _, c := range confs {
		b, err := os.ReadFile(c)
		if err == nil && strings.Contains(string(b), "<busconfig") {
			if err := os.WriteFile(filepath.Join("/etc/dbus-1/system.d", filepath.Base(c)), b, 0o644); err != nil {
				return err
			}
		}
	}
	if out, err := exec.Command("dbus-daemon", "--system", "--fork", "--nopidfile").CombinedOutput(); err != nil {
		return fmt.Errorf("dbus-daemon: %v: %s", err, out)
	}
	return nil
}

// tail is the last n lines of a file, on one line.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
