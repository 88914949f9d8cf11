package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/gotcmu/gotcmu/test/internal/ackstream"
	"github.com/gotcmu/gotcmu/test/internal/observe"
)

const usage = `usage: hardfaults -dev /dev/sdX -ceph DIR -micro-ceph test/micro-ceph.sh -ackwriter PATH
                  -device NAME [-metrics URL] [-out DIR] [-summary FILE] [-figures FILE]
                  [-osds 3] [-osd-op-timeout 10s] [-handler-pid PID] [FAULT...]
faults (default all, in this order): mon-sigkill osd-sigkill below-min-size osd-freeze
`

var allFaults = []string{"mon-sigkill", "osd-sigkill", "below-min-size", "osd-freeze"}

type config struct {
	dev, ackwriter, out, device, metrics string
	osds                                 int
	opTimeout                            time.Duration
	handlerPID                           int
}

func main() {
	var cfg config
	var cephDir, microCeph, summary, figures string
	fs := flag.NewFlagSet("hardfaults", flag.ContinueOnError)
	fs.StringVar(&cfg.dev, "dev", "", "the LUN's block device (a user:rbd backstore on the cluster)")
	fs.StringVar(&cephDir, "ceph", "", "the micro-ceph.sh cluster's directory")
	fs.StringVar(&microCeph, "micro-ceph", "test/micro-ceph.sh", "test/micro-ceph.sh")
	fs.StringVar(&cfg.ackwriter, "ackwriter", "ackwriter", "test/cmd/ackwriter binary")
	fs.StringVar(&cfg.device, "device", "", "the backstore's name (gotcmu's metrics label)")
	fs.StringVar(&cfg.metrics, "metrics", "http://127.0.0.1:9560/metrics", "gotcmu's metrics URL")
	fs.StringVar(&cfg.out, "out", ".", "directory for the writers' logs and outputs")
	fs.StringVar(&summary, "summary", "", "file to append PASS/FAIL lines to")
	fs.StringVar(&figures, "figures", "", "file to append FAULT lines to")
	fs.IntVar(&cfg.osds, "osds", 3, "OSDs in the cluster")
	fs.DurationVar(&cfg.opTimeout, "osd-op-timeout", 10*time.Second, "the LUN's osd_op_timeout")
	fs.IntVar(&cfg.handlerPID, "handler-pid", 0, "gotcmu's pid, checked alive after each fault (0: not checked)")
	fs.SetOutput(os.Stderr)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	faults := fs.Args()
	if len(faults) == 0 {
		faults = allFaults
	}
	for _, f := range faults {
		if !contains(allFaults, f) {
			fmt.Fprintf(os.Stderr, "hardfaults: unknown fault %q\n%s", f, usage)
			os.Exit(2)
		}
	}
	if cfg.dev == "" || cephDir == "" || cfg.device == "" || cfg.osds < 3 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	s := &suite{cfg: cfg, c: &cluster{dir: cephDir, microCeph: microCeph}, res: os.Stdout, fig: os.Stdout}
	if summary != "" {
		f, err := os.OpenFile(summary, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hardfaults: %v\n", err)
			os.Exit(2)
		}
		defer f.Close()
		s.res = io.MultiWriter(os.Stdout, f)
	}
	if figures != "" {
		f, err := os.OpenFile(figures, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hardfaults: %v\n", err)
			os.Exit(2)
		}
		defer f.Close()
		s.fig = io.MultiWriter(os.Stdout, f)
	}
	s.runAll(faults)
	if s.failed > 0 {
		os.Exit(1)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suite runs the faults and reports them.
type suite struct {
	cfg    config
	c      *cluster
	res    io.Writer // PASS/FAIL lines
	fig    io.Writer // FAULT lines
	failed int
}

func (s *suite) logf(format string, a ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func (s *suite) check(name string, ok bool, why string) bool {
	if ok {
		fmt.Fprintf(s.res, "PASS %s\n", name)
	} else {
		fmt.Fprintf(s.res, "FAIL %s: %s\n", name, why)
		s.failed++
	}
	return ok
}

func (s *suite) figure(name, format string, a ...any) {
	fmt.Fprintf(s.fig, "FAULT %s: %s\n", name, fmt.Sprintf(format, a...))
}

// fault is one fault: inject does it and undoes it, and returns when it
// ended (the OSD restarted, the OSDs thawed); after runs once the
// stream's recovery is measured.
type fault struct {
	name   string
	what   string
	inject func(r *faultRun) (time.Time, error)
	after  func(r *faultRun) error
}

// faultRun is one fault as it happens.
type faultRun struct {
	s      *suite
	st     *ackstream.Stream
	t0     time.Time // when the fault was injected
	events []string
}

// event records what happened when, relative to the fault.
func (r *faultRun) event(format string, a ...any) {
	e := fmt.Sprintf("+%.1f s %s", time.Since(r.t0).Seconds(), fmt.Sprintf(format, a...))
	r.events = append(r.events, e)
	r.s.logf("%s", e)
}

// sleepUntil sleeps until t.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// waitUp waits up to d for the map to have n OSDs up; records when.
func (r *faultRun) waitUp(n int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if up, err := r.s.c.upOSDs(); err == nil && up == n {
			r.event("the OSD map has %d of %d OSDs up", n, r.s.cfg.osds)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	r.event("the OSD map still without %d OSDs up after %v", n, d)
}

func (s *suite) faults() map[string]fault {
	osd := func(n int) string { return fmt.Sprintf("osd.%d", n) }
	kill := func(r *faultRun, names ...string) error {
		for _, n := range names {
			if err := r.s.c.signal(n, syscall.SIGKILL); err != nil {
				return err
			}
		}
		return nil
	}
	// restartOSD starts OSD n again and waits until it is up, noting both.
	restartOSD := func(r *faultRun, n int) error {
		r.event("osd.%d started again", n)
		if err := s.c.startOSD(n); err != nil {
			return err
		}
		r.event("osd.%d up", n)
		return nil
	}
	return map[string]fault{
		"osd-sigkill": {
			what: "one OSD SIGKILLed, restarted 20 s later",
			inject: func(r *faultRun) (time.Time, error) {
				if err := kill(r, osd(1)); err != nil {
					return time.Now(), err
				}
				r.event("osd.1 SIGKILLed")
				r.waitUp(s.cfg.osds-1, 30*time.Second)
				sleepUntil(r.t0.Add(20 * time.Second))
				t1 := time.Now()
				return t1, restartOSD(r, 1)
			},
		},
		"below-min-size": {
			what: "two of three OSDs SIGKILLed (pool below min_size 2) for 3 x osd_op_timeout, then one restarted, later the other",
			inject: func(r *faultRun) (time.Time, error) {
				if err := kill(r, osd(1), osd(2)); err != nil {
					return time.Now(), err
				}
				r.event("osd.1 and osd.2 SIGKILLed")
				r.waitUp(s.cfg.osds-2, 30*time.Second)
				sleepUntil(r.t0.Add(3 * s.cfg.opTimeout))
				t1 := time.Now()
				return t1, restartOSD(r, 1)
			},
			after: func(r *faultRun) error {
				return restartOSD(r, 2)
			},
		},
		"mon-sigkill": {
			what: "the only monitor SIGKILLed, restarted 20 s later",
			inject: func(r *faultRun) (time.Time, error) {
				if err := kill(r, "mon.a"); err != nil {
					return time.Now(), err
				}
				r.event("mon.a SIGKILLed")
				sleepUntil(r.t0.Add(20 * time.Second))
				t1 := time.Now()
				r.event("mon.a started again")
				if err := s.c.startMon(); err != nil {
					return t1, err
				}
				r.event("mon.a answers")
				return t1, nil
			},
		},
		"osd-freeze": {
			what: "every OSD SIGSTOPped for 2.5 x osd_op_timeout, then SIGCONTed",
			inject: func(r *faultRun) (time.Time, error) {
				var stopped []string
				defer func() {
					for _, n := range stopped {
						s.c.signal(n, syscall.SIGCONT)
					}
				}()
				for i := range s.cfg.osds {
					if err := s.c.signal(osd(i), syscall.SIGSTOP); err != nil {
						return time.Now(), err
					}
					stopped = append(stopped, osd(i))
				}
				r.event("every OSD SIGSTOPped")
				sleepUntil(r.t0.Add(s.cfg.opTimeout * 5 / 2))
				t1 := time.Now()
				for _, n := range stopped {
					if err := s.c.signal(n, syscall.SIGCONT); err != nil {
						return t1, err
					}
				}
				stopped = nil
				r.event("every OSD SIGCONTed")
				return t1, nil
			},
		},
	}
}

// runAll runs the faults one after the other, each on a region of its
// own, with the cluster clean before each.
func (s *suite) runAll(names []string) {
	all := s.faults()
	for i, n := range names {
		f := all[n]
		f.name = n
		took, st, ok := s.c.waitClean(s.cfg.osds, 180*time.Second)
		s.check(n+": the cluster is clean before the fault ("+st+")", ok, fmt.Sprintf("not after %.0f s", took.Seconds()))
		s.run(f, int64(i)*(32<<20))
	}
	took, st, ok := s.c.waitClean(s.cfg.osds, 180*time.Second)
	s.check(fmt.Sprintf("hard faults: the cluster is clean again after them (%.0f s: %s)", took.Seconds(), st), ok, "not within 180 s")
}

const (
	baseWindow    = 8 * time.Second
	speedWindow   = 5 * time.Second
	speedFraction = 0.75
	resumeWait    = 180 * time.Second
	speedWait     = 90 * time.Second
)

// run runs one fault under its own stream and reports it.
func (s *suite) run(f fault, offset int64) {
	s.logf("=== %s: %s", f.name, f.what)
	st, err := ackstream.Start(s.cfg.ackwriter, s.cfg.dev, s.cfg.out, f.name, offset, 4096, 16)
	if !s.check(f.name+": write stream started", err == nil, fmt.Sprint(err)) {
		return
	}
	ctx := context.Background()
	if !s.check(f.name+": 100 writes acknowledged before the fault", st.WaitAcked(ctx, 100, 90*time.Second),
		fmt.Sprintf("%d in 90 s", st.Acked())) {
		s.finish(f, st, time.Time{})
		return
	}
	time.Sleep(3 * time.Second)
	b0 := st.Since(time.Now())
	time.Sleep(baseWindow)
	base := ackstream.Rate(st.Snapshot(), b0, b0+baseWindow)

	before, merr := observe.StatusCounts(s.cfg.metrics, s.cfg.device)
	if merr != nil {
		s.logf("metrics: %v", merr)
	}
	sc0, scerr := readSCSICounts(s.cfg.dev)
	if scerr != nil {
		s.logf("SCSI counters: %v", scerr)
	}
	km, kerr := observe.OpenKmsg()
	if kerr != nil {
		s.logf("%v", kerr)
	}

	r := &faultRun{s: s, st: st, t0: time.Now()}
	t1, ierr := f.inject(r)
	s.check(f.name+": fault injected and undone", ierr == nil, fmt.Sprint(ierr))

	// Writes resumed: 200 more acknowledged than when the fault ended.
	mark := ackstream.AckedAt(st.Snapshot(), st.Since(t1))
	resumed := st.WaitAcked(ctx, mark+200, resumeWait)
	tr := time.Now()
	if resumed {
		tr = st.Start.Add(ackstream.FirstAt(st.Snapshot(), mark+200))
	}
	// Full speed: a window of 5 s at 3/4 of the rate before, from the end
	// of the fault on; given speedWait after the fault ended.
	var full time.Duration
	fullOK := false
	for resumed {
		full, fullOK = ackstream.FullSpeedAt(st.Snapshot(), st.Since(t1), st.Since(time.Now()), speedWindow, base, speedFraction)
		if fullOK || time.Since(t1) > speedWait {
			break
		}
		time.Sleep(time.Second)
	}
	if f.after != nil {
		if err := f.after(r); err != nil {
			s.check(f.name+": cluster restored after the fault", false, err.Error())
		}
	}
	var kl []string
	if km != nil {
		kl = km.Read()
		km.Close()
	}
	after, _ := observe.StatusCounts(s.cfg.metrics, s.cfg.device)
	var sc1 scsiCounts
	if scerr == nil {
		sc1, scerr = readSCSICounts(s.cfg.dev)
	}
	s.finish(f, st, t1)

	samples := st.Snapshot()
	from, end := st.Since(r.t0), st.Since(t1)
	g := ackstream.LongestStall(samples, from-time.Second, st.Since(tr))
	s.figure(f.name, "%s: %s; writes/s before: %.0f; longest time without an acknowledged write: %.1f s (from %+.1f s to %+.1f s of the fault); acknowledged while the fault lasted: %d",
		f.what, strings.Join(r.events, ", "), base, g.Length().Seconds(), (g.From - from).Seconds(), (g.To - from).Seconds(),
		ackstream.AckedAt(samples, end)-ackstream.AckedAt(samples, from))
	res := fmt.Sprintf("not within %.0f s of the fault's end", resumeWait.Seconds())
	if resumed {
		res = fmt.Sprintf("%.1f s after the fault's end (the first %.1f s after it)", tr.Sub(t1).Seconds(),
			(ackstream.FirstAt(samples, ackstream.AckedAt(samples, end)+1) - end).Seconds())
	}
	fs := fmt.Sprintf("not within %.0f s", speedWait.Seconds())
	if fullOK {
		fs = fmt.Sprintf("%.1f s after the fault's end (%.1f s after it began)", (full - end).Seconds(), (full - from).Seconds())
	}
	s.figure(f.name, "200 writes acknowledged again %s; full speed (%.0f%% of the rate before, over %.0f s) %s",
		res, speedFraction*100, speedWindow.Seconds(), fs)
	if scerr == nil {
		s.figure(f.name, "SCSI completions the initiator got during the fault and recovery: %s", sc1.since(sc0))
	}
	if merr == nil {
		s.figure(f.name, "gotcmu answered other than GOOD: %s", observe.StatusDelta(before, after))
	}
	if km != nil {
		show := kl
		if len(show) > 6 {
			show = append(show[:6:6], fmt.Sprintf("... %d more", len(kl)-6))
		}
		s.figure(f.name, "kernel log: %d lines%s", len(kl), prefixed(": ", strings.Join(show, " | ")))
	}
	s.check(f.name+": 200 writes acknowledged again after the fault ended", resumed, res)
	if f.name == "below-min-size" {
		// Every PG needs 2 of its 3 OSDs to take a write; from the kill
		// (give 2 s for writes already committed to be acknowledged) to
		// the restart none can be.
		n := ackstream.AckedAt(samples, end) - ackstream.AckedAt(samples, from+2*time.Second)
		s.check(fmt.Sprintf("%s: no write acknowledged with the pool below min_size (%d)", f.name, n), n == 0,
			"writes were acknowledged with one OSD of three up")
	}
	if s.cfg.handlerPID > 0 {
		s.check(f.name+": gotcmu still running", syscall.Kill(s.cfg.handlerPID, 0) == nil, "it is gone")
	}
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// finish stops the stream, verifies it and checks what the writer saw.
// t1 is when the fault ended (zero if it never began).
func (s *suite) finish(f fault, st *ackstream.Stream, t1 time.Time) {
	wr := st.Stop(60 * time.Second)
	vr := st.Verify(s.cfg.ackwriter, s.cfg.out)
	samples := st.Snapshot()
	afterFault := int64(0)
	if !t1.IsZero() {
		afterFault = st.Acked() - ackstream.AckedAt(samples, st.Since(t1))
	}
	msgs := ""
	if len(wr.Messages) > 0 {
		msgs = " (" + strings.Join(wr.Messages, "; ") + ")"
	}
	s.figure(f.name, "%s acknowledged-after-fault=%d write-errors=%d%s", vr.Line, afterFault, wr.Errors, msgs)
	s.check(f.name+": the write stream stopped on SIGTERM and exited 0", wr.Stopped && wr.ExitErr == nil,
		fmt.Sprintf("stopped=%v exit=%v (see %s)", wr.Stopped, wr.ExitErr, st.OutPath))
	s.check(fmt.Sprintf("%s: no write returned an error to the initiator (%d)", f.name, wr.Errors), wr.Errors == 0,
		strings.Join(wr.Messages, "; "))
	s.check(f.name+": every acknowledged write read back intact (lost=0)", vr.Err == nil, vr.Line)
}
