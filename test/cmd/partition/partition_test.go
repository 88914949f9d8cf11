package main

import (
	"strings"
	"testing"
	"time"
)

func TestGroupOf(t *testing.T) {
	topo := `mpatha (36001405...) dm-0 LIO-ORG,part
size=256M features='1 queue_if_no_path' hwhandler='1 alua' wp=rw
|-+- policy='queue-length 0' prio=10 status=enabled
| ` + "`" + `- 3:0:0:0 sdb 8:16 active ready running
` + "`" + `-+- policy='queue-length 0' prio=50 status=active
  ` + "`" + `- 2:0:0:0 sda 8:0  active ready running
`
	if g := groupOf(topo, "sda"); g != 2 {
		t.Fatalf("sda in group %d, want 2", g)
	}
	if g := groupOf(topo, "sdb"); g != 1 {
		t.Fatalf("sdb in group %d, want 1", g)
	}
	if g := groupOf(topo, "sdc"); g != 0 {
		t.Fatalf("sdc in group %d, want 0", g)
	}
}

func TestPathStates(t *testing.T) {
	m := pathStates("dev dm_st  chk_st\nsda active ready\nsdb failed faulty\n")
	if len(m) != 2 || m["sda"] != "active/ready" || m["sdb"] != "failed/faulty" {
		t.Fatalf("states = %v", m)
	}
}

func TestLockHolder(t *testing.T) {
	for _, c := range []struct{ out, want string }{
		{`[{"id":"auto 1","locker":"client.4","address":"10.99.0.1:0/123"}]`, "A"},
		{`[{"id":"auto 1","locker":"client.4","address":"10.99.0.3:0/456"}]`, "B"},
		{`[{"id":"auto 1","locker":"client.4","address":"10.99.0.10:0/456"}]`, "other"},
		{`[]`, "nobody"},
	} {
		if got := lockHolder(c.out, "10.99.0.1", "10.99.0.3"); got != c.want {
			t.Errorf("%s: %s, want %s", c.out, got, c.want)
		}
	}
}

func TestLogEvents(t *testing.T) {
	log := parseLog(`gotcmu 1.0 starting
{"level":"info","owner":"10.99.0.1:0/1","took":1,"time":"2026-12-05T11:00:00Z","message":"took exclusive lock"}
{"level":"warn","time":"2026-12-05T11:00:10Z","message":"connection to the cluster lost; taking target portal groups offline and reopening"}
{"level":"info","owner":"10.99.0.3:0/2","time":"2026-12-05T11:01:05Z","message":"took exclusive lock"}
`)
	if len(log) != 3 {
		t.Fatalf("%d events, want 3", len(log))
	}
	from := time.Date(2026, 12, 5, 11, 0, 10, 500e6, time.UTC)
	if ev := events(log, msgTook, from); len(ev) != 1 || ev[0].Owner != "10.99.0.3:0/2" {
		t.Fatalf("took after %v: %+v", from, ev)
	}
	// An event logged in the second of from counts.
	if ev := events(log, msgConnLost, from); len(ev) != 1 {
		t.Fatalf("connection lost in the same second: %+v", ev)
	}
}

func TestTPGChanges(t *testing.T) {
	s := parseTPGSamples("100.0 1\n101.5 1\n102.5 0\n103.5 0\n104.5 1\n105.5 0\n106.")
	if len(s) != 6 {
		t.Fatalf("%d samples, want 6 (the torn last line skipped)", len(s))
	}
	off, on := tpgChanges(s, time.Unix(101, 0))
	if off.Unix() != 102 || on.Unix() != 104 {
		t.Fatalf("off %v on %v, want 102 and 104", off.Unix(), on.Unix())
	}
	if off, on := tpgChanges(s[:2], time.Unix(100, 0)); !off.IsZero() || !on.IsZero() {
		t.Fatal("changes found where the TPG stayed on")
	}
}

func TestKernelSummary(t *testing.T) {
	s := kernelSummary([]string{
		"+21.0 s kernel: device-mapper: multipath: 253:0: Failing path 8:0.",
		"+21.0 s multipath: path A sda failed/faulty, path B sdb active/ready",
		"+80.0 s kernel: sd 2:0:0:0: [sda] tag#3 Add. Sense: Logical unit not accessible, target port in standby state",
	})
	if !strings.Contains(s, "path failed 1") || !strings.Contains(s, "standby sense 1") || !strings.Contains(s, "path state changes 1") {
		t.Fatalf("summary %q", s)
	}
}

func TestFirst(t *testing.T) {
	log := parseLog(`{"level":"warn","time":"2026-12-05T11:00:10Z","message":"exclusive lock lost to another gateway; reopening"}
{"level":"info","time":"2026-12-05T11:00:12Z","message":"reopened after losing the exclusive lock"}
{"level":"info","time":"2026-12-05T11:00:20Z","message":"reconnected to the cluster"}
`)
	e, ok := first(log, time.Date(2026, 12, 5, 11, 0, 11, 0, time.UTC), msgReconnected, msgReopened)
	if !ok || e.Message != msgReopened {
		t.Fatalf("first = %+v, %v; want the reopen", e, ok)
	}
	if _, ok := first(log, time.Date(2026, 12, 5, 11, 0, 21, 0, time.UTC), msgReconnected); ok {
		t.Fatal("an event before from found")
	}
}
