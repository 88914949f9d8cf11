// Package ackstream runs `ackwriter write` in the background and measures
// what its ack log says: writes acknowledged over time, stalls, the time
// until full speed; and runs `ackwriter verify` at the end.
package ackstream

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

// Stream is one `ackwriter write` in the background and what its ack log
// says, sampled every 100 ms.
type Stream struct {
	Name    string
	Dev     string
	LogPath string
	OutPath string
	cmd     *exec.Cmd
	Start   time.Time
	exited  chan struct{}
	waitErr error

	mu       sync.Mutex
	samples  []Sample
	stopTail chan struct{}
	tailDone chan struct{}
}

// Start starts ackwriter on blocks 4 KiB blocks at offset of dev.
func Start(ackwriter, dev, dir, name string, offset int64, blocks, depth int) (*Stream, error) {
	s := &Stream{
		Name: name, Dev: dev,
		LogPath: filepath.Join(dir, name+".ack"), OutPath: filepath.Join(dir, name+"-write.txt"),
		exited: make(chan struct{}), stopTail: make(chan struct{}), tailDone: make(chan struct{}),
	}
	out, err := os.Create(s.OutPath)
	if err != nil {
		return nil, err
	}
	// -give-up 170s: a write failing that long ends the stream (BUSY is
	// retried by the initiator for 180 s before it fails a command).
	s.cmd = exec.Command(ackwriter, "write", "-dev", dev, "-log", s.LogPath,
		"-blocks", strconv.Itoa(blocks), "-offset", strconv.FormatInt(offset, 10),
		"-depth", strconv.Itoa(depth), "-duration", "600s", "-give-up", "170s")
	s.cmd.Stdout, s.cmd.Stderr = out, out
	os.Remove(s.LogPath)
	s.Start = time.Now()
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

// Since is the time since the stream started.
func (s *Stream) Since(t time.Time) time.Duration { return t.Sub(s.Start) }

// tail counts the "A " records the writer appends to its log.
func (s *Stream) tail() {
	defer close(s.tailDone)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var f *os.File
	var n int64
	var partial []byte
	buf := make([]byte, 1<<16)
	for {
		if f == nil {
			f, _ = os.Open(s.LogPath)
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
		s.samples = append(s.samples, Sample{time.Since(s.Start), n})
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

// Snapshot returns the samples so far.
func (s *Stream) Snapshot() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.samples...)
}

// Acked returns the writes acknowledged so far.
func (s *Stream) Acked() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return 0
	}
	return s.samples[len(s.samples)-1].Acked
}

// WaitAcked waits until n writes are acknowledged, the writer exits or
// the time runs out; true in the first case.
func (s *Stream) WaitAcked(ctx context.Context, n int64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if s.Acked() >= n {
			return true
		}
		select {
		case <-s.exited:
			time.Sleep(200 * time.Millisecond) // the tail's last read
			return s.Acked() >= n
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

// WriteResult is how the writer ended.
type WriteResult struct {
	ExitErr  error // nil: exit 0
	Stopped  bool  // it ended within the time given after SIGTERM
	Errors   int64 // writes that failed and were retried
	Messages []string
}

var (
	reErrors  = regexp.MustCompile(`errors=(\d+)`)
	reRetried = regexp.MustCompile(`write block \d+ seq \d+: (.*) \(retrying\)`)
)

// Stop ends the writer with SIGTERM (writes in flight finish, nothing new
// starts), and SIGKILL after d; then stops the tail.
func (s *Stream) Stop(d time.Duration) WriteResult {
	var r WriteResult
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		r.Stopped = true
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
		r.ExitErr = s.waitErr
	default:
		r.ExitErr = errors.New("still running after SIGKILL (a write stuck in the kernel)")
	}
	out, _ := os.ReadFile(s.OutPath)
	if m := reErrors.FindAllSubmatch(out, -1); len(m) > 0 {
		r.Errors, _ = strconv.ParseInt(string(m[len(m)-1][1]), 10, 64)
	}
	seen := map[string]bool{}
	for _, m := range reRetried.FindAllSubmatch(out, -1) {
		if msg := string(m[1]); !seen[msg] {
			seen[msg] = true
			r.Messages = append(r.Messages, msg)
		}
	}
	return r
}

// VerifyResult is what `ackwriter verify` found.
type VerifyResult struct {
	Line string // "acknowledged=N verified=N lost=N ..."
	Err  error  // nil: exit 0, nothing lost
}

var reVerify = regexp.MustCompile(`acknowledged=.*`)

// VerifyTimeout bounds `ackwriter verify` in Verify. It reads the region a
// block at a time: 64 MiB through iSCSI to a TCG guest took longer than
// 120 s (the partition scenario's boot of 2026-12-05 12:36).
var VerifyTimeout = 120 * time.Second

// Verify runs `ackwriter verify` over the stream's log.
func (s *Stream) Verify(ackwriter, dir string) VerifyResult {
	ctx, cancel := context.WithTimeout(context.Background(), VerifyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ackwriter, "verify", "-dev", s.Dev, "-log", s.LogPath)
	out, err := cmd.CombinedOutput()
	os.WriteFile(filepath.Join(dir, s.Name+"-verify.txt"), out, 0o644)
	line := ""
	if m := reVerify.FindAll(out, -1); len(m) > 0 {
		line = string(m[len(m)-1])
	}
	if err != nil && line == "" {
		line = fmt.Sprintf("verify failed (%v): %s", err, bytes.TrimSpace(out))
	}
	return VerifyResult{Line: line, Err: err}
}
