package handlertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gotcmu/gotcmu/handler"
)

// sliceBackend is the simplest correct backend: a byte slice under a
// lock, each IO completed on its own goroutine. With a fault set it breaks
// one promise, to show that the suite notices.
type sliceBackend struct {
	mu    sync.RWMutex
	data  []byte
	fault string
}

func (b *sliceBackend) Limits() handler.Limits {
	return handler.Limits{Discard: true, DiscardZeroes: true, WriteSame: true, CompareAndWrite: true}
}

func (b *sliceBackend) Close() error { return nil }

func (b *sliceBackend) Submit(io *handler.IO) {
	go func() {
		io.Done(b.do(io))
		if b.fault == "double_done" && io.Op == handler.OpWrite {
			io.Done(nil)
		}
	}()
}

func (b *sliceBackend) inRange(off, n int64) error {
	if b.fault == "no_range_check" {
		return nil
	}
	if off < 0 || n < 0 || off > int64(len(b.data))-n {
		return fmt.Errorf("range %d+%d: %w", off, n, syscall.EINVAL)
	}
	return nil
}

func (b *sliceBackend) do(io *handler.IO) error {
	var iovBytes []byte
	for _, v := range io.Iov {
		iovBytes = append(iovBytes, v...)
		if b.fault == "first_iovec_only" {
			break
		}
	}
	if io.Op == handler.OpFlush {
		return nil
	}
	if err := b.inRange(io.Off, io.Len); err != nil {
		return err
	}
	need := map[handler.Op]int64{handler.OpRead: io.Len, handler.OpWrite: io.Len, handler.OpWriteSame: 1, handler.OpCompareAndWrite: 2 * io.Len}[io.Op]
	if int64(len(iovBytes)) < need && b.fault != "first_iovec_only" {
		return fmt.Errorf("iovecs too short: %w", syscall.EINVAL)
	}
	dev := func() []byte { return b.data[io.Off : io.Off+io.Len] }
	switch io.Op {
	case handler.OpRead:
		b.mu.RLock()
		defer b.mu.RUnlock()
		src := dev()
		for _, v := range io.Iov {
			src = src[copy(v, src):]
		}
	case handler.OpWrite:
		b.mu.Lock()
		defer b.mu.Unlock()
		copy(dev(), iovBytes)
	case handler.OpDiscard:
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.fault != "discard_keeps_data" {
			clear(dev())
		}
	case handler.OpWriteSame:
		b.mu.Lock()
		defer b.mu.Unlock()
		for d := dev(); len(d) > 0; {
			d = d[copy(d, iovBytes):]
		}
	case handler.OpCompareAndWrite:
		b.mu.Lock()
		defer b.mu.Unlock()
		for i, c := range dev() {
			if c != iovBytes[i] {
				io.MiscompareOffset = int64(i)
				if b.fault == "miscompare_offset_in_blocks" {
					io.MiscompareOffset = int64(i / 512)
				}
				return fmt.Errorf("compare: %w", syscall.EILSEQ)
			}
		}
		copy(dev(), iovBytes[io.Len:])
	default:
		return fmt.Errorf("op %d: %w", io.Op, syscall.EOPNOTSUPP)
	}
	return nil
}

func (b *sliceBackend) Status(_ context.Context, off, n int64) (bool, int64, error) {
	if err := b.inRange(off, n); err != nil {
		return false, 0, err
	}
	return true, n, nil
}

func (b *sliceBackend) Resize(size int64) error {
	if size < 0 {
		return fmt.Errorf("resize to %d: %w", size, syscall.EINVAL)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if size > int64(len(b.data)) {
		b.data = append(b.data, make([]byte, size-int64(len(b.data)))...)
	}
	b.data = b.data[:size]
	return nil
}

func openSlice(fault string) func(t *testing.T, size int64) handler.Backend {
	return func(t *testing.T, size int64) handler.Backend {
		return &sliceBackend{data: make([]byte, size), fault: fault}
	}
}

func TestBackendAcceptsCorrectBackend(t *testing.T) {
	TestBackend(t, openSlice(""))
}

// faultEnv names the fault a re-executed test binary injects.
const faultEnv = "HANDLERTEST_FAULT"

// TestBackendWithFault is the body TestSuiteCatchesBrokenBackends runs in
// a child process: a broken backend may panic or hang, which must not take
// this test binary down.
func TestBackendWithFault(t *testing.T) {
	fault := os.Getenv(faultEnv)
	if fault == "" {
		t.Skip("only runs in a child of TestSuiteCatchesBrokenBackends")
	}
	TestBackend(t, openSlice(fault))
}

func TestSuiteCatchesBrokenBackends(t *testing.T) {
	tests := []struct {
		fault string
		want  string // in the child's output
	}{
		{"double_done", "Done called 2 times"},
		{"first_iovec_only", "same layout: byte at device offset 2048 (block 4 + 0) is 0x00"},
		{"discard_keeps_data", "--- FAIL: TestBackendWithFault/discard"},
		{"miscompare_offset_in_blocks", "MiscompareOffset = 2, want 1234"},
		{"no_range_check", "panic: runtime error: slice bounds out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBackendWithFault$", "-test.v")
			cmd.Env = append(os.Environ(), faultEnv+"="+tt.fault)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if err == nil {
				t.Fatalf("suite passed a backend with fault %s:\n%s", tt.fault, out.String())
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("suite failed, but its output lacks %q:\n%s", tt.want, out.String())
			}
		})
	}
}
