package handler_test

import (
	"context"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/mem"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

// flakyBackend is mem with every IO failed by errno while one is set.
type flakyBackend struct {
	handler.Backend
	errno *atomic.Int64
}

func (b flakyBackend) Submit(io *handler.IO) {
	if e := b.errno.Load(); e != 0 {
		io.Done(syscall.Errno(e))
		return
	}
	b.Backend.Submit(io)
}

// The Manager gives its devices the bounds of BUSY, also while they run,
// and its status says how long a device has answered BUSY and that it
// escalated.
func TestManagerBusyBoundsInStatus(t *testing.T) {
	var errno atomic.Int64
	flaky := handler.Handler{
		Subtype:     "flaky",
		CheckConfig: func(context.Context, string) error { return nil },
		Open: func(_ context.Context, info handler.DeviceInfo, _ zerolog.Logger) (handler.Backend, error) {
			be, err := mem.New(info.Size)
			return flakyBackend{be, &errno}, err
		},
	}
	k := newFakeKernel(t)
	m := handler.NewManager(zerolog.Nop(), k, []handler.Handler{flaky})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	m.SetBusyBounds(handler.BusyBounds{Transient: time.Hour})
	ref, fk := k.create("tcm-user/1/f0/flaky/x", 1<<20)
	if err := m.Add(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	write := func() uiotest.Completion {
		t.Helper()
		if _, err := fk.Submit(uiotest.Request{CDB: rw10(0x2a, 0), DataOut: blockData(0, 1)}); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-fk.Completions():
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no completion within 10s")
			return uiotest.Completion{}
		}
	}
	errno.Store(int64(syscall.EAGAIN))
	if c := write(); c.Status != 0x08 {
		t.Fatalf("write failing with EAGAIN: status %#x, want BUSY", c.Status)
	}
	if st := state(m, "f0"); st.State != "running" || !strings.Contains(st.Reason, "answering BUSY") || !strings.Contains(st.Reason, "escalates after 1h0m0s") {
		t.Fatalf("status %+v", st)
	}
	// A bound shorter than the time between two commands: the next
	// BUSY is past it.
	m.SetBusyBounds(handler.BusyBounds{Transient: time.Nanosecond})
	if c := write(); c.Status != 0x02 || len(c.Sense) < 14 || c.Sense[2]&0xf != 0x2 || c.Sense[12] != 0x04 || c.Sense[13] != 0x0c {
		t.Fatalf("write past the bound: status %#x sense % x, want NOT READY 04/0C", c.Status, c.Sense)
	}
	if st := state(m, "f0"); !strings.Contains(st.Reason, "answering NOT READY") {
		t.Errorf("status %+v", st)
	}
	for _, s := range m.Stats() {
		if s.Name == "f0" && (s.Snapshot.BusyEscalations != 1 || s.Snapshot.BusyFor <= 0) {
			t.Errorf("stats: %d escalations, busy for %v", s.Snapshot.BusyEscalations, s.Snapshot.BusyFor)
		}
	}
	errno.Store(0)
	if c := write(); c.Status != 0 {
		t.Fatalf("write: status %#x", c.Status)
	}
	if st := state(m, "f0"); st.Reason != "" {
		t.Errorf("status after serving again: %+v", st)
	}
}
