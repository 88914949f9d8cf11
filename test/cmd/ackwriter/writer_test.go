package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// memDevice is a RAM disk whose writes can fail or lie.
type memDevice struct {
	mu     sync.Mutex
	data   []byte
	writes atomic.Int64
	// fault decides the fate of write number n (1-based) at off: store it
	// or not, and what to return.
	fault func(n, off int64) (store bool, err error)
}

func (d *memDevice) WriteAt(p []byte, off int64) (int, error) {
	runtime.Gosched() // let every worker run, as a device that blocks would
	n := d.writes.Add(1)
	store, err := true, error(nil)
	if d.fault != nil {
		store, err = d.fault(n, off)
	}
	if store {
		d.mu.Lock()
		copy(d.data[off:], p)
		d.mu.Unlock()
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (d *memDevice) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return copy(p, d.data[off:]), nil
}

func heapBuffer(n int) ([]byte, error) { return make([]byte, n), nil }

// runAndVerify writes to dev through a real ack log, then verifies it.
func runAndVerify(t *testing.T, dev *memDevice, cfg writeConfig) (writeStats, verifyReport, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ack.log")
	alog, err := createAckLog(path, cfg.Header)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{cfg: cfg, dev: dev, log: alog, newBuf: heapBuffer, logf: t.Logf}
	stats, runErr := w.run(t.Context())
	if err := alog.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, blocks, err := readAckLog(f)
	if err != nil {
		t.Fatal(err)
	}
	report, err := verifyBlocks(h, blocks, readerBlocks(dev, h), make([]byte, h.BlockSize))
	if err != nil {
		t.Fatal(err)
	}
	return stats, report, runErr
}

func TestWriterThenVerify(t *testing.T) {
	eio := syscall.EIO
	tests := []struct {
		name        string
		fault       func(n, off int64) (bool, error)
		wantErrors  bool
		wantLost    bool
		wantRunFail bool
	}{
		{name: "healthy_device"},
		{name: "device_down_for_a_while", wantErrors: true,
			fault: func(n, _ int64) (bool, error) {
				if n > 100 && n <= 160 {
					return false, eio
				}
				return true, nil
			}},
		{name: "failed_writes_that_landed_anyway", wantErrors: true,
			fault: func(n, _ int64) (bool, error) {
				if n%7 == 0 {
					return true, eio
				}
				return true, nil
			}},
		{name: "acknowledged_writes_dropped", wantLost: true,
			// The device stops storing after write 400 but acknowledges
			// on: at least the last write of the run is lost.
			fault: func(n, _ int64) (bool, error) { return n <= 400, nil }},
		{name: "device_never_recovers", wantErrors: true, wantRunFail: true,
			fault: func(n, _ int64) (bool, error) {
				if n > 50 {
					return false, eio
				}
				return true, nil
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const bs, blocks = 512, 64
			dev := &memDevice{data: make([]byte, bs*blocks), fault: tc.fault}
			cfg := writeConfig{
				Header:     logHeader{Run: 77, BlockSize: bs, Blocks: blocks},
				Depth:      4,
				MaxWrites:  500,
				RetryDelay: time.Millisecond,
				GiveUp:     100 * time.Millisecond,
				Seed:       1,
			}
			stats, r, runErr := runAndVerify(t, dev, cfg)
			if (runErr != nil) != tc.wantRunFail {
				t.Fatalf("run error %v, want failure %v", runErr, tc.wantRunFail)
			}
			if (stats.Errors > 0) != tc.wantErrors {
				t.Errorf("%d write errors, want errors %v", stats.Errors, tc.wantErrors)
			}
			if !tc.wantRunFail && stats.Acked < cfg.MaxWrites {
				t.Errorf("%d writes acknowledged, want at least %d", stats.Acked, cfg.MaxWrites)
			}
			if tc.wantErrors && !tc.wantRunFail && stats.Recovered == 0 {
				t.Error("no write acknowledged after the last error")
			}
			if int64(r.Acknowledged) != stats.Acked || r.Verified+r.Lost != r.Acknowledged {
				t.Errorf("report %+v does not add up to the %d acknowledged writes", r, stats.Acked)
			}
			if (r.Lost > 0) != tc.wantLost {
				t.Errorf("lost %d (problems %q), want loss %v", r.Lost, r.Problems, tc.wantLost)
			}
		})
	}
}

func TestWriterKeepsOneWriterPerBlock(t *testing.T) {
	// Every block is written by one goroutine only, so its sequence numbers
	// rise in log order; a second writer would break "latest acknowledged".
	const bs, blocks = 512, 16
	dev := &memDevice{data: make([]byte, bs*blocks)}
	path := filepath.Join(t.TempDir(), "ack.log")
	h := logHeader{Run: 5, BlockSize: bs, Blocks: blocks}
	alog, err := createAckLog(path, h)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{cfg: writeConfig{Header: h, Depth: 8, MaxWrites: 2000, RetryDelay: time.Millisecond, GiveUp: time.Second},
		dev: dev, log: alog, newBuf: heapBuffer, logf: t.Logf}
	if _, err := w.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	alog.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, hist, err := readAckLog(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for b, bh := range hist {
		for i := 1; i < len(bh.issued); i++ {
			if bh.issued[i] <= bh.issued[i-1] {
				t.Fatalf("block %d: seq %d issued after %d", b, bh.issued[i], bh.issued[i-1])
			}
		}
	}
}

func TestWriterRejectsBadConfig(t *testing.T) {
	h := logHeader{Run: 1, BlockSize: 512, Blocks: 4}
	for name, cfg := range map[string]writeConfig{
		"depth_above_blocks": {Header: h, Depth: 5, MaxWrites: 1},
		"zero_depth":         {Header: h, Depth: 0, MaxWrites: 1},
		"unbounded":          {Header: h, Depth: 1},
	} {
		t.Run(name, func(t *testing.T) {
			w := &writer{cfg: cfg, dev: &memDevice{data: make([]byte, 2048)}, newBuf: heapBuffer, logf: t.Logf}
			if _, err := w.run(t.Context()); err == nil {
				t.Error("run accepted a bad configuration")
			}
		})
	}
}

// TestCommandsOnAFile runs both subcommands end to end on a regular file,
// then damages one acknowledged block and expects verify to report it.
func TestCommandsOnAFile(t *testing.T) {
	dir := t.TempDir()
	dev, logPath := filepath.Join(dir, "disk"), filepath.Join(dir, "ack.log")
	if err := os.WriteFile(dev, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if code := cmdWrite(t.Context(), []string{"-dev", dev, "-log", logPath, "-direct=false", "-duration=0", "-writes=300", "-depth=4"}, &out); code != 0 {
		t.Fatalf("write exit %d: %s", code, out.String())
	}
	out.Reset()
	if code := cmdVerify([]string{"-dev", dev, "-log", logPath, "-direct=false"}, &out); code != 0 {
		t.Fatalf("verify exit %d: %s", code, out.String())
	}
	if !strings.Contains(out.String(), " lost=0 ") {
		t.Errorf("verify output %q lacks lost=0", out.String())
	}

	// Zero the first block that holds a write of this run.
	data, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 4096 {
		if string(data[off:off+8]) == blockMagic {
			clear(data[off : off+4096])
			break
		}
	}
	if err := os.WriteFile(dev, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := cmdVerify([]string{"-dev", dev, "-log", logPath, "-direct=false"}, &out); code != 1 {
		t.Fatalf("verify of a damaged disk exit %d, want 1: %s", code, out.String())
	}
	if strings.Contains(out.String(), " lost=0 ") {
		t.Errorf("verify output %q reports no loss", out.String())
	}
}

func TestVerifyRefusesALogWithoutAcknowledgements(t *testing.T) {
	dir := t.TempDir()
	dev, logPath := filepath.Join(dir, "disk"), filepath.Join(dir, "ack.log")
	if err := os.WriteFile(dev, make([]byte, 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	// Every write issued, none acknowledged: the device failed throughout.
	log := "ackwriter-log v1 run=0000000000000001 bs=4096 blocks=16 offset=0\nW 1 1\nW 2 2\n"
	if err := os.WriteFile(logPath, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if code := cmdVerify([]string{"-dev", dev, "-log", logPath, "-direct=false"}, &out); code != 1 {
		t.Errorf("verify exit %d, want 1: %s", code, out.String())
	}
	if !strings.Contains(out.String(), "no acknowledged write") {
		t.Errorf("output %q does not say nothing was acknowledged", out.String())
	}
}
