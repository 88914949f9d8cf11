//go:build guest

package guest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ceph runs the ceph tool on the one-OSD cluster.
func ceph(args ...string) (string, error) {
	return output("ceph", append([]string{"-c", cephDir + "/ceph.conf"}, args...)...)
}

// blocklisted counts the OSD blocklist's entries.
func blocklisted() int {
	out, _ := exec.Command("ceph", "-c", cephDir+"/ceph.conf", "osd", "blocklist", "ls").Output()
	return strings.Count(string(out), "/")
}

// staleWrite: writes in flight while the OSDs are paused (ceph osd pause)
// past osd_op_timeout: gotcmu blocklists its own client before answering
// them; SG_IO gives up on them (BUSY); a retry with other data succeeds
// through the same LUN once the OSDs resume; the LUN and the image hold
// the retry, never the stale data (issue 12).
func (f *faults) staleWrite(t *testing.T) {
	f.needRBD(t)
	const (
		off = 160 << 20 // object 40: one PG
		n   = 16        // writes of 4 KiB at off, the retry over all of them
	)
	dev := f.rbdDev
	b, err := os.ReadFile(fmt.Sprintf("/sys/block/%s/queue/logical_block_size", filepath.Base(dev)))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || bs <= 0 || 4096%bs != 0 {
		t.Fatalf("logical block size %q", b)
	}
	dataA := bytes.Repeat([]byte("A"), 4096)
	dataB := bytes.Repeat([]byte("B"), n*4096)
	if err := os.WriteFile("/tmp/stale-A", dataA, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/tmp/stale-B", dataB, 0o644); err != nil {
		t.Fatal(err)
	}
	seek := fmt.Sprint(off / 4096)
	if out, err := output("dd", "if=/dev/zero", "of="+dev, "bs=4096", fmt.Sprint("count=", n), "seek="+seek, "oflag=direct", "status=none"); err != nil {
		t.Fatalf("zeroing the region: %v: %s", err, out)
	}
	bl0 := blocklisted()
	logSize := int64(0)
	if fi, err := os.Stat(f.d.logPath); err == nil {
		logSize = fi.Size()
	}
	logPath := f.d.logPath
	if !t.Run("OSDs paused", func(t *testing.T) {
		if out, err := ceph("osd", "pause"); err != nil {
			t.Fatalf("ceph osd pause: %v: %s", err, out)
		}
	}) {
		return
	}
	resumed := false
	defer func() {
		if !resumed {
			ceph("osd", "unpause")
		}
	}()
	time.Sleep(3 * time.Second) // gotcmu's client learns of the pause with the next OSD map
	t0 := time.Now()
	// WRITE(10) through SG_IO: the midlayer retries BUSY only within the
	// command's own timeout (40 s), then hands the BUSY to sg_raw, so the
	// initiator sees the write fail.
	outs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			lba := uint32((off + i*4096) / bs)
			args := append([]string{"-t", "40", "-s", "4096", "-i", "/tmp/stale-A", dev}, Write10(lba, uint16(4096/bs))...)
			out, err := output("sg_raw", args...)
			outs[i] = fmt.Sprintf("%sexit %d\n", out, exitStatus(err))
			os.WriteFile(filepath.Join(f.out, fmt.Sprintf("stale-A-%d.txt", i)), []byte(outs[i]), 0o644)
		})
	}
	wg.Wait()
	good, busy := 0, 0
	statuses := map[string]int{}
	for _, out := range outs {
		g, b := SGRawStatus(out)
		if g {
			good++
		}
		if b {
			busy++
		}
		for line := range strings.Lines(out) {
			line = strings.TrimSpace(line)
			if strings.Contains(strings.ToLower(line), "status") || strings.HasPrefix(line, "exit") {
				statuses[line]++
			}
		}
	}
	var said []string
	for line, c := range statuses {
		said = append(said, fmt.Sprintf("%d %s", c, line))
	}
	slices.Sort(said)
	f.fig.add("stale-write: %d writes of A answered after %.0f s with the OSDs paused: %s; %d GOOD, %d BUSY",
		n, time.Since(t0).Seconds(), strings.Join(said, ", "), good, busy)
	t.Run("no write succeeded with the OSDs paused", func(t *testing.T) {
		if good != 0 {
			t.Errorf("%d of %d writes answered GOOD", good, n)
		}
	})
	t.Run("the writes were answered BUSY", func(t *testing.T) {
		if busy == 0 {
			t.Errorf("none of %d writes answered BUSY: %s", n, strings.Join(said, ", "))
		}
	})
	t.Run("gotcmu's client is on the OSD blocklist", func(t *testing.T) {
		if bl1 := blocklisted(); bl1 <= bl0 {
			t.Errorf("%d blocklist entries before, %d now", bl0, bl1)
		}
	})
	// The order (blocklist committed, then the answer) is rbd's
	// TestStaleWriteFenced; here the daemon's log shows the fence of its
	// own client after the pause.
	t.Run("gotcmu logged blocklisting its own client", func(t *testing.T) {
		b, _ := os.ReadFile(logPath)
		if int64(len(b)) < logSize || !bytes.Contains(b[logSize:], []byte("blocklisted this gateway's own rbd client")) {
			t.Errorf("no \"blocklisted this gateway's own rbd client\" in %s since the pause", logPath)
		}
	})
	retry := exec.Command("dd", "if=/tmp/stale-B", "of="+dev, "bs=4096", "seek="+seek, "oflag=direct", "status=none")
	retry.Stdout, retry.Stderr = os.Stdout, os.Stdout
	if err := retry.Start(); err != nil {
		t.Fatal(err)
	}
	retryDone := make(chan error, 1)
	go func() { retryDone <- retry.Wait() }()
	time.Sleep(5 * time.Second)
	t.Run("the retry waits while the OSDs are paused", func(t *testing.T) {
		select {
		case err := <-retryDone:
			retryDone <- err
			t.Errorf("the retry ended (%v) with the OSDs paused", err)
		default:
		}
	})
	t.Run("OSDs resumed", func(t *testing.T) {
		if out, err := ceph("osd", "unpause"); err != nil {
			t.Fatalf("ceph osd unpause: %v: %s", err, out)
		}
		resumed = true
	})
	t1 := time.Now()
	rrc := exitStatus(<-retryDone)
	f.fig.add("stale-write: OSDs paused %.0f s; the retry completed %.0f s after they resumed (dd exit %d)",
		t1.Sub(t0).Seconds()+3, time.Since(t1).Seconds(), rrc)
	t.Run("the retry with other data succeeds through the same LUN", func(t *testing.T) {
		if rrc != 0 {
			t.Errorf("dd exit %d", rrc)
		}
	})
	lunHoldsB := func(t *testing.T) {
		out, err := output("dd", "if="+dev, "of=/tmp/stale-back", "bs=4096", fmt.Sprint("count=", n), "skip="+seek, "iflag=direct", "status=none")
		if err != nil {
			t.Fatalf("reading the region back: %v: %s", err, out)
		}
		back, err := os.ReadFile("/tmp/stale-back")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, dataB) {
			t.Errorf("the region holds %s", describe(back, 4096))
		}
	}
	t.Run("the LUN holds the retry (B), no stale A", lunHoldsB)
	t.Run("the image's object holds the retry (rados get)", func(t *testing.T) {
		// The RADOS object holding the region, read by a client of its own.
		info := exec.Command("rbd", "info", "rbd/faults")
		info.Env = append(os.Environ(), "CEPH_CONF="+cephDir+"/ceph.conf")
		out, err := info.Output()
		if err != nil {
			t.Fatalf("rbd info: %v", err)
		}
		prefix, order, err := ParseRBDInfo(string(out))
		if err != nil {
			t.Fatal(err)
		}
		obj := fmt.Sprintf("%s.%016x", prefix, off>>order)
		get := exec.Command("rados", "-p", "rbd", "get", obj, "/tmp/stale-obj")
		get.Env = info.Env
		if out, err := get.CombinedOutput(); err != nil {
			t.Fatalf("rados get %s: %v: %s", obj, err, out)
		}
		b, err := os.ReadFile("/tmp/stale-obj")
		if err != nil {
			t.Fatal(err)
		}
		at := off % (1 << order)
		if len(b) < at+len(dataB) || !bytes.Equal(b[at:at+len(dataB)], dataB) {
			t.Errorf("object %s (%d bytes) at %d holds %s", obj, len(b), at, describe(b[min(at, len(b)):], 4096))
		}
	})
	time.Sleep(5 * time.Second)
	t.Run("5 s later the LUN still holds the retry", lunHoldsB)
	f.running(t)
}

// describe says which byte fills each block of b ("B B A ..."), '?' for a
// mix.
func describe(b []byte, block int) string {
	var s []string
	for i := 0; i < len(b) && len(s) < 64; i += block {
		blk := b[i:min(i+block, len(b))]
		c := string(blk[:1])
		if len(bytes.Trim(blk, c)) != 0 {
			c = "?"
		} else if blk[0] == 0 {
			c = "0"
		}
		s = append(s, c)
	}
	return "blocks " + strings.Join(s, " ")
}
