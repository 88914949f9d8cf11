package netlink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// ErrNoDeviceID is returned by Reply for an event that carried no usable
// DEVICE_ID: the kernel matches replies by it, so there is nothing to send.
var ErrNoDeviceID = errors.New("event has no DEVICE_ID")

// A Client is gotcmu's connection to the TCM-USER generic netlink family.
//
// It holds two sockets. The events socket joins the "config" multicast
// group and is only ever read by Receive; the requests socket sends
// SET_FEATURES and the *_DONE replies and reads their acknowledgements. Kept
// apart, the acknowledgement check of a request can never consume (and lose)
// an event, and events never have to be told apart from acknowledgements.
//
// Reply, SetFeatures and Close are safe for concurrent use, also with a
// running Receive; run one Receive at a time.
type Client struct {
	log      zerolog.Logger
	events   *genetlink.Conn
	requests *genetlink.Conn
	family   genetlink.Family

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Dial opens the two generic netlink sockets, resolves the TCM-USER family
// and joins its "config" multicast group. It fails if target_core_user is
// not loaded (the family does not exist until it is).
func Dial(log zerolog.Logger) (*Client, error) {
	return dial(log, FamilyName, GroupName)
}

// dial is Dial for any family and group, so that the socket handling can be
// tested against a family every kernel has.
func dial(log zerolog.Logger, family, group string) (*Client, error) {
	events, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("dial generic netlink: %w", err)
	}
	requests, err := genetlink.Dial(nil)
	if err != nil {
		_ = events.Close()
		return nil, fmt.Errorf("dial generic netlink: %w", err)
	}
	c, err := newClient(log, events, requests, family, group)
	if err != nil {
		_ = events.Close()
		_ = requests.Close()
		return nil, err
	}
	return c, nil
}

// newClient resolves family on requests and joins its group on events.
func newClient(log zerolog.Logger, events, requests *genetlink.Conn, family, group string) (*Client, error) {
	fam, err := requests.GetFamily(family)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("get generic netlink family %s (is its module loaded?): %w", family, err)
		}
		return nil, fmt.Errorf("get generic netlink family %s: %w", family, err)
	}
	var (
		gid   uint32
		found bool
	)
	for _, g := range fam.Groups {
		if g.Name == group {
			gid, found = g.ID, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("find multicast group %q of family %s: not registered", group, family)
	}
	// JoinGroup uses NETLINK_ADD_MEMBERSHIP, which takes the group ID
	// itself; the legacy nl_groups bitmask of bind(2) cannot name IDs above
	// 32, and dynamically allocated genl group IDs usually are.
	if err := events.JoinGroup(gid); err != nil {
		return nil, fmt.Errorf("join multicast group %s/%s (id %d): %w", family, group, gid, err)
	}
	log.Debug().Str("family", family).Uint16("family_id", fam.ID).Uint8("family_version", fam.Version).
		Str("group", group).Uint32("group_id", gid).Msg("joined generic netlink group")
	return &Client{log: log, events: events, requests: requests, family: fam}, nil
}

// Close closes both sockets. A Receive blocked in recvmsg returns nil.
// Close is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = errors.Join(c.events.Close(), c.requests.Close())
	})
	return c.closeErr
}

// SetFeatures tells the kernel that gotcmu answers every event with a
// *_DONE reply (SET_FEATURES with SUPP_KERN_CMD_REPLY=1, acknowledged), as
// tcmu-runner does at start-up. The setting is module-global and sticky, and
// devices enabled afterwards make their configfs writers wait for the reply
// (drivers/target/target_core_user.c, tcmu_wait_genl_cmd_reply).
//
// A kernel without SET_FEATURES answers EOPNOTSUPP; tcmu-runner ignores
// that, and SetFeatures logs it and returns nil. The kernel handles the
// request synchronously within sendmsg, so ctx is only checked before
// sending.
func (c *Client) SetFeatures(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send %v: %w", cmdSetFeatures, err)
	}
	ae := netlink.NewAttributeEncoder()
	ae.Uint8(attrSuppKernCmdReply, 1)
	err := c.execute(cmdSetFeatures, ae)
	if errors.Is(err, unix.EOPNOTSUPP) {
		c.log.Warn().Err(err).Msg("kernel does not support TCM-USER SET_FEATURES; going on as tcmu-runner does")
		return nil
	}
	return err
}

// Reply answers event ev with its *_DONE command carrying CMD_STATUS=status
// and ev's DEVICE_ID. status is 0 or a negative errno; the kernel hands it
// back to the configfs writer as the result of its write (a failed ADDED
// makes the enable write fail and unregisters the device).
//
// Reply fails with ErrNoDeviceID for an event without a usable DEVICE_ID
// (the ErrEventsLost notice among them). For a valid event of header
// version 1 it sends nothing and returns nil, as tcmu-runner does: such a
// kernel does not wait. The kernel acknowledges the reply; ENODEV means it
// was not waiting for this device (already answered, or released through
// reset_netlink), EINVAL that it waits for a different command. As with
// SetFeatures, ctx is only checked before sending.
func (c *Client) Reply(ctx context.Context, ev Event, status int32) error {
	if !ev.HasDeviceID {
		return fmt.Errorf("reply to %v event: %w", ev.Cmd, ErrNoDeviceID)
	}
	done, ok := ev.Cmd.done()
	if !ok {
		return fmt.Errorf("reply to %v event: no reply command for it", ev.Cmd)
	}
	// MAX_ERRNO is 4095. A positive status would become the byte count of
	// the configfs write, so it is refused rather than sent.
	if status > 0 || status < -4095 {
		return fmt.Errorf("reply to %v event of device %d: status %d is not 0 or -errno", ev.Cmd, ev.DeviceID, status)
	}
	if ev.Version <= 1 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send %v to device %d: %w", done, ev.DeviceID, err)
	}
	ae := netlink.NewAttributeEncoder()
	ae.Int32(attrCmdStatus, status)
	ae.Uint32(attrDeviceID, ev.DeviceID)
	if err := c.execute(done, ae); err != nil {
		return fmt.Errorf("reply to device %d: %w", ev.DeviceID, err)
	}
	return nil
}

// execute sends one acknowledged request on the requests socket.
func (c *Client) execute(cmd Command, ae *netlink.AttributeEncoder) error {
	b, err := ae.Encode()
	if err != nil {
		return fmt.Errorf("encode %v: %w", cmd, err)
	}
	m := genetlink.Message{
		Header: genetlink.Header{Command: uint8(cmd), Version: replyVersion},
		Data:   b,
	}
	if _, err := c.requests.Execute(m, c.family.ID, netlink.Request|netlink.Acknowledge); err != nil {
		return fmt.Errorf("send %v: %w", cmd, err)
	}
	return nil
}

// Receive reads the events socket and calls fn with every TCM-USER event,
// in the order the kernel sent them, until ctx is cancelled or the Client is
// closed; both make it return nil. fn runs on Receive's goroutine: while it
// runs no event is read, so it should hand slow work (opening a device) to
// another goroutine and Reply from there.
//
// Malformed input never stops Receive. A message that decodes badly is
// delivered as an Event with Err set; a datagram too broken to split into
// messages is logged and dropped; a receive buffer overrun (ENOBUFS) is
// delivered as an Event whose Err wraps ErrEventsLost. Messages of other
// families are ignored. Receive returns an error only when the socket itself
// fails.
func (c *Client) Receive(ctx context.Context, fn func(Event)) error {
	if c.closed.Load() || ctx.Err() != nil {
		return nil
	}
	if err := c.events.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("receive events: %w", err)
	}
	// A read deadline in the past wakes a recvmsg blocked in the poller.
	stop := context.AfterFunc(ctx, func() { _ = c.events.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	for {
		msgs, nmsgs, err := c.events.Receive()
		if c.closed.Load() || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if err := c.receiveError(err, fn); err != nil {
				return err
			}
			// receiveError may have cleared a stale deadline just after
			// the cancellation set its own: look at ctx again, after the
			// clear, or the next Receive blocks with nothing to wake it.
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		for i := range msgs {
			c.deliver(msgs[i], nmsgs[i], fn)
		}
	}
}

// receiveError sorts a failed receive into what Receive survives and what
// ends it.
func (c *Client) receiveError(err error, fn func(Event)) error {
	var sysErr *os.SyscallError
	switch {
	case errors.Is(err, unix.ENOBUFS):
		// The kernel drops multicast messages for a full socket and reports
		// it once; the socket keeps working.
		c.log.Error().Err(err).Msg("netlink receive buffer overrun: TCM-USER events lost")
		fn(Event{Err: fmt.Errorf("receive events: %w: %w", ErrEventsLost, err)})
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Left over from an earlier Receive whose context ended late.
		if err := c.events.SetReadDeadline(time.Time{}); err != nil {
			return fmt.Errorf("receive events: %w", err)
		}
		return nil
	case errors.As(err, &sysErr):
		return fmt.Errorf("receive events: %w", err)
	}
	// The datagram was read but could not be parsed (bad netlink or genl
	// header, an unexpected netlink error message): drop it.
	c.log.Warn().Err(err).Msg("dropping malformed netlink datagram")
	return nil
}

// deliver decodes one message of the events socket and hands it to fn.
func (c *Client) deliver(gm genetlink.Message, nm netlink.Message, fn func(Event)) {
	if nm.Header.Type != netlink.HeaderType(c.family.ID) {
		c.log.Debug().Uint16("type", uint16(nm.Header.Type)).Msg("ignoring netlink message of another family")
		return
	}
	ev := decodeEvent(gm)
	if ev.Err != nil {
		l := c.log.Warn().Err(ev.Err).Stringer("cmd", ev.Cmd)
		if ev.HasDeviceID {
			l = l.Uint32("device_id", ev.DeviceID)
		}
		l.Msg("malformed TCM-USER event")
	}
	fn(ev)
}
