//go:build guest

package guest

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// haRun is what guest b of make test-ha (test/ha/guest-ha.sh) hands over
// once fio has ended: when it did what, and where the evidence is.
type haRun struct {
	dir                      string // HA_OUT: progress.txt, fio.*, gotcmu.log (B's), gotcmu-a.log, path-*.stat
	killAt, restartAt, endAt int64  // unix seconds: A's gotcmu SIGKILLed, restarted; fio ended
	fioRC                    int
	fioSecs                  int
	maxStall, settle         int64 // seconds
}

func loadHARun(t *testing.T) haRun {
	num := func(name string) int64 {
		v, err := strconv.ParseInt(os.Getenv(name), 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v (run by test/ha/guest-ha.sh b)", name, os.Getenv(name), err)
		}
		return v
	}
	return haRun{
		dir:    cmp.Or(os.Getenv("HA_OUT"), "/out"),
		killAt: num("HA_KILL_AT"), restartAt: num("HA_RESTART_AT"), endAt: num("HA_END_AT"),
		fioRC: int(num("HA_FIO_RC")), fioSecs: int(num("HA_FIO_SECS")),
		maxStall: num("HA_MAX_STALL"), settle: num("HA_SETTLE"),
	}
}

func (r haRun) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lockTakes is when a gateway's gotcmu took the image's exclusive lock,
// in unix seconds.
func (r haRun) lockTakes(t *testing.T, log string) []int64 {
	var out []int64
	for _, at := range LogMatch([]byte(r.read(t, log)), "took exclusive lock", nil) {
		out = append(out, at.Unix())
	}
	return out
}

// TestHA is the verdict of make test-ha, issue 6 point 4 (implicit ALUA
// failover with dm-multipath, see test/ha/guest-ha.sh): fio verified every
// block through the failover and failback, writes stalled at most
// maxStall, and the image's lock went from A to B and back to A, then
// stayed.
func TestHA(t *testing.T) {
	r := loadHARun(t)
	t.Run("B: writes went through path A before the kill", func(t *testing.T) {
		onA, errA := BlockWrites(r.read(t, "path-a.stat"))
		onB, errB := BlockWrites(r.read(t, "path-b.stat"))
		if errA != nil || errB != nil {
			t.Fatalf("path stats: %v, %v", errA, errB)
		}
		t.Logf("%d writes on path A, %d on path B", onA, onB)
		if onA == 0 || onB != 0 {
			t.Errorf("want writes on path A only")
		}
	})
	progress := ParseProgress(r.read(t, "progress.txt"))
	t.Run("B: writes resumed after A's gotcmu was killed", func(t *testing.T) {
		var at, before int64 = 0, -1
		for _, p := range progress {
			if p.At <= r.killAt {
				before = p.Writes
			} else if before >= 0 && p.Writes > before {
				at = p.At
				break
			}
		}
		if before < 0 || at == 0 {
			t.Fatalf("no write completed after the kill at %d (%d samples)", r.killAt, len(progress))
		}
		t.Logf("first writes %d s after the kill", at-r.killAt)
	})
	t.Run("B: writes stalled at failover at most the limit", func(t *testing.T) {
		stall := LongestStall(progress, r.killAt)
		t.Logf("longest stall %d s, at most %d s", stall, r.maxStall)
		if stall > r.maxStall {
			t.Errorf("writes stalled %d s, more than %d s", stall, r.maxStall)
		}
	})
	t.Run("B: fio with verify succeeded", func(t *testing.T) {
		if r.fioRC == 0 {
			t.Logf("%d s of verified random writes", r.fioSecs)
			return
		}
		var said []string
		for _, f := range []string{"fio.out", "fio.txt"} {
			b, _ := os.ReadFile(filepath.Join(r.dir, f))
			for line := range strings.Lines(string(b)) {
				if strings.Contains(strings.ToLower(line), "verify") && len(said) < 5 {
					said = append(said, strings.TrimSpace(line))
				}
			}
		}
		t.Errorf("fio exited %d: %s", r.fioRC, strings.Join(said, " | "))
	})
	a, b := r.lockTakes(t, "gotcmu-a.log"), r.lockTakes(t, "gotcmu.log")
	stamp := func(v []int64) string {
		var s []string
		for _, at := range v {
			s = append(s, fmt.Sprintf("%+d s", at-r.killAt))
		}
		return "[" + strings.Join(s, " ") + "]"
	}
	logf("lock taken (relative to the kill): by A %s, by B %s; A restarted %+d s, fio ended %+d s",
		stamp(a), stamp(b), r.restartAt-r.killAt, r.endAt-r.killAt)
	// A takes the lock first, B at the failover, A again at failback;
	// nothing else moves it.
	t.Run("B: gateway B took the lock after the failover", func(t *testing.T) {
		for _, at := range b {
			if at >= r.killAt && at <= r.restartAt {
				return
			}
		}
		t.Errorf("B took the lock at %s, never between the kill and A's restart", stamp(b))
	})
	t.Run("B: the lock moved 3 times (A first, B at failover, A at failback)", func(t *testing.T) {
		if n := len(a) + len(b); n != 3 {
			t.Errorf("%d moves: by A %s, by B %s", n, stamp(a), stamp(b))
		}
	})
	t.Run("B: A took the lock back after its restart (failback)", func(t *testing.T) {
		for _, at := range a {
			if at >= r.restartAt {
				return
			}
		}
		t.Errorf("A took the lock at %s, never after its restart at %+d s", stamp(a), r.restartAt-r.killAt)
	})
	t.Run("B: the lock stayed put to the end", func(t *testing.T) {
		last := int64(0)
		for _, at := range append(append([]int64(nil), a...), b...) {
			last = max(last, at)
		}
		t.Logf("last move %d s before fio ended", r.endAt-last)
		if r.endAt-last < r.settle {
			t.Errorf("the lock last moved %d s before the end, less than %d s", r.endAt-last, r.settle)
		}
	})
}
