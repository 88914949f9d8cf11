package netlink

import (
	"errors"
	"fmt"
	"iter"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// The fake TCM-USER family: IDs as a kernel might allocate them, the
// "config" group above 32 (which the legacy bind bitmask cannot reach) and
// not first in the list.
var testFamily = genetlink.Family{
	ID:      0x1c,
	Name:    FamilyName,
	Version: 2,
	Groups: []genetlink.MulticastGroup{
		{ID: 36, Name: "other"},
		{ID: 37, Name: GroupName},
	},
}

// A request is what the fake kernel saw of one message on the requests
// socket.
type request struct {
	Family  uint16
	Flags   netlink.HeaderFlags
	Cmd     Command
	Version uint8
	Attrs   []netlink.Attribute
}

// fakeKernel plays target_core_user's side of the TCM-USER family. The
// requests socket is served by genltest (GET_FAMILY through ServeFamily, then
// every request recorded and acknowledged, or answered with a chosen
// errno); the events socket is a multicastSocket, which genltest cannot
// provide because nltest's socket has no group membership and its Close
// does not wake a blocked Receive.
type fakeKernel struct {
	t     *testing.T
	mcast *multicastSocket

	mu       sync.Mutex
	requests []request
	errno    map[Command]unix.Errno // answer these commands with -errno
}

func newFakeKernel(t *testing.T) *fakeKernel {
	return &fakeKernel{t: t, mcast: newMulticastSocket(), errno: make(map[Command]unix.Errno)}
}

// serve is the genltest.Func behind ServeFamily.
func (k *fakeKernel) serve(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error) {
	attrs, err := netlink.UnmarshalAttributes(greq.Data)
	if err != nil {
		return nil, fmt.Errorf("fake kernel: bad request attributes: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.requests = append(k.requests, request{
		Family:  uint16(nreq.Header.Type),
		Flags:   nreq.Header.Flags,
		Cmd:     Command(greq.Header.Command),
		Version: greq.Header.Version,
		Attrs:   attrs,
	})
	// genl answers an NLM_F_ACK request with an NLMSG_ERROR carrying 0 or
	// -errno; genltest.Error(0) is that acknowledgement.
	return nil, genltest.Error(int(k.errno[Command(greq.Header.Command)]))
}

// answer makes the kernel answer cmd with -errno.
func (k *fakeKernel) answer(cmd Command, errno unix.Errno) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.errno[cmd] = errno
}

// takeRequests returns and forgets the requests seen so far.
func (k *fakeKernel) takeRequests() []request {
	k.mu.Lock()
	defer k.mu.Unlock()
	r := k.requests
	k.requests = nil
	return r
}

// client returns a Client on the fake kernel, closed when the test ends.
func (k *fakeKernel) client(t *testing.T) *Client {
	t.Helper()
	c, err := newClient(testLogger(t), k.eventsConn(), k.requestsConn(testFamily), FamilyName, GroupName)
	if err != nil {
		t.Fatalf("newClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (k *fakeKernel) eventsConn() *genetlink.Conn {
	return genetlink.NewConn(netlink.NewConn(k.mcast, 1))
}

func (k *fakeKernel) requestsConn(fam genetlink.Family) *genetlink.Conn {
	return genltest.Dial(genltest.ServeFamily(fam, k.serve))
}

// multicast sends an event to the "config" group as genlmsg_multicast
// does: one message per datagram, nlmsg_pid 0, the family ID as type.
func (k *fakeKernel) multicast(m genetlink.Message) {
	k.t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		k.t.Fatalf("marshal event: %v", err)
	}
	k.send(datagram{msgs: []netlink.Message{{
		Header: netlink.Header{Type: netlink.HeaderType(testFamily.ID)},
		Data:   b,
	}}})
}

// send delivers a raw datagram (or receive error) to the "config" group.
func (k *fakeKernel) send(d datagram) {
	k.t.Helper()
	if err := k.mcast.deliver(testFamily.Groups[1].ID, d); err != nil {
		k.t.Fatal(err)
	}
}

// A datagram is what one recvmsg on the events socket yields: messages, or
// an error.
type datagram struct {
	msgs []netlink.Message
	err  error
}

// multicastSocket is a netlink.Socket with what the events socket needs
// from the kernel: group membership by ID, datagrams delivered only to
// joined groups, read deadlines, and a Close that wakes a blocked Receive.
type multicastSocket struct {
	inbox  chan datagram
	closed chan struct{}
	kick   chan struct{} // wakes Receive to re-read the deadline

	mu       sync.Mutex
	groups   map[uint32]bool
	joins    []uint32
	deadline time.Time
	sends    int
	once     sync.Once
}

func newMulticastSocket() *multicastSocket {
	return &multicastSocket{
		inbox:  make(chan datagram, 64),
		closed: make(chan struct{}),
		kick:   make(chan struct{}, 1),
		groups: make(map[uint32]bool),
	}
}

func (s *multicastSocket) deliver(group uint32, d datagram) error {
	s.mu.Lock()
	joined := s.groups[group]
	s.mu.Unlock()
	if !joined {
		return fmt.Errorf("fake kernel: no socket joined group %d", group)
	}
	select {
	case s.inbox <- d:
		return nil
	default:
		return errors.New("fake kernel: events socket inbox full")
	}
}

func (s *multicastSocket) Receive() ([]netlink.Message, error) {
	for {
		s.mu.Lock()
		deadline := s.deadline
		s.mu.Unlock()
		if d, ok, err := s.wait(deadline); ok {
			return d.msgs, d.err
		} else if err != nil {
			return nil, err
		}
	}
}

// wait waits for a datagram until deadline; ok=false and err=nil means the
// deadline was changed and wait must be called again.
func (s *multicastSocket) wait(deadline time.Time) (d datagram, ok bool, err error) {
	var expired <-chan time.Time
	if !deadline.IsZero() {
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-s.closed:
		// What recvmsg on a closed fd gives.
		return datagram{}, false, os.NewSyscallError("recvmsg", unix.EBADF)
	default:
	}
	select {
	case d := <-s.inbox:
		return d, true, nil
	case <-s.closed:
		return datagram{}, false, os.NewSyscallError("recvmsg", unix.EBADF)
	case <-expired:
		return datagram{}, false, os.ErrDeadlineExceeded
	case <-s.kick:
		return datagram{}, false, nil
	}
}

func (s *multicastSocket) ReceiveIter() iter.Seq2[netlink.Message, error] {
	return func(yield func(netlink.Message, error) bool) {
		msgs, err := s.Receive()
		if err != nil {
			yield(netlink.Message{}, err)
			return
		}
		for _, m := range msgs {
			if !yield(m, nil) {
				return
			}
		}
	}
}

// Send and SendMessages are counted: nothing may be sent on the events
// socket.
func (s *multicastSocket) Send(netlink.Message) error { return s.sent() }

func (s *multicastSocket) SendMessages([]netlink.Message) error { return s.sent() }

func (s *multicastSocket) sent() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sends++
	return errors.New("fake kernel: send on the events socket")
}

func (s *multicastSocket) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *multicastSocket) JoinGroup(group uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[group] = true
	s.joins = append(s.joins, group)
	return nil
}

func (s *multicastSocket) LeaveGroup(group uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, group)
	return nil
}

func (s *multicastSocket) SetDeadline(t time.Time) error { return s.SetReadDeadline(t) }

func (s *multicastSocket) SetWriteDeadline(time.Time) error { return nil }

func (s *multicastSocket) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// testLogger writes the client's log lines into the test log.
func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
}
