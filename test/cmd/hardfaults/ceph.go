package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cluster drives a test/micro-ceph.sh cluster: its daemons' pid files, its
// start commands and the ceph CLI.
type cluster struct {
	dir       string // micro-ceph.sh's DIR
	microCeph string // path of test/micro-ceph.sh
}

func (c *cluster) conf() string { return filepath.Join(c.dir, "ceph.conf") }

// ceph runs the ceph CLI, bounded: with the monitor gone it would wait.
func (c *cluster) ceph(d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	args = append([]string{"-c", c.conf(), "--connect-timeout", strconv.Itoa(int(d.Seconds()))}, args...)
	out, err := exec.CommandContext(ctx, "ceph", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ceph %s: %w: %s", strings.Join(args[4:], " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// run runs `micro-ceph.sh CMD DIR ARGS...`, bounded by d.
func (c *cluster) run(d time.Duration, cmd string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	x := exec.CommandContext(ctx, c.microCeph, append([]string{cmd, c.dir}, args...)...)
	x.Env = append(os.Environ(), "CEPH_CONF="+c.conf())
	if out, err := x.CombinedOutput(); err != nil {
		return fmt.Errorf("micro-ceph.sh %s %s: %w: %s", cmd, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *cluster) startOSD(n int) error { return c.run(180*time.Second, "start-osd", strconv.Itoa(n)) }
func (c *cluster) startMon() error      { return c.run(90*time.Second, "start-mon") }

// pid returns the pid a daemon (osd.N, mon.a) wrote to its pid file.
func (c *cluster) pid(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "run", name+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// signal sends sig to a daemon; for SIGKILL it also waits until the
// process is gone (reaped by init: the daemons are not our children).
func (c *cluster) signal(name string, sig syscall.Signal) error {
	pid, err := c.pid(name)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("kill -%d %s (pid %d): %w", sig, name, pid, err)
	}
	if sig != syscall.SIGKILL {
		return nil
	}
	for range 100 {
		if gone(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s (pid %d) still there 10 s after SIGKILL", name, pid)
}

// gone reports whether pid has exited: no such process, or a zombie
// (its parent, not this program, reaps it).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

// upOSDs returns how many OSDs the map has up.
func (c *cluster) upOSDs() (int, error) {
	out, err := c.ceph(10*time.Second, "osd", "stat", "-f", "json")
	if err != nil {
		return 0, err
	}
	var st struct {
		Up int `json:"num_up_osds"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return 0, fmt.Errorf("ceph osd stat: %w", err)
	}
	return st.Up, nil
}

var rePGStat = regexp.MustCompile(`(\d+) pgs: (\d+) active\+clean;`)

// clean reports whether every PG is active+clean, with `ceph pg stat`.
func (c *cluster) clean() (bool, string) {
	out, err := c.ceph(10*time.Second, "pg", "stat")
	if err != nil {
		return false, err.Error()
	}
	m := rePGStat.FindStringSubmatch(out)
	return m != nil && m[1] == m[2], strings.TrimSpace(out)
}

// waitClean waits up to d for every OSD up and every PG active+clean.
func (c *cluster) waitClean(osds int, d time.Duration) (time.Duration, string, bool) {
	t0 := time.Now()
	last := ""
	for time.Since(t0) < d {
		up, err := c.upOSDs()
		if err == nil && up == osds {
			ok, st := c.clean()
			if ok {
				return time.Since(t0), st, true
			}
			last = st
		} else if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d of %d OSDs up", up, osds)
		}
		time.Sleep(time.Second)
	}
	return time.Since(t0), last, false
}
