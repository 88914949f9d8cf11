package handler_test

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// TestManagerExtendedCopyFollowsReach holds EXTENDED COPY between two
// devices of the Manager to what configfs says reaches them (the Kernel's
// Reach): refused with ILLEGAL REQUEST / COPY TARGET DEVICE NOT REACHABLE
// and nothing moved while they are reached by different initiators, or
// while configfs cannot be read; allowed once they are reached alike; and
// refused again once the reading is out of date (a TPG added later).
func TestManagerExtendedCopyFollowsReach(t *testing.T) {
	m, k := newManager(t)
	refA, fa := k.create("tcm-user/1/a/mem/a", 1<<20)
	refB, fb := k.create("tcm-user/1/b/mem/b", 1<<20)
	for _, ref := range []handler.DeviceRef{refA, refB} {
		if err := m.Add(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
	}
	a, b := lun{t, fa}, lun{t, fb}
	dataA, dataB := pattern(31, 4096), pattern(32, 4096)
	a.write(0, dataA)
	b.write(0, dataB)
	naaA, naaB := handler.NAADesignator("serial-tcm-user/1/a/mem/a"), handler.NAADesignator("serial-tcm-user/1/b/mem/b")
	// From a's port: b's first 8 blocks onto a's.
	list := xcopyList(0, listIDNone, [][]byte{xcopyTarget(naaA, 512), xcopyTarget(naaB, 512)}, [][]byte{xcopySegment(1, 0, 8, 0, 0)})
	pull := func() uiotest.Completion { return a.do(uiotest.Request{CDB: xcopyCDB(len(list)), DataOut: list}) }
	refused := func(what string) {
		t.Helper()
		c := pull()
		if c.Status != 2 || len(c.Sense) < 14 || c.Sense[2]&0xf != keyIllegalRequest || c.Sense[12] != 0x0d || c.Sense[13] != 0x02 {
			t.Fatalf("%s: status %#x sense %x, want ILLEGAL REQUEST 0D/02", what, c.Status, c.Sense)
		}
		if !bytes.Equal(a.read(0), dataA) {
			t.Fatalf("%s: a refused copy changed the destination", what)
		}
	}

	k.setReach(fakeReach{"user_1/a": "tenant1", "user_1/b": "tenant2"}, nil)
	refused("different initiators")
	k.setReach(nil, syscall.EIO)
	refused("configfs unreadable")
	k.setReach(fakeReach{"user_1/a": "tenant1"}, nil)
	refused("b exported nowhere")

	k.setReach(fakeReach{"user_1/a": "tenant1", "user_1/b": "tenant1"}, nil)
	if c := pull(); c.Status != 0 {
		t.Fatalf("reached alike: status %#x sense %x, want GOOD", c.Status, c.Sense)
	}
	if !bytes.Equal(a.read(0), dataB) {
		t.Fatal("an allowed copy did not move b's blocks to a")
	}
	// The reading is kept for a while: a run of copies reads configfs
	// once.
	k.mu.Lock()
	reads := k.reachReads
	k.mu.Unlock()
	pull()
	k.mu.Lock()
	if k.reachReads != reads {
		t.Errorf("a second copy right after the first read configfs again (%d reads, then %d)", reads, k.reachReads)
	}
	k.mu.Unlock()
	// A TPG added later exports a alone: once the reading is older than
	// its limit, copies are refused.
	a.write(0, dataA)
	k.setReach(fakeReach{"user_1/a": "tenant1+tpg2", "user_1/b": "tenant1"}, nil)
	time.Sleep(handler.ReachMaxAge + 100*time.Millisecond)
	refused("a TPG added later")
}
