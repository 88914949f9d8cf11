package netlink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dispatchRig is a Dispatcher fed by Receive from the fake kernel.
type dispatchRig struct {
	k *fakeKernel
	d *Dispatcher

	mu      sync.Mutex
	applied []Event
	replies []request // every request the kernel saw, in order
}

func newDispatchRig(t *testing.T, apply func(context.Context, Event) error, lost func(context.Context)) *dispatchRig {
	t.Helper()
	r := &dispatchRig{k: newFakeKernel(t)}
	c := r.k.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	r.d = NewDispatcher(ctx, testLogger(t), c, func(ctx context.Context, ev Event) error {
		r.mu.Lock()
		r.applied = append(r.applied, ev)
		r.mu.Unlock()
		return apply(ctx, ev)
	}, lost)
	done := make(chan error, 1)
	go func() { done <- c.Receive(ctx, r.d.Event) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Receive: %v", err)
		}
		r.d.Wait()
	})
	return r
}

// replied returns the *_DONE replies so far as "cmd id status" strings,
// keeping the ones seen earlier.
func (r *dispatchRig) replied() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.replies = append(r.replies, r.k.takeRequests()...)
	out := make([]string, 0, len(r.replies))
	for _, q := range r.replies {
		var status int32
		var id uint32
		for _, a := range q.Attrs {
			switch a.Type {
			case attrCmdStatus:
				status = int32(binary.NativeEndian.Uint32(a.Data))
			case attrDeviceID:
				id = binary.NativeEndian.Uint32(a.Data)
			}
		}
		out = append(out, fmt.Sprintf("%v %d %d", q.Cmd, id, status))
	}
	return out
}

// appliedTo returns the events applied to device so far.
func (r *dispatchRig) appliedTo(device string) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, ev := range r.applied {
		if ev.Device == device {
			out = append(out, ev)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
	}
}

// only keeps the replies to device id.
func only(replies []string, id uint32) []string {
	var out []string
	for _, r := range replies {
		var cmd string
		var got uint32
		var status int32
		if _, err := fmt.Sscanf(r, "%s %d %d", &cmd, &got, &status); err == nil && got == id {
			out = append(out, r)
		}
	}
	return out
}

const (
	stuckDevice = "tcm-user/1/stuck/rbd/pool/img;conf=/etc/ceph/silent.conf"
	goodDevice  = "tcm-user/1/good/file//var/lib/good.img"
	otherDevice = "tcm-user/1/other/file//var/lib/other.img"
)

// A device whose event takes long (an rbd open waiting for a silent
// cluster) holds up neither the events of other devices nor their
// replies; its own later events wait behind it and are answered in order.
func TestDispatcherDeviceHoldsUpNoOther(t *testing.T) {
	release := make(chan struct{})
	r := newDispatchRig(t, func(ctx context.Context, ev Event) error {
		if ev.Device == stuckDevice && ev.Cmd == CmdAddedDevice {
			<-release
		}
		return nil
	}, nil)
	r.k.multicast(eventMessage(CmdAddedDevice, deviceAttrs(stuckDevice, 0, 1)))
	r.k.multicast(eventMessage(CmdReconfigDevice, deviceAttrs(stuckDevice, 0, 1), attr(attrWriteCache, nlaU8(1))))
	r.k.multicast(eventMessage(CmdAddedDevice, deviceAttrs(goodDevice, 1, 2)))
	r.k.multicast(eventMessage(CmdRemovedDevice, deviceAttrs(goodDevice, 1, 2)))
	r.k.multicast(eventMessage(CmdAddedDevice, deviceAttrs(otherDevice, 2, 3)))

	want := []string{"ADDED_DEVICE_DONE 2 0", "REMOVED_DEVICE_DONE 2 0"}
	waitFor(t, "replies to the other devices", func() bool {
		return slices.Equal(only(r.replied(), 2), want) && len(only(r.replied(), 3)) == 1
	})
	if got := only(r.replied(), 1); len(got) != 0 {
		t.Fatalf("stuck device answered before its event was applied: %v", got)
	}
	if got := r.appliedTo(stuckDevice); len(got) != 1 {
		t.Fatalf("%d events applied to the stuck device, want 1: its RECONFIG must wait for its ADDED", len(got))
	}

	close(release)
	want = []string{"ADDED_DEVICE_DONE 1 0", "RECONFIG_DEVICE_DONE 1 0"}
	waitFor(t, "the stuck device's replies, in order", func() bool { return slices.Equal(only(r.replied(), 1), want) })
}

// Many devices' events interleaved, each applied after a random delay:
// every device's events are applied and answered in the order sent.
func TestDispatcherKeepsEachDevicesOrder(t *testing.T) {
	const devices, perDevice = 4, 40
	var running, most int
	var mu sync.Mutex
	r := newDispatchRig(t, func(ctx context.Context, ev Event) error {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		mu.Lock()
		running--
		mu.Unlock()
		// The status tells the replies apart: -(sequence number).
		return syscall.Errno(*ev.Size)
	}, nil)
	dev := func(i int) string { return fmt.Sprintf("tcm-user/1/d%d/file//d%d.img", i, i) }
	for seq := 1; seq <= perDevice; seq++ {
		for i := range devices {
			r.k.multicast(eventMessage(CmdReconfigDevice, deviceAttrs(dev(i), uint32(i), uint32(i)), attr(attrDevSize, nlaU64(uint64(seq)))))
		}
		if seq%8 == 0 {
			// The fake socket holds 64 datagrams.
			waitFor(t, "events drained", func() bool { return len(r.replied()) >= seq*devices-16 })
		}
	}
	waitFor(t, "every reply", func() bool { return len(r.replied()) == devices*perDevice })
	for i := range devices {
		var want []string
		for seq := 1; seq <= perDevice; seq++ {
			want = append(want, fmt.Sprintf("RECONFIG_DEVICE_DONE %d %d", i, -seq))
		}
		if got := only(r.replied(), uint32(i)); !slices.Equal(got, want) {
			t.Errorf("device %d answered out of order:\n got %v\nwant %v", i, got, want)
		}
		for n, ev := range r.appliedTo(dev(i)) {
			if *ev.Size != uint64(n+1) {
				t.Fatalf("device %d: event %d applied as number %d", i, *ev.Size, n+1)
			}
		}
	}
	if most < 2 {
		t.Errorf("at most %d events applied at once: devices were not handled concurrently", most)
	}
}

// Work queued with Do (adopting a device at start) keeps the device's
// order with its events, and holds up no other device.
func TestDispatcherDoKeepsOrderWithEvents(t *testing.T) {
	release := make(chan struct{})
	var order []string
	var mu sync.Mutex
	note := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	r := newDispatchRig(t, func(ctx context.Context, ev Event) error {
		note(ev.Cmd.String() + " " + ev.Device)
		return nil
	}, nil)
	r.d.Do(stuckDevice, func(ctx context.Context) {
		<-release
		note("adopt " + stuckDevice)
	})
	r.k.multicast(eventMessage(CmdRemovedDevice, deviceAttrs(stuckDevice, 0, 1)))
	r.k.multicast(eventMessage(CmdAddedDevice, deviceAttrs(goodDevice, 1, 2)))
	waitFor(t, "the other device answered", func() bool { return len(only(r.replied(), 2)) == 1 })
	if got := only(r.replied(), 1); len(got) != 0 {
		t.Fatalf("REMOVED answered before the adoption queued ahead of it ran: %v", got)
	}
	close(release)
	waitFor(t, "the adopted device's REMOVED answered", func() bool { return len(only(r.replied(), 1)) == 1 })
	mu.Lock()
	defer mu.Unlock()
	want := []string{"ADDED_DEVICE " + goodDevice, "adopt " + stuckDevice, "REMOVED_DEVICE " + stuckDevice}
	if !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
}

// A receive buffer overrun calls lost (the caller rescans); a malformed
// event naming its device is answered -EINVAL without being applied.
func TestDispatcherLostAndMalformedEvents(t *testing.T) {
	lost := make(chan struct{}, 1)
	r := newDispatchRig(t, func(ctx context.Context, ev Event) error {
		t.Errorf("malformed event applied: %+v", ev)
		return nil
	}, func(context.Context) { lost <- struct{}{} })
	r.k.send(datagram{err: os.NewSyscallError("recvmsg", unix.ENOBUFS)})
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("lost events not reported")
	}
	// ADDED without MINOR: malformed, but DEVICE_ID is there.
	r.k.multicast(eventMessage(CmdAddedDevice, attr(attrDevice, nlaString(goodDevice)), attr(attrDeviceID, nlaU32(9))))
	waitFor(t, "-EINVAL reply", func() bool {
		return slices.Equal(r.replied(), []string{fmt.Sprintf("ADDED_DEVICE_DONE 9 %d", -int32(unix.EINVAL))})
	})
}

func TestStatus(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int32
	}{
		{nil, 0},
		{fmt.Errorf("open: %w", syscall.ENOENT), -int32(syscall.ENOENT)},
		{errors.New("no errno"), -int32(syscall.EINVAL)},
		{fmt.Errorf("shutting down: %w", context.Canceled), -int32(syscall.EINTR)},
		{fmt.Errorf("open: %w", context.DeadlineExceeded), -int32(syscall.ETIMEDOUT)},
		{syscall.Errno(5000), -int32(syscall.EINVAL)},
	} {
		if got := Status(tt.err); got != tt.want {
			t.Errorf("Status(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
