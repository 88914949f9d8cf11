package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Usage is what FILE holds.
type Usage struct {
	UtimeUs  int64 `json:"utime_us"`
	StimeUs  int64 `json:"stime_us"`
	Nvcsw    int64 `json:"nvcsw"`
	Nivcsw   int64 `json:"nivcsw"`
	MaxRSSKB int64 `json:"maxrss_kb"`
	StartUs  int64 `json:"start_us"` // Unix time the command was started
	WallUs   int64 `json:"wall_us"`
	Exit     int   `json:"exit"`
}

// fromRusage converts the kernel's struct rusage (ru_maxrss is in KiB on Linux).
func fromRusage(ru *syscall.Rusage, start time.Time, wall time.Duration, exit int) Usage {
	return Usage{
		StartUs:  start.UnixMicro(),
		UtimeUs:  ru.Utime.Sec*1e6 + int64(ru.Utime.Usec),
		StimeUs:  ru.Stime.Sec*1e6 + int64(ru.Stime.Usec),
		Nvcsw:    ru.Nvcsw,
		Nivcsw:   ru.Nivcsw,
		MaxRSSKB: ru.Maxrss,
		WallUs:   wall.Microseconds(),
		Exit:     exit,
	}
}

// exitCode is the shell's view of how the command ended.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("rusage", flag.ContinueOnError)
	fl.SetOutput(stderr)
	out := fl.String("o", "", "write the JSON to this `file` (required)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: rusage -o FILE [--] COMMAND [ARG...]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fl.NArg() == 0 {
		fl.Usage()
		return 2
	}
	c := exec.Command(fl.Arg(0), fl.Args()[1:]...)
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	start := time.Now()
	if err := c.Start(); err != nil {
		fmt.Fprintf(stderr, "rusage: %v\n", err)
		return 2
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				c.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := c.Wait()
	wall := time.Since(start)
	close(done)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintf(stderr, "rusage: %v\n", err)
		return 2
	}
	ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		fmt.Fprintln(stderr, "rusage: no rusage from wait4")
		return 2
	}
	code := exitCode(c.ProcessState)
	b, _ := json.Marshal(fromRusage(ru, start, wall, code))
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		fmt.Fprintf(stderr, "rusage: %v\n", err)
		return 2
	}
	return code
}
