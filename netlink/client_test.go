package netlink

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nlenc"
	"golang.org/x/sys/unix"
)

// receiver runs Client.Receive on its own goroutine and collects events.
type receiver struct {
	events chan Event
	cancel context.CancelFunc
	done   chan error

	once sync.Once
	err  error
}

func startReceive(t *testing.T, c *Client) *receiver {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &receiver{events: make(chan Event, 64), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Receive(ctx, func(ev Event) { r.events <- ev }) }()
	// Receive must be gone before the test ends: it logs into t.
	t.Cleanup(func() { r.stop(t) })
	return r
}

// next returns the next event, failing the test if none comes.
func (r *receiver) next(t *testing.T) Event {
	t.Helper()
	select {
	case ev := <-r.events:
		return ev
	case err := <-r.done:
		t.Fatalf("Receive returned %v while an event was expected", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return Event{}
}

// wait returns what Receive returned, failing the test if it does not
// return.
func (r *receiver) wait(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		select {
		case r.err = <-r.done:
		case <-time.After(5 * time.Second):
			r.err = errors.New("Receive did not return within 5s")
			t.Error(r.err)
		}
	})
	return r.err
}

// stop cancels Receive's context and waits for it.
func (r *receiver) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

// doneRequest is the *_DONE request the kernel expects
// (tcmu_genl_cmd_done reads CMD_STATUS as s32 and DEVICE_ID as u32).
func doneRequest(cmd Command, status int32, id uint32) request {
	return request{
		Family:  testFamily.ID,
		Flags:   netlink.Request | netlink.Acknowledge,
		Cmd:     cmd,
		Version: 2,
		Attrs: []netlink.Attribute{
			{Length: 8, Type: attrCmdStatus, Data: nlenc.Int32Bytes(status)},
			{Length: 8, Type: attrDeviceID, Data: nlenc.Uint32Bytes(id)},
		},
	}
}

func TestClientJoinsConfigGroupByID(t *testing.T) {
	k := newFakeKernel(t)
	k.client(t)
	if diff := cmp.Diff([]uint32{37}, k.mcast.joins); diff != "" {
		t.Errorf("joined groups mismatch (-want +got):\n%s", diff)
	}
}

func TestClientAnswersEvents(t *testing.T) {
	k := newFakeKernel(t)
	c := k.client(t)
	r := startReceive(t, c)
	dev := deviceAttrs(testDevice, 3, 7)

	tests := []struct {
		name      string
		event     genetlink.Message
		want      Event
		status    int32
		wantReply request
	}{
		{
			name:      "added accepted",
			event:     eventMessage(CmdAddedDevice, dev),
			want:      Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantReply: doneRequest(cmdAddedDeviceDone, 0, 7),
		},
		{
			name:  "added refused",
			event: eventMessage(CmdAddedDevice, deviceAttrs("tcm-user/2/bad", 4, 0xfffffffe)),
			want: Event{Cmd: CmdAddedDevice, Version: 2, Device: "tcm-user/2/bad", Minor: 4, DeviceID: 0xfffffffe,
				HasDeviceID: true},
			status:    -int32(unix.ENOENT),
			wantReply: doneRequest(cmdAddedDeviceDone, -int32(unix.ENOENT), 0xfffffffe),
		},
		{
			name:      "removed",
			event:     eventMessage(CmdRemovedDevice, dev),
			want:      Event{Cmd: CmdRemovedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantReply: doneRequest(cmdRemovedDeviceDone, 0, 7),
		},
		{
			name:  "reconfig dev_config refused",
			event: eventMessage(CmdReconfigDevice, dev, attr(attrDevCfg, nlaString("file//elsewhere"))),
			want: Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true,
				Config: ptr("file//elsewhere")},
			status:    -int32(unix.EINVAL),
			wantReply: doneRequest(cmdReconfigDeviceDone, -int32(unix.EINVAL), 7),
		},
		{
			name:  "reconfig dev_size after PAD",
			event: eventMessage(CmdReconfigDevice, dev, attr(attrPad, nil), attr(attrDevSize, nlaU64(8<<30))),
			want: Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true,
				Size: ptr(uint64(8 << 30))},
			wantReply: doneRequest(cmdReconfigDeviceDone, 0, 7),
		},
		{
			name:  "reconfig write cache",
			event: eventMessage(CmdReconfigDevice, dev, attr(attrWriteCache, nlaU8(1))),
			want: Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true,
				WriteCache: ptr(true)},
			wantReply: doneRequest(cmdReconfigDeviceDone, 0, 7),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k.multicast(tt.event)
			ev := r.next(t)
			if ev.Err != nil {
				t.Fatalf("event Err = %v", ev.Err)
			}
			if diff := cmp.Diff(tt.want, ev, cmpopts.IgnoreFields(Event{}, "Err")); diff != "" {
				t.Errorf("event mismatch (-want +got):\n%s", diff)
			}
			if got := k.takeRequests(); len(got) != 0 {
				t.Fatalf("requests before Reply: %+v", got)
			}
			if err := c.Reply(context.Background(), ev, tt.status); err != nil {
				t.Fatalf("Reply: %v", err)
			}
			if diff := cmp.Diff([]request{tt.wantReply}, k.takeRequests()); diff != "" {
				t.Errorf("reply mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Receive after cancel = %v, want nil", err)
	}
	if k.mcast.sends != 0 {
		t.Errorf("%d sends on the events socket, want 0", k.mcast.sends)
	}
}

func TestClientSetFeatures(t *testing.T) {
	wantRequest := request{
		Family:  testFamily.ID,
		Flags:   netlink.Request | netlink.Acknowledge,
		Cmd:     cmdSetFeatures,
		Version: 2,
		Attrs:   []netlink.Attribute{{Length: 5, Type: attrSuppKernCmdReply, Data: []byte{1}}},
	}
	tests := []struct {
		name    string
		errno   unix.Errno
		wantErr error
	}{
		{name: "acknowledged"},
		{name: "old kernel without SET_FEATURES", errno: unix.EOPNOTSUPP},
		{name: "no CAP_NET_ADMIN", errno: unix.EPERM, wantErr: unix.EPERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel(t)
			k.answer(cmdSetFeatures, tt.errno)
			c := k.client(t)
			err := c.SetFeatures(context.Background())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("SetFeatures() = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff([]request{wantRequest}, k.takeRequests()); diff != "" {
				t.Errorf("request mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("cancelled context sends nothing", func(t *testing.T) {
		k := newFakeKernel(t)
		c := k.client(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.SetFeatures(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("SetFeatures() = %v, want context.Canceled", err)
		}
		if got := k.takeRequests(); len(got) != 0 {
			t.Errorf("requests = %+v, want none", got)
		}
	})
}

func TestClientReplyRefuses(t *testing.T) {
	valid := Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true}
	with := func(f func(*Event)) Event {
		ev := valid
		f(&ev)
		return ev
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		ev       Event
		status   int32
		wantErr  error  // errors.Is target
		wantText string // or a substring
	}{
		{
			name: "version 1 event needs no reply",
			ev:   with(func(ev *Event) { ev.Version = 1 }),
		},
		{
			name:    "event without DEVICE_ID",
			ev:      with(func(ev *Event) { ev.HasDeviceID, ev.Err = false, errors.New("missing [DEVICE_ID]") }),
			status:  -int32(unix.EINVAL),
			wantErr: ErrNoDeviceID,
		},
		{
			name:    "events-lost notice",
			ev:      Event{Err: ErrEventsLost},
			wantErr: ErrNoDeviceID,
		},
		{
			name:     "non-event command",
			ev:       with(func(ev *Event) { ev.Cmd = cmdSetFeatures }),
			wantText: "no reply command",
		},
		{
			name:     "positive status",
			ev:       valid,
			status:   5,
			wantText: "status 5 is not 0 or -errno",
		},
		{
			name:     "status beyond MAX_ERRNO",
			ev:       valid,
			status:   -4096,
			wantText: "status -4096 is not 0 or -errno",
		},
		{
			name:    "cancelled context",
			ctx:     cancelled,
			ev:      valid,
			wantErr: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel(t)
			c := k.client(t)
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			err := c.Reply(ctx, tt.ev, tt.status)
			switch {
			case tt.wantErr == nil && tt.wantText == "" && err != nil:
				t.Errorf("Reply() = %v, want nil", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("Reply() = %v, want %v", err, tt.wantErr)
			case tt.wantText != "" && (err == nil || !strings.Contains(err.Error(), tt.wantText)):
				t.Errorf("Reply() = %v, want an error containing %q", err, tt.wantText)
			}
			if got := k.takeRequests(); len(got) != 0 {
				t.Errorf("requests = %+v, want none", got)
			}
		})
	}
	t.Run("kernel not waiting", func(t *testing.T) {
		k := newFakeKernel(t)
		k.answer(cmdAddedDeviceDone, unix.ENODEV)
		c := k.client(t)
		if err := c.Reply(context.Background(), valid, 0); !errors.Is(err, unix.ENODEV) {
			t.Errorf("Reply() = %v, want ENODEV", err)
		}
		if diff := cmp.Diff([]request{doneRequest(cmdAddedDeviceDone, 0, 7)}, k.takeRequests()); diff != "" {
			t.Errorf("request mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestClientReceiveSurvivesBadInput(t *testing.T) {
	k := newFakeKernel(t)
	c := k.client(t)
	r := startReceive(t, c)

	// Receive buffer overrun.
	k.send(datagram{err: os.NewSyscallError("recvmsg", unix.ENOBUFS)})
	// A message too short for a genl header.
	k.send(datagram{msgs: []netlink.Message{{Header: netlink.Header{Type: netlink.HeaderType(testFamily.ID)}, Data: []byte{1, 2}}}})
	// A message of another family.
	other, _ := eventMessage(CmdAddedDevice, deviceAttrs("tcm-user/9/x", 9, 9)).MarshalBinary()
	k.send(datagram{msgs: []netlink.Message{{Header: netlink.Header{Type: 0x10}, Data: other}}})
	// A netlink error message, which nothing on this socket asked for.
	k.send(datagram{msgs: []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: nlenc.Int32Bytes(-int32(unix.EIO))}}})
	// A malformed event: DEVICE without its NUL, DEVICE_ID intact.
	k.multicast(eventMessage(CmdAddedDevice, attr(attrDevice, []byte("tcm-user/1/a")), attr(attrMinor, nlaU32(1)), attr(attrDeviceID, nlaU32(11))))
	// A malformed event without a DEVICE_ID.
	k.multicast(eventMessage(CmdRemovedDevice, attr(attrDevice, nlaString("tcm-user/1/a")), attr(attrMinor, nlaU32(1))))
	// And a good one after all that.
	k.multicast(eventMessage(CmdAddedDevice, deviceAttrs(testDevice, 3, 7)))

	lost := r.next(t)
	if !errors.Is(lost.Err, ErrEventsLost) || !errors.Is(lost.Err, unix.ENOBUFS) {
		t.Errorf("first event Err = %v, want ErrEventsLost wrapping ENOBUFS", lost.Err)
	}
	bad := r.next(t)
	if bad.Err == nil || !strings.Contains(bad.Err.Error(), "DEVICE: string not NUL-terminated") {
		t.Errorf("second event Err = %v, want DEVICE not NUL-terminated", bad.Err)
	}
	if !bad.HasDeviceID || bad.DeviceID != 11 {
		t.Errorf("second event DEVICE_ID = %d (known %v), want 11", bad.DeviceID, bad.HasDeviceID)
	}
	noID := r.next(t)
	if noID.Err == nil || noID.HasDeviceID {
		t.Errorf("third event = %+v, want an error without DEVICE_ID", noID)
	}
	good := r.next(t)
	want := Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true}
	if diff := cmp.Diff(want, good, cmpopts.EquateErrors()); diff != "" {
		t.Errorf("last event mismatch (-want +got):\n%s", diff)
	}

	// The caller answers what it can: -EINVAL to the malformed event with a
	// DEVICE_ID, nothing to the others.
	if err := c.Reply(context.Background(), bad, -int32(unix.EINVAL)); err != nil {
		t.Fatalf("Reply to malformed event: %v", err)
	}
	if err := c.Reply(context.Background(), noID, -int32(unix.EINVAL)); !errors.Is(err, ErrNoDeviceID) {
		t.Errorf("Reply to event without DEVICE_ID = %v, want ErrNoDeviceID", err)
	}
	if diff := cmp.Diff([]request{doneRequest(cmdAddedDeviceDone, -int32(unix.EINVAL), 11)}, k.takeRequests()); diff != "" {
		t.Errorf("replies mismatch (-want +got):\n%s", diff)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Receive after cancel = %v, want nil", err)
	}
}

func TestClientReceiveReturns(t *testing.T) {
	added := eventMessage(CmdAddedDevice, deviceAttrs(testDevice, 3, 7))

	t.Run("close unblocks a blocked receive", func(t *testing.T) {
		k := newFakeKernel(t)
		c := k.client(t)
		r := startReceive(t, c)
		k.multicast(added)
		r.next(t) // Receive is running; now it blocks for the next datagram.
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := r.wait(t); err != nil {
			t.Errorf("Receive after Close = %v, want nil", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close = %v, want nil", err)
		}
	})
	t.Run("receive after close returns at once", func(t *testing.T) {
		k := newFakeKernel(t)
		c := k.client(t)
		_ = c.Close()
		if err := c.Receive(context.Background(), func(Event) { t.Error("event after Close") }); err != nil {
			t.Errorf("Receive after Close = %v, want nil", err)
		}
	})
	t.Run("cancel unblocks and the client stays usable", func(t *testing.T) {
		k := newFakeKernel(t)
		c := k.client(t)
		r := startReceive(t, c)
		k.multicast(added)
		r.next(t)
		if err := r.stop(t); err != nil {
			t.Errorf("Receive after cancel = %v, want nil", err)
		}
		r = startReceive(t, c)
		k.multicast(added)
		if ev := r.next(t); ev.Err != nil || ev.DeviceID != 7 {
			t.Errorf("event after restart = %+v", ev)
		}
	})
	t.Run("stale deadline does not end receive", func(t *testing.T) {
		k := newFakeKernel(t)
		c := k.client(t)
		r := startReceive(t, c)
		k.multicast(added)
		r.next(t)
		// As if an earlier Receive's context had ended late.
		_ = k.mcast.SetReadDeadline(time.Unix(1, 0))
		k.multicast(added)
		if ev := r.next(t); ev.Err != nil {
			t.Errorf("event after stale deadline Err = %v", ev.Err)
		}
	})
	t.Run("socket failure ends receive", func(t *testing.T) {
		k := newFakeKernel(t)
		c := k.client(t)
		r := startReceive(t, c)
		k.send(datagram{err: os.NewSyscallError("recvmsg", unix.EBADF)})
		if err := r.wait(t); !errors.Is(err, unix.EBADF) {
			t.Errorf("Receive = %v, want EBADF", err)
		}
	})
}

func TestNewClientFails(t *testing.T) {
	t.Run("family not registered", func(t *testing.T) {
		k := newFakeKernel(t)
		requests := genltest.Dial(func(genetlink.Message, netlink.Message) ([]genetlink.Message, error) {
			return nil, genltest.Error(int(unix.ENOENT))
		})
		_, err := newClient(testLogger(t), k.eventsConn(), requests, FamilyName, GroupName)
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "is its module loaded") {
			t.Errorf("newClient() = %v, want ENOENT with a hint", err)
		}
	})
	t.Run("no config group", func(t *testing.T) {
		k := newFakeKernel(t)
		fam := testFamily
		fam.Groups = fam.Groups[:1]
		_, err := newClient(testLogger(t), k.eventsConn(), k.requestsConn(fam), FamilyName, GroupName)
		if err == nil || !strings.Contains(err.Error(), `find multicast group "config"`) {
			t.Errorf("newClient() = %v, want a missing group error", err)
		}
		if len(k.mcast.joins) != 0 {
			t.Errorf("joined %v, want nothing", k.mcast.joins)
		}
	})
}
