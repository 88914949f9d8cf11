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

// TestManagerCopyStatusFollowsReach: EXTENDED COPY with LIST ID USAGE 00b
// holds its status for RECEIVE COPY RESULTS (COPY STATUS) only while one
// tenant alone reaches the device, returns it once, and only to that
// tenant: TCMU does not say which I_T nexus asks, so another tenant must
// never learn of a copy.
func TestManagerCopyStatusFollowsReach(t *testing.T) {
	m, k := newManager(t)
	ref, f := k.create("tcm-user/1/a/mem/a", 1<<20)
	if err := m.Add(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	a := lun{t, f}
	naa := handler.NAADesignator("serial-tcm-user/1/a/mem/a")
	copyAs := func(listID byte) {
		t.Helper()
		list := xcopyList(listID, 0x00, [][]byte{xcopyTarget(naa, 512)}, [][]byte{xcopySegment(0, 0, 8, 0, 100)})
		if c := a.do(uiotest.Request{CDB: xcopyCDB(len(list)), DataOut: list}); c.Status != 0 {
			t.Fatalf("EXTENDED COPY list %d: status %#x sense %x", listID, c.Status, c.Sense)
		}
	}
	status := func(listID byte) uiotest.Completion {
		t.Helper()
		return a.do(uiotest.Request{CDB: cdb16(0x84, 0x00, uint64(listID)<<56, 64), DataInLen: 64})
	}
	none := func(what string, listID byte) {
		t.Helper()
		c := status(listID)
		if c.Status != 2 || len(c.Sense) < 14 || c.Sense[2]&0xf != keyIllegalRequest || c.Sense[12] != 0x24 {
			t.Fatalf("%s: status %#x sense %x, want ILLEGAL REQUEST / INVALID FIELD IN CDB", what, c.Status, c.Sense)
		}
	}

	k.setReach(fakeReach{"user_1/a": "iqn.host1"}, nil)
	none("no copy yet", 1)
	copyAs(1)
	c := status(1)
	want := []byte{0, 0, 0, 8, 0x01, 0, 1, 0, 0, 0, 0x10, 0} // completed, 1 segment, 4096 bytes
	if c.Status != 0 || !bytes.Equal(c.DataIn, want) {
		t.Fatalf("COPY STATUS: status %#x sense %x data % x, want GOOD % x", c.Status, c.Sense, c.DataIn, want)
	}
	none("returned once", 1)

	// Open to any initiator of an iSCSI TPG: nothing is held.
	k.setReach(fakeReach{"user_1/a": "demo"}, nil)
	time.Sleep(handler.ReachMaxAge + 100*time.Millisecond)
	copyAs(2)
	none("demo mode", 2)

	// Held for one initiator, asked for once another reaches the device
	// alone, or beside it: not answered.
	k.setReach(fakeReach{"user_1/a": "iqn.host1"}, nil)
	time.Sleep(handler.ReachMaxAge + 100*time.Millisecond)
	copyAs(3)
	k.setReach(fakeReach{"user_1/a": "iqn.host2"}, nil)
	time.Sleep(handler.ReachMaxAge + 100*time.Millisecond)
	none("another tenant", 3)
	k.setReach(fakeReach{"user_1/a": "iqn.host1+iqn.host2"}, nil)
	time.Sleep(handler.ReachMaxAge + 100*time.Millisecond)
	none("two tenants", 3)
	// The same initiator through two TPGs (ceph-iscsi's layout), and
	// this host through tcm_loop, are one tenant each.
	k.setReach(fakeReach{"user_1/a": "iqn.host1+iqn.host1"}, nil)
	time.Sleep(handler.ReachMaxAge + 100*time.Millisecond)
	if c := status(3); c.Status != 0 {
		t.Fatalf("the initiator of the copy through two TPGs: status %#x sense %x, want GOOD", c.Status, c.Sense)
	}
	k.setReach(fakeReach{"user_1/a": "loop"}, nil)
	time.Sleep(handler.ReachMaxAge + 100*time.Millisecond)
	copyAs(4)
	if c := status(4); c.Status != 0 {
		t.Fatalf("tcm_loop: status %#x sense %x, want GOOD", c.Status, c.Sense)
	}
}

func TestSoleTenant(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{nil, ""},
		{[]string{"iscsi/iqn.t/tpgt_1 acl=iqn.a rw"}, "acl=iqn.a"},
		{[]string{"iscsi/iqn.t/tpgt_1 acl=iqn.a rw", "iscsi/iqn.t/tpgt_2 acl=iqn.a ro"}, "acl=iqn.a"},
		{[]string{"iscsi/iqn.t/tpgt_1 acl=iqn.a rw", "iscsi/iqn.t/tpgt_1 acl=iqn.b rw"}, ""},
		{[]string{"iscsi/iqn.t/tpgt_1 * rw"}, ""},
		{[]string{"vhost/naa.t/tpgt_1 * rw"}, ""},
		{[]string{"loopback/naa.t/tpgt_1 * rw", "loopback/naa.u/tpgt_1 * rw"}, "loopback"},
		{[]string{"loopback/naa.t/tpgt_1 * rw", "iscsi/iqn.t/tpgt_1 acl=iqn.a rw"}, ""},
		{[]string{"garbage"}, ""},
	} {
		got, ok := handler.SoleTenant(tc.paths)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("SoleTenant(%q) = %q, %v; want %q", tc.paths, got, ok, tc.want)
		}
	}
}
