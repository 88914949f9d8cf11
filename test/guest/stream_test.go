//go:build guest

package guest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// stream is a verifying write stream (test/cmd/ackwriter write) in the
// background: checksummed blocks, O_DIRECT|O_DSYNC, a log of every write
// the device acknowledged.
type stream struct {
	name, dev string
	ackwriter string
	ackLog    string // /tmp/NAME.ack
	out       string // OUT/NAME-write.txt
	dir       string // OUT
	fig       *figures

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// startStream starts ackwriter on dev; it runs until end stops it
// (SIGTERM: the writes in flight finish, nothing new starts), at most 10
// minutes, and gives up after a write failed for 180 s unless args say
// otherwise. The test's cleanup kills it if it still runs.
func startStream(t *testing.T, e *env, name, dev string, args ...string) *stream {
	s := &stream{name: name, dev: dev, ackwriter: e.ackwriter, dir: e.out, fig: e.fig,
		ackLog: "/tmp/" + name + ".ack", out: filepath.Join(e.out, name+"-write.txt"), exited: make(chan struct{})}
	out, err := os.Create(s.out)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	s.cmd = exec.Command(e.ackwriter, append([]string{"write", "-dev", dev, "-log", s.ackLog,
		"-duration", "600s", "-give-up", "180s"}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("stream %s: start ackwriter: %v", name, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

// region is ackwriter's arguments for 4096 blocks of 4 KiB at offset, with
// depth writes in flight: each stream its own 16 MiB.
func region(offset int64, depth int) []string {
	return []string{"-blocks", "4096", "-offset", fmt.Sprint(offset), "-depth", fmt.Sprint(depth)}
}

// acked is how many writes the stream has had acknowledged so far; 0 for
// a nil stream (a LUN that is not there).
func (s *stream) acked() int {
	if s == nil {
		return 0
	}
	b, _ := os.ReadFile(s.ackLog)
	return CountAcked(b)
}

// recovered waits (up to d) until the stream has 200 more acknowledged
// writes than mark, the count when the fault ended, and says how long it
// took; end's checks decide.
func (s *stream) recovered(mark int, d time.Duration) {
	t0 := time.Now()
	waitUntil(d, func() bool { return s.acked() >= mark+200 })
	logf("%s: %d writes acknowledged %d ms after the fault ended", s.name, s.acked()-mark, time.Since(t0).Milliseconds())
}

// wait waits up to d for the stream to end by itself, then stops it.
func (s *stream) wait(d time.Duration) int {
	select {
	case <-s.exited:
	case <-time.After(d):
		logf("%s: still writing %v later; stopping it", s.name, d)
		s.cmd.Process.Signal(syscall.SIGTERM)
		<-s.exited
	}
	return exitStatus(s.waitErr)
}

// verify runs ackwriter verify of the stream's log against dev (the LUN,
// or the backing file with -direct=false in args): its exit status and
// figures.
func (s *stream) verify(dev string, args ...string) (int, string) {
	out := filepath.Join(s.dir, s.name+"-verify.txt")
	cmd := exec.Command(s.ackwriter, append([]string{"verify", "-dev", dev, "-log", s.ackLog}, args...)...)
	b, err := cmd.CombinedOutput()
	os.WriteFile(out, b, 0o644)
	return exitStatus(err), AckFigures(string(b))
}

// end stops the stream, verifies every acknowledged write, writes the
// figures line and checks: no write failed for good, writes were
// acknowledged after the fault (mark: the count when it ended), every
// acknowledged write reads back.
func (s *stream) end(t *testing.T, mark int) {
	s.cmd.Process.Signal(syscall.SIGTERM)
	<-s.exited
	wrc := exitStatus(s.waitErr)
	end := s.acked()
	vrc, line := s.verify(s.dev)
	if line == "" {
		line = "verify failed"
	}
	wout, _ := os.ReadFile(s.out)
	s.fig.add("%s: %s acknowledged-after-fault=%d write-%s", s.name, line, end-mark, WriteErrors(string(wout)))
	t.Run("write stream ended without a write failing for good", func(t *testing.T) {
		if wrc != 0 {
			t.Errorf("ackwriter write exited %d: %s", wrc, tail(s.out, 3))
		}
	})
	t.Run("writes acknowledged after the fault", func(t *testing.T) {
		t.Logf("%d writes acknowledged after the fault", end-mark)
		if end <= mark {
			t.Errorf("%d acknowledged when the fault ended, %d at the end: none after", mark, end)
		}
	})
	t.Run("every acknowledged write read back intact (lost=0)", func(t *testing.T) {
		if vrc != 0 {
			t.Errorf("ackwriter verify exited %d: %s", vrc, line)
		}
	})
}

// figures is the FAULT lines file (OUT/figures.txt) the results are made
// from; each line is also printed.
type figures struct{ path string }

func (f *figures) add(format string, a ...any) {
	line := "FAULT " + fmt.Sprintf(format, a...) + "\n"
	fmt.Print(line)
	fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Printf("figures: %v\n", err)
		return
	}
	defer fh.Close()
	fh.WriteString(line)
}
