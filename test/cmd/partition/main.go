package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gotcmu/gotcmu/test/internal/ackstream"
	"github.com/gotcmu/gotcmu/test/internal/observe"
)

const usage = `usage: partition -map MPATH -path-a sdX -ackwriter PATH -peer URL -share DIR -log FILE
                 -metrics-a URL -metrics-b URL -addr-a IP -addr-b IP -image POOL/IMAGE
                 [-device NAME] [-out DIR] [-summary FILE] [-figures FILE]
                 [-baseline 30s] [-cut 75s] [-hold-down 30s] [-after 150s]
`

type config struct {
	mpath, dm, pathA, ackwriter, peerURL, share, logB string
	metricsA, metricsB, addrA, addrB, image           string
	device, out                                       string
	baseline, cutFor, holdDown, after                 time.Duration
}

func main() {
	var cfg config
	var summary, figures string
	fs := flag.NewFlagSet("partition", flag.ContinueOnError)
	fs.StringVar(&cfg.mpath, "map", "", "the multipath map (its name under /dev/mapper)")
	fs.StringVar(&cfg.dm, "dm", "", "the map's block device (dm-N); default: where /dev/mapper/MAP links to, which udev may not have made yet")
	fs.StringVar(&cfg.pathA, "path-a", "", "the map's path through gateway A (sdX)")
	fs.StringVar(&cfg.ackwriter, "ackwriter", "ackwriter", "test/cmd/ackwriter binary")
	fs.StringVar(&cfg.peerURL, "peer", "", "guest a's share (http://10.99.0.1:8080)")
	fs.StringVar(&cfg.share, "share", "", "this guest's share directory (flags for a)")
	fs.StringVar(&cfg.logB, "log", "", "gateway B's gotcmu log")
	fs.StringVar(&cfg.metricsA, "metrics-a", "", "gateway A's metrics URL")
	fs.StringVar(&cfg.metricsB, "metrics-b", "", "gateway B's metrics URL")
	fs.StringVar(&cfg.addrA, "addr-a", "", "gateway A's client address as Ceph sees it")
	fs.StringVar(&cfg.addrB, "addr-b", "", "gateway B's client address as Ceph sees it")
	fs.StringVar(&cfg.image, "image", "", "the RBD image, pool/name")
	fs.StringVar(&cfg.device, "device", "part", "the backstore's name (gotcmu's metrics label)")
	fs.StringVar(&cfg.out, "out", ".", "directory for the writer's log and the records")
	fs.StringVar(&summary, "summary", "", "file to append PASS/FAIL lines to")
	fs.StringVar(&figures, "figures", "", "file to append PARTITION lines to")
	fs.DurationVar(&cfg.baseline, "baseline", 30*time.Second, "writes through A before the cut")
	fs.DurationVar(&cfg.cutFor, "cut", 75*time.Second, "how long A stays cut off")
	fs.DurationVar(&cfg.holdDown, "hold-down", 30*time.Second, "gotcmu's hold-down (lockgate.DefaultHoldDown)")
	fs.DurationVar(&cfg.after, "after", 150*time.Second, "how long the load runs after the restore")
	fs.SetOutput(os.Stderr)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	for _, v := range []string{cfg.mpath, cfg.pathA, cfg.peerURL, cfg.share, cfg.logB, cfg.metricsA, cfg.metricsB, cfg.addrA, cfg.addrB, cfg.image} {
		if v == "" {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
	}
	r := &run{cfg: cfg, peer: newPeer(cfg.peerURL, cfg.share)}
	var err error
	if r.res, err = appendTo(summary); err == nil {
		r.fig, err = appendTo(figures)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "partition: %v\n", err)
		os.Exit(2)
	}
	r.scenario()
	if r.failed > 0 {
		os.Exit(1)
	}
}

// appendTo returns stdout, and the file at path (appended to) as well
// unless path is empty.
func appendTo(path string) (io.Writer, error) {
	if path == "" {
		return os.Stdout, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return io.MultiWriter(os.Stdout, f), nil
}

// run is one partition scenario.
type run struct {
	cfg      config
	peer     *peer
	res, fig io.Writer
	failed   int

	dm, pathB string
	st        *ackstream.Stream
	tCut      time.Time // when b asked for the cut (b's clock)
	// skew is a's clock minus b's, from the cut and restore handshakes
	// (to about a second: a polls for flags every second).
	skew time.Duration

	mu     sync.Mutex
	record []string // kernel log lines and path states, with times since the cut
}

func (r *run) logf(format string, a ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

// check prints PASS or FAIL name; why says what was seen when it fails.
func (r *run) check(name string, ok bool, why string) bool {
	line := "PASS " + name
	if !ok {
		line = "FAIL " + name + ": " + why
		r.failed++
	}
	fmt.Fprintln(r.res, line)
	return ok
}

func (r *run) figure(format string, a ...any) {
	fmt.Fprintf(r.fig, "PARTITION %s\n", fmt.Sprintf(format, a...))
}

// rel is t relative to the cut, for figures.
func (r *run) rel(t time.Time) string {
	if r.tCut.IsZero() {
		return "before the cut"
	}
	return fmt.Sprintf("%+.1f s", t.Sub(r.tCut).Seconds())
}

// relA is a time on a's clock relative to the cut.
func (r *run) relA(t time.Time) string { return r.rel(t.Add(-r.skew)) }

// note adds a line to the record (kept in out/record.txt).
func (r *run) note(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record = append(r.record, fmt.Sprintf("%s %s", r.rel(time.Now()), fmt.Sprintf(format, a...)))
}

// follow records the initiator's kernel log and multipath's path states
// (when they change) until ctx ends.
func (r *run) follow(ctx context.Context, km *observe.Kmsg) {
	last := ""
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if km != nil {
			for _, l := range km.Read() {
				r.note("kernel: %s", l)
			}
		}
		out, err := command(20*time.Second, "multipathd", "show", "paths", "format", "%d %t %T")
		if err == nil {
			m := pathStates(out)
			s := fmt.Sprintf("path A %s %s, path B %s %s", r.cfg.pathA, m[r.cfg.pathA], r.pathB, m[r.pathB])
			if s != last {
				r.note("multipath: %s", s)
				last = s
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// lock returns which gateway holds the image's lock now.
func (r *run) lock() string {
	out, err := command(60*time.Second, "rbd", "lock", "ls", r.cfg.image, "--format", "json")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return lockHolder(out, r.cfg.addrA, r.cfg.addrB)
}

// logA and logB are the gateways' gotcmu logs now.
func (r *run) logA() []logEvent {
	b, err := r.peer.get("gotcmu.log")
	if err != nil {
		r.logf("gateway A's log: %v", err)
	}
	return parseLog(string(b))
}

func (r *run) logB() []logEvent {
	b, _ := os.ReadFile(r.cfg.logB)
	return parseLog(string(b))
}

// waitFor polls cond every second for up to d; true once it holds.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Second)
	}
}

// Measures of speed, as hardfaults takes them.
const (
	speedWindow   = 5 * time.Second
	speedFraction = 0.75
	// maxStall bounds the stall at the failover: cmd_time_out (20 s) or
	// the initiator's SCSI timeout (30 s) on A's path, then B taking the
	// lock (breaking A's needs osd_op_timeout at most twice, 10 s each).
	maxStall = 90 * time.Second
)

func (r *run) scenario() {
	cfg := r.cfg
	dev := "/dev/mapper/" + cfg.mpath
	r.dm = cfg.dm
	var err error
	if r.dm == "" {
		var dm string
		dm, err = filepath.EvalSymlinks(dev)
		r.dm = filepath.Base(dm)
	}
	if err == nil {
		r.pathB, err = otherSlave(r.dm, cfg.pathA)
	}
	if !r.check("the multipath device and its two paths", err == nil, fmt.Sprint(err)) {
		return
	}
	// Start on A's path group (active/optimized): dm-multipath builds the
	// map from whichever path appeared first.
	topo, _ := command(20*time.Second, "multipathd", "show", "topology")
	groupA := groupOf(topo, cfg.pathA)
	if _, err := command(20*time.Second, "multipathd", "switchgroup", "map", cfg.mpath, "group", fmt.Sprint(groupA)); err != nil {
		r.logf("switchgroup to A's group %d: %v", groupA, err)
	}
	km, err := observe.OpenKmsg()
	if err != nil {
		r.logf("kernel log: %v", err)
	}
	followCtx, stopFollow := context.WithCancel(context.Background())
	var followDone sync.WaitGroup
	followDone.Add(1)
	go func() { defer followDone.Done(); r.follow(followCtx, km) }()
	beforeA, _ := observe.StatusCounts(cfg.metricsA, cfg.device)
	beforeB, _ := observe.StatusCounts(cfg.metricsB, cfg.device)

	// 4096 blocks of 4 KiB: 16 MiB at random, 8 writes in flight; the
	// verify reads them back one at a time through iSCSI.
	ackstream.VerifyTimeout = 10 * time.Minute
	r.st, err = ackstream.Start(cfg.ackwriter, dev, cfg.out, "partition", 0, 4096, 8)
	if !r.check("write stream started", err == nil, fmt.Sprint(err)) {
		stopFollow()
		return
	}
	st := r.st
	ctx := context.Background()
	if !r.check("100 writes acknowledged before the cut", st.WaitAcked(ctx, 100, 120*time.Second), fmt.Sprintf("%d in 120 s", st.Acked())) {
		r.end(stopFollow, &followDone, beforeA, beforeB)
		return
	}
	onA0, _ := diskWrites(cfg.pathA)
	onB0, _ := diskWrites(r.pathB)
	b0 := time.Now()
	time.Sleep(cfg.baseline)
	onA1, _ := diskWrites(cfg.pathA)
	onB1, _ := diskWrites(r.pathB)
	base := ackstream.Rate(st.Snapshot(), st.Since(b0), st.Since(time.Now()))
	r.check(fmt.Sprintf("before the cut the writes go through A's path (%d on %s, %d on %s)", onA1-onA0, cfg.pathA, onB1-onB0, r.pathB),
		onA1 > onA0 && onB1 == onB0, "expected all on A's")
	holder := r.lock()
	r.check("before the cut A holds the lock ("+holder+")", holder == "A", "rbd lock ls says "+holder)

	// The cut.
	r.mu.Lock() // note reads it from follow's goroutine
	r.tCut = time.Now()
	r.mu.Unlock()
	markCut := st.Acked()
	r.note("cut asked")
	if err := r.peer.say("cut", ""); err != nil {
		r.check("cut asked", false, err.Error())
	}
	aCutS, err := r.peer.await("a-cut", 60*time.Second)
	heardCut := time.Now()
	aCut, perr := unixTime(aCutS)
	if !r.check("A cut off from the cluster", err == nil && perr == nil, fmt.Sprint(err, perr)) {
		r.end(stopFollow, &followDone, beforeA, beforeB)
		return
	}
	r.skew = aCut.Sub(r.tCut.Add(heardCut.Sub(r.tCut) / 2))
	resumed := st.WaitAcked(ctx, markCut+200, 4*time.Minute)
	samples := st.Snapshot()
	tResumed := st.Start.Add(ackstream.FirstAt(samples, markCut+200))
	r.check("writes resumed after the cut (200 acknowledged)", resumed, fmt.Sprintf("%d in 4 min", st.Acked()-markCut))
	g := ackstream.LongestStall(samples, st.Since(r.tCut)-time.Second, st.Since(tResumed))
	r.figure("cut: longest time without an acknowledged write %.1f s (from %s to %s); 200 writes acknowledged again at %s",
		g.Length().Seconds(), r.rel(st.Start.Add(g.From)), r.rel(st.Start.Add(g.To)), r.rel(tResumed))
	r.check(fmt.Sprintf("writes stalled %.1f s at the failover, at most %v", g.Length().Seconds(), maxStall), resumed && g.Length() <= maxStall, "too long")
	var tookB []logEvent
	waitFor(2*time.Minute, func() bool { tookB = events(r.logB(), msgTook, r.tCut); return len(tookB) > 0 })
	if r.check("B took the lock after the cut", len(tookB) > 0, "no 'took exclusive lock' in B's log within 2 min") {
		r.figure("B took the lock at %s (log time, whole seconds)", r.rel(tookB[0].Time))
	}
	time.Sleep(time.Until(r.tCut.Add(cfg.cutFor)))
	onB2, _ := diskWrites(r.pathB)
	r.check(fmt.Sprintf("during the cut writes go through B's path (%d)", onB2-onB1), onB2 > onB1, "none")
	holder = r.lock()
	r.check("during the cut B holds the lock ("+holder+")", holder == "B", "rbd lock ls says "+holder)
	tpg, _ := r.peer.get("tpg.txt")
	if off, _ := tpgChanges(parseTPGSamples(string(tpg)), aCut); r.check("A's TPG went offline during the cut", !off.IsZero(), "its enable attribute stayed 1") {
		r.figure("A's TPG offline at %s", r.relA(off))
	}
	bl, _ := command(60*time.Second, "ceph", "osd", "blocklist", "ls")
	r.check("A's client is on the OSD blocklist", strings.Contains(bl, cfg.addrA+":"), strings.TrimSpace(bl))
	samples = st.Snapshot()
	if full, ok := ackstream.FullSpeedAt(samples, st.Since(tResumed), st.Since(time.Now()), speedWindow, base, speedFraction); ok {
		r.figure("cut: full speed (%.0f%% of %.0f writes/s before the cut, over %.0f s) again at %s", 100*speedFraction, base, speedWindow.Seconds(), r.rel(st.Start.Add(full)))
	} else {
		r.figure("cut: not back to full speed (%.0f%% of %.0f writes/s) before the restore; %.0f writes/s over the last 20 s of the cut",
			100*speedFraction, base, ackstream.Rate(samples, st.Since(time.Now())-20*time.Second, st.Since(time.Now())))
	}

	// The restore.
	tRestore := time.Now()
	r.note("restore asked")
	if err := r.peer.say("restore", ""); err != nil {
		r.check("restore asked", false, err.Error())
	}
	aRestS, err := r.peer.await("a-restored", 60*time.Second)
	aRest, perr := unixTime(aRestS)
	if !r.check("A's network to the cluster restored", err == nil && perr == nil, fmt.Sprint(err, perr)) {
		r.end(stopFollow, &followDone, beforeA, beforeB)
		return
	}
	r.figure("restore asked at %s, done on A at %s", r.rel(tRestore), r.relA(aRest))
	// A is back on the cluster once its gate reopened the image with a
	// fresh client: after the lost connection (its held writes failed
	// once its old client was fenced) or after finding its lock lost
	// (ESHUTDOWN, B broke it).
	var back logEvent
	ok := waitFor(3*time.Minute, func() bool {
		var found bool
		back, found = first(r.logA(), aRest, msgReconnected, msgReopened)
		return found
	})
	if !r.check("A reopened the image with a fresh client after the restore", ok, "neither '"+msgReconnected+"' nor '"+msgReopened+"' in A's log within 3 min") {
		r.end(stopFollow, &followDone, beforeA, beforeB)
		return
	}
	aBack := back.Time
	r.figure("A back on the cluster at %s: %q (its log, whole seconds)", r.relA(aBack), back.Message)
	// Its hold-down starts when it learns that B took the lock.
	holdStart := aBack
	if e, ok := first(r.logA(), aCut, msgLockLost, msgTakenAway); r.check("A logged that B took its lock and held down", ok, "no hold-down in A's log") {
		holdStart = e.Time
		r.figure("A's hold-down from %s: %q", r.relA(e.Time), e.Message)
	}
	pathBack := waitFor(3*time.Minute, func() bool {
		out, _ := command(20*time.Second, "multipathd", "show", "paths", "format", "%d %t %T")
		return pathStates(out)[cfg.pathA] == "active/ready"
	})
	tPathBack := time.Now()
	r.check("A's path back in the map (active/ready)", pathBack, "not within 3 min")
	r.figure("A's path active/ready again at %s", r.rel(tPathBack))
	// A's path can look active/ready while its gate still recovers (the
	// TPG goes offline when its writes held during the cut fail, after
	// the restore): give it a minute.
	online := waitFor(time.Minute, func() bool {
		tpg, _ = r.peer.get("tpg.txt")
		ts := parseTPGSamples(string(tpg))
		return len(ts) > 0 && ts[len(ts)-1].enabled && ts[len(ts)-1].at.After(aRest)
	})
	r.check("A's TPG online within a minute of A's path being back", online, "its enable attribute is still 0")
	r.tpgFigure(aCut)

	// The hold-down, probed: send the writes to A's path group now.
	holdEnd := holdStart.Add(cfg.holdDown) // a's clock
	tProbe := time.Now()
	if _, err := command(20*time.Second, "multipathd", "switchgroup", "map", cfg.mpath, "group", fmt.Sprint(groupA)); err != nil {
		r.logf("switchgroup to A's group: %v", err)
	}
	r.note("switched the map to A's path group %d", groupA)
	left := holdEnd.Add(-r.skew).Sub(tProbe)
	r.check(fmt.Sprintf("writes sent to A inside its hold-down (%.1f s of it left)", left.Seconds()), left >= 5*time.Second,
		"A's path came back too late to probe the hold-down")
	onAp0, _ := diskWrites(cfg.pathA)
	time.Sleep(time.Until(holdEnd.Add(-r.skew).Add(-3 * time.Second)))
	holder = r.lock()
	onAp1, _ := diskWrites(cfg.pathA)
	r.figure("hold-down probe: %d writes completed on A's path from the switch to 3 s before the hold-down's end; the lock then with %s", onAp1-onAp0, holder)
	r.check("3 s before A's hold-down ends B still holds the lock ("+holder+")", holder == "B", "rbd lock ls says "+holder)
	tookA := events(r.logA(), msgTook, aRest)
	early := 0
	for _, e := range tookA {
		// Whole seconds: an acquisition logged in the second before the
		// hold-down's end may be at its end.
		if e.Time.Before(holdEnd.Add(-time.Second)) {
			early++
		}
	}
	r.check(fmt.Sprintf("A took the lock back %d times inside its hold-down (%s to %s)", early, r.relA(holdStart), r.relA(holdEnd)), early == 0,
		"A took the lock back before its hold-down ended")

	// The rest: dm-multipath fails back to A 60 s after its path is back.
	time.Sleep(time.Until(tRestore.Add(cfg.after)))
	r.end(stopFollow, &followDone, beforeA, beforeB)
	samples = st.Snapshot()
	g = ackstream.LongestStall(samples, st.Since(tRestore), st.Since(tRestore.Add(cfg.after)))
	r.figure("after the restore: longest time without an acknowledged write %.1f s (from %s to %s)",
		g.Length().Seconds(), r.rel(st.Start.Add(g.From)), r.rel(st.Start.Add(g.To)))
	for _, e := range events(r.logA(), msgTook, r.tCut) {
		r.figure("A took the lock at %s (log time)", r.relA(e.Time))
	}
	for _, e := range events(r.logB(), msgTook, r.tCut) {
		r.figure("B took the lock at %s (log time)", r.rel(e.Time))
	}
	r.figure("at the end the lock is with %s", r.lock())
	r.tpgFigure(aCut)
}

// tpgFigure reports when A's TPG went offline after from (a's clock) and
// came back.
func (r *run) tpgFigure(from time.Time) {
	b, _ := r.peer.get("tpg.txt")
	off, on := tpgChanges(parseTPGSamples(string(b)), from)
	switch {
	case off.IsZero():
		r.figure("A's TPG never offline since the cut")
	case on.IsZero():
		r.figure("A's TPG offline from %s, still offline", r.relA(off))
	default:
		r.figure("A's TPG offline from %s, online again at %s", r.relA(off), r.relA(on))
	}
}

// end stops the stream and the recorder, verifies, and reports what the
// initiator saw and what the gateways answered.
func (r *run) end(stopFollow context.CancelFunc, followDone *sync.WaitGroup, beforeA, beforeB map[string]float64) {
	cfg := r.cfg
	wr := r.st.Stop(60 * time.Second)
	vr := r.st.Verify(cfg.ackwriter, cfg.out)
	stopFollow()
	followDone.Wait()
	r.figure("ackwriter: %s write-errors=%d%s", vr.Line, wr.Errors, parenthesized(strings.Join(wr.Messages, "; ")))
	r.check("the write stream stopped on SIGTERM and exited 0", wr.Stopped && wr.ExitErr == nil,
		fmt.Sprintf("stopped=%v exit=%v (see %s)", wr.Stopped, wr.ExitErr, r.st.OutPath))
	r.check(fmt.Sprintf("no write returned an error to the initiator's application (%d)", wr.Errors), wr.Errors == 0, strings.Join(wr.Messages, "; "))
	r.check("every acknowledged write read back intact (lost=0)", vr.Err == nil, vr.Line)
	afterA, errA := observe.StatusCounts(cfg.metricsA, cfg.device)
	afterB, errB := observe.StatusCounts(cfg.metricsB, cfg.device)
	if errA == nil {
		r.figure("gateway A answered other than GOOD: %s", observe.StatusDelta(beforeA, afterA))
	}
	if errB == nil {
		r.figure("gateway B answered other than GOOD: %s", observe.StatusDelta(beforeB, afterB))
	}
	r.mu.Lock()
	rec := strings.Join(r.record, "\n") + "\n"
	r.mu.Unlock()
	os.WriteFile(filepath.Join(cfg.out, "record.txt"), []byte(rec), 0o644)
	r.figure("initiator: %s", kernelSummary(r.record))
	for _, m := range []string{msgFenced, msgConnLost, msgEscalated, msgLockLost, msgTakenAway, msgReconnected, msgReopened} {
		if ev := events(r.logA(), m, r.tCut); len(ev) > 0 {
			r.figure("A's log: %q %d times, first at %s", m, len(ev), r.relA(ev[0].Time))
		}
	}
}

func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// kernelSummary counts the initiator's kernel log lines of the record by
// what they say, and the multipath path state changes.
func kernelSummary(record []string) string {
	kinds := []struct{ name, sub string }{
		{"path failed", "failing path"},
		{"path reinstated", "reinstating path"},
		{"command timed out", "timing out command"},
		{"connection errors", "detected conn error"},
		{"session recovery timed out", "session recovery timed out"},
		{"standby sense", "standby"},
		{"unavailable sense", "unavailable"},
		{"I/O errors", "I/O error"},
	}
	counts := map[string]int{}
	paths := 0
	for _, l := range record {
		if strings.Contains(l, " multipath: path A ") {
			paths++
			continue
		}
		for _, k := range kinds {
			if strings.Contains(strings.ToLower(l), k.sub) {
				counts[k.name]++
			}
		}
	}
	var parts []string
	for _, k := range kinds {
		if counts[k.name] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k.name, counts[k.name]))
		}
	}
	parts = append(parts, fmt.Sprintf("path state changes %d (record.txt)", paths))
	return strings.Join(parts, ", ")
}
