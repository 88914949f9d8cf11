//go:build !nautilus

package rbd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
)

// pauseOSDs sets the cluster's pause flags (pauserd, pausewr): clients
// hold every operation and time it out, as they would with OSDs that do
// not answer. The returned function clears them; the test's cleanup does
// too.
//
// SIGSTOP of the micro cluster's only OSD would freeze it the same way,
// but that OSD does not come back from a freeze during which the OSD map
// changed (as it does when gotcmu blocklists its client): its placement
// group stays "laggy" and holds every operation "waiting for readable"
// for as long as was watched, 9 minutes, with Ceph 16.2.15. A cluster
// with more than one OSD marks a frozen OSD down instead.
func pauseOSDs(t *testing.T, admin *rados.Conn) (unpause func()) {
	t.Helper()
	if err := monCommand(admin, map[string]any{"prefix": "osd pause"}, nil); err != nil {
		t.Fatalf("osd pause: %v", err)
	}
	var once sync.Once
	unpause = func() {
		once.Do(func() {
			if err := monCommand(admin, map[string]any{"prefix": "osd unpause"}, nil); err != nil {
				t.Errorf("osd unpause: %v", err)
			}
		})
	}
	t.Cleanup(unpause)
	return unpause
}

// stopDaemon stops the micro cluster's daemon name (mon.a, osd.0) with
// SIGSTOP and returns the function that continues it; the test's cleanup
// continues it too.
func stopDaemon(t *testing.T, name string) (cont func()) {
	t.Helper()
	if cluster.dir == "" {
		t.Skip("CEPH_CONF names a cluster not started by test/micro-ceph.sh: cannot stop its daemons")
	}
	b, err := os.ReadFile(filepath.Join(cluster.dir, "run", name+".pid"))
	if err != nil {
		t.Fatalf("read the pid of %s: %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("parse the pid of %s %q: %v", name, b, err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s (pid %d): %v", name, pid, err)
	}
	var once sync.Once
	cont = func() {
		once.Do(func() {
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT %s (pid %d): %v", name, pid, err)
			}
		})
	}
	t.Cleanup(cont)
	return cont
}

// TestStaleWriteFenced (issue 12 point 2): writes in flight while the OSDs
// do not answer are failed back once gotcmu gives up on them — and only
// after gotcmu's own client is on the OSD blocklist, so that they can
// never land afterwards. The retry writes different data through the same
// device, which serves it through a fresh client once the OSDs are back;
// the image holds the retry everywhere, never the stale data, also a
// while after the OSDs resumed.
func TestStaleWriteFenced(t *testing.T) { staleWrite(t, 0) }

// TestStaleWriteHeldWhileMonitorsSilent: when the monitors do not answer
// either, gotcmu cannot fence its client, so it must not answer the
// writes that may still land: they stay unanswered while the monitor is
// stopped (SIGSTOP), and are answered, fenced, once it answers again.
func TestStaleWriteHeldWhileMonitorsSilent(t *testing.T) { staleWrite(t, 10*time.Second) }

// staleWrite runs the stale-write scenario; with monSilence > 0 the only
// monitor is stopped from just before the writes until monSilence after
// gotcmu gave up on them.
func staleWrite(t *testing.T, monSilence time.Duration) {
	admin := needCeph(t)
	const (
		size    = 2 * failoverObject
		slotLen = 4096
		slots   = 16 // A's writes, all in object 0: one PG, one OSD queue
		region  = slots * slotLen
		timeout = 7 * time.Second // the shortest the micro cluster's heartbeats allow
	)
	name := newImage(t, "rbd", size, 22)
	gw := startGateway(t, "gwf", "rbd/"+name+";osd_op_timeout=7", size, time.Second, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	if c, _, err := gw.writeRetryingBusy(ctx, 0, pattern(region, 'O', 0)); err != nil || c.Status != scsiGood {
		t.Fatalf("first write: %s, %v", outcome(c), err)
	}
	oldAddr, err := gw.im.ClientAddress()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("client address before the pause: %s", oldAddr)

	resume := pauseOSDs(t, admin)
	// The gateway's client learns of the flags with the next OSD map.
	if err := gw.im.client.conn.WaitForLatestOSDMap(); err != nil {
		t.Fatal(err)
	}
	var monCont func()
	if monSilence > 0 {
		monCont = stopDaemon(t, "mon.a")
	}
	paused := time.Now()
	type answer struct {
		slot        int
		outcome     string
		after       time.Duration
		blocklisted bool // gotcmu's client was on the blocklist when the answer came
	}
	answers := make(chan answer, slots)
	var answered atomic.Int32 // before asking the monitors about the blocklist
	for s := range slots {
		go func() {
			data := pattern(slotLen, 'A', uint64(1+s))
			c, err := gw.exec(ctx, write10(int64(s*slotLen), data), data, 0)
			a := answer{slot: s, after: time.Since(paused), outcome: outcome(c)}
			answered.Add(1)
			if err != nil {
				a.outcome = err.Error()
			}
			a.blocklisted = onBlocklist(t, admin, oldAddr)
			answers <- a
		}()
	}
	if monSilence > 0 {
		// librados gives up on the writes after osd_op_timeout; the
		// blocklist attempts fail meanwhile (rados_mon_op_timeout).
		time.Sleep(timeout + monSilence)
		if n := answered.Load(); n > 0 {
			t.Errorf("%d writes answered within %v while the monitor was stopped: gotcmu could not have fenced its client",
				n, timeout+monSilence)
		} else {
			t.Logf("no write answered in %v with the OSDs paused and the monitor stopped", timeout+monSilence)
		}
		// No I/O error reached the lock gate, yet it must know: its TPGs
		// go offline so that initiators leave this gateway for as long
		// as the cut lasts (issue 15).
		if st := gw.lock(t); st.State != "recovering" || st.ConnLosses != 1 {
			t.Errorf("lock gate %+v with the writes held for the fence, want recovering from one connection loss", st)
		}
		monCont()
	}
	// gotcmu gives up on a write after osd_op_timeout (librados) and at
	// the latest after stuckIOLimit (librbd still holding it); fencing
	// takes a monitor round on top.
	bound := stuckIOLimit(timeout) + 30*time.Second
	for range slots {
		select {
		case a := <-answers:
			t.Logf("stale write to slot %d answered %s after %v (client blocklisted then: %v)",
				a.slot, a.outcome, a.after.Round(time.Millisecond), a.blocklisted)
			if a.outcome == "GOOD" {
				t.Errorf("write to slot %d succeeded with the OSDs paused", a.slot)
			}
			if !a.blocklisted {
				t.Errorf("write to slot %d answered %s while gotcmu's client %s was not on the blocklist: it may still land",
					a.slot, a.outcome, oldAddr)
			}
		case <-time.After(bound):
			t.Fatalf("writes to paused OSDs not answered within %v", bound)
		}
	}
	if st := gw.im.ServiceStatus(); st.CmdTimedOutCnt == 0 {
		t.Errorf("service status %+v counts no timed-out command", st)
	}

	// The retry: different data, through the same device, retried on BUSY
	// as the SCSI midlayer does. It cannot succeed before the OSDs resume.
	retried := make(chan error, 1)
	go func() {
		c, busy, err := gw.writeRetryingBusy(ctx, 0, pattern(region, 'B', 100))
		if err == nil && c.Status != scsiGood {
			err = fmt.Errorf("retry answered %s", outcome(c))
		}
		t.Logf("retry answered %s after %d BUSY, %v after the pause", outcome(c), busy, time.Since(paused).Round(time.Millisecond))
		retried <- err
	}()
	select {
	case err := <-retried:
		t.Fatalf("retry completed with the OSDs paused: %v", err)
	case <-time.After(3 * time.Second):
	}
	resume()
	t.Logf("OSDs paused for %v", time.Since(paused).Round(time.Millisecond))
	if err := <-retried; err != nil {
		t.Fatal(err)
	}
	newAddr, err := gw.im.ClientAddress()
	if err != nil {
		t.Fatal(err)
	}
	if newAddr == oldAddr {
		t.Errorf("the retry was served by the fenced client %s", oldAddr)
	}

	check := func(when string) {
		img := readImage(t, name, 0, region)
		for off := 0; off < region; off += blockSize {
			if who, s := stampAt(img[off:]); who != 'B' || s != 100 {
				t.Errorf("%s: block at %d holds %c#%d, want the retry B#100", when, off, who, s)
			}
		}
	}
	check("after the retry")
	time.Sleep(5 * time.Second)
	check("5 s later")
}
