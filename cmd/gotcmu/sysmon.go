package main

import (
	"os"
	"strings"
	"syscall"
)

// sysmonGodebug keeps the Go runtime's sysmon thread out of its deep sleep.
//
// When every P is idle, sysmon sleeps until the next system call wakes it
// (runtime.entersyscall: cgo calls count), and then watches at 20 µs
// intervals until the process is idle again. A TCMU daemon at low queue
// depth goes idle between every two IOs, and each IO makes system calls
// (the ring's event count, the doorbell, librbd's submit and poll), so
// sysmon was woken and stepped several times per IO: in the guest, one
// thread with 5.3 voluntary context switches per IO at queue depth 1,
// as many as tcmu-runner's whole process, and 11.6 per 1 MiB read.
// With schedtrace set, sysmon never deep-sleeps and idles on its 10 ms
// period (100 wake-ups a second, whatever the IO rate); the trace line
// itself comes once every 2^31 ms (24.8 days). Measured in one guest
// boot against the build without it: user:rbd 4k randread at queue depth
// 1 went from 12.1-12.5 to 6.7 context switches and from 2886-2906 to
// 2245 µs of CPU per IO (sysmon itself 0.43 switches per IO).
const sysmonGodebug = "schedtrace=2147483647"

// keepSysmonAwake re-executes the daemon with sysmonGodebug added to
// GODEBUG, unless GODEBUG already sets schedtrace (GODEBUG=schedtrace=0
// keeps the runtime's default). The process keeps its PID (systemd's main
// PID). If the executable cannot be found or exec fails, the daemon runs
// on as it is.
func keepSysmonAwake() {
	gd := os.Getenv("GODEBUG")
	if strings.Contains(gd, "schedtrace=") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	if gd != "" {
		gd += ","
	}
	env := []string{"GODEBUG=" + gd + sysmonGodebug}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	syscall.Exec(exe, os.Args, env)
}
