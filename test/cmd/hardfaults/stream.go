package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// stream is one `ackwriter write` in the background and what its ack log
// says, sampled every 100 ms.
type stream struct {
	name    string
	dev     string
	logPath string
	outPath string
	cmd     *exec.Cmd
	start   time.Time
	exited  chan struct{}
	waitErr error

	mu       sync.Mutex
	samples  []sample
	stopTail chan struct{}
	tailDone chan struct{}
}

// startStream starts ackwriter on blocks 4 KiB blocks at offset of dev.
func startStream(ackwriter, dev, dir, name string, offset int64, blocks, depth int) (*stream, error) {
	s := &stream{
		name: name, dev: dev,
		logPath: filepath.Join(dir, name+".ack"), outPath: filepath.Join(dir, name+"-write.txt"),
		exited: make(chan struct{}), stopTail: make(chan struct{}), tailDone: make(chan struct{}),
	}
	out, err := os.Create(s.outPath)
	if err != nil {
		return nil, err
	}
	// -give-up 170s: a write failing that long ends the stream (BUSY is
	// retried by the initiator for 180 s before it fails a command).
	s.cmd = exec.Command(ackwriter, "write", "-dev", dev, "-log", s.logPath,
		"-blocks", strconv.Itoa(blocks), "-offset", strconv.FormatInt(offset, 10),
		"-depth", strconv.Itoa(depth), "-duration", "600s", "-give-up", "170s")
	s.cmd.Stdout, s.cmd.Stderr = out, out
	os.Remove(s.logPath)
	s.start = time.Now()
	if err := s.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start ackwriter: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	go s.tail()
	return s, nil
}

// since is the time since the stream started.
func (s *stream) since(t time.Time) time.Duration { return t.Sub(s.start) }

// tail counts the "A " records the writer appends to its log.
func (s *stream) tail() {
	defer close(s.tailDone)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var f *os.File
	var n int64
	var partial []byte
	buf := make([]byte, 1<<16)
	for {
		if f == nil {
			f, _ = os.Open(s.logPath)
		}
		if f != nil {
			for {
				k, err := f.Read(buf)
				// data starts at the start of a line: partial holds what
				// followed the last newline read before.
				data := append(partial, buf[:k]...)
				last := bytes.LastIndexByte(data, '\n')
				n += countAcks(data[:last+1])
				partial = append([]byte(nil), data[last+1:]...)
				if k == 0 || err != nil {
					break
				}
			}
		}
		s.mu.Lock()
		s.samples = append(s.samples, sample{time.Since(s.start), n})
		s.mu.Unlock()
		select {
		case <-s.stopTail:
			if f != nil {
				f.Close()
			}
			return
		case <-tick.C:
		}
	}
}

// countAcks counts the lines of whole lines that are "A " records.
func countAcks(lines []byte) int64 {
	n := int64(bytes.Count(lines, []byte("\nA ")))
	if bytes.HasPrefix(lines, []byte("A ")) {
		n++
	}
	return n
}

// snapshot returns the samples so far.
func (s *stream) snapshot() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.samples...)
}

// acked returns the writes acknowledged so far.
func (s *stream) acked() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return 0
	}
	return s.samples[len(s.samples)-1].acked
}

// waitAcked waits until n writes are acknowledged, the writer exits or
// the time runs out; true in the first case.
func (s *stream) waitAcked(ctx context.Context, n int64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if s.acked() >= n {
			return true
		}
		select {
		case <-s.exited:
			time.Sleep(200 * time.Millisecond) // the tail's last read
			return s.acked() >= n
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

// writeResult is how the writer ended.
type writeResult struct {
	exitErr  error // nil: exit 0
	stopped  bool  // it ended within the time given after SIGTERM
	errors   int64 // writes that failed and were retried
	messages []string
}

var (
	reErrors  = regexp.MustCompile(`errors=(\d+)`)
	reRetried = regexp.MustCompile(`write block \d+ seq \d+: (.*) \(retrying\)`)
)

// stop ends the writer with SIGTERM (writes in flight finish, nothing new
// starts), and SIGKILL after d; then stops the tail.
func (s *stream) stop(d time.Duration) writeResult {
	var r writeResult
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		r.stopped = true
	case <-time.After(d):
		s.cmd.Process.Kill()
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
		}
	}
	time.Sleep(200 * time.Millisecond)
	close(s.stopTail)
	<-s.tailDone
	select {
	case <-s.exited:
		r.exitErr = s.waitErr
	default:
		r.exitErr = errors.New("still running after SIGKILL (a write stuck in the kernel)")
	}
	out, _ := os.ReadFile(s.outPath)
	if m := reErrors.FindAllSubmatch(out, -1); len(m) > 0 {
		r.errors, _ = strconv.ParseInt(string(m[len(m)-1][1]), 10, 64)
	}
	seen := map[string]bool{}
	for _, m := range reRetried.FindAllSubmatch(out, -1) {
		if msg := string(m[1]); !seen[msg] {
			seen[msg] = true
			r.messages = append(r.messages, msg)
		}
	}
	return r
}

// verifyResult is what `ackwriter verify` found.
type verifyResult struct {
	line string // "acknowledged=N verified=N lost=N ..."
	err  error  // nil: exit 0, nothing lost
}

var reVerify = regexp.MustCompile(`acknowledged=.*`)

// verify runs `ackwriter verify` over the stream's log.
func (s *stream) verify(ackwriter, dir string) verifyResult {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ackwriter, "verify", "-dev", s.dev, "-log", s.logPath)
	out, err := cmd.CombinedOutput()
	os.WriteFile(filepath.Join(dir, s.name+"-verify.txt"), out, 0o644)
	line := ""
	if m := reVerify.FindAll(out, -1); len(m) > 0 {
		line = string(m[len(m)-1])
	}
	if err != nil && line == "" {
		line = "verify failed: " + string(bytes.TrimSpace(out))
	}
	return verifyResult{line: line, err: err}
}
