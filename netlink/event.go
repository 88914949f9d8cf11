package netlink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/genetlink"
)

// Limits on the strings an event may carry. The kernel's longest uio name
// is "tcm-user/<u32>/<item name>/<dev_config>": 9+10+1+255+1+255 = 531 bytes
// (NAME_MAX for the configfs item, TCMU_CONFIG_LEN-1 for dev_config), and
// DEV_CFG is at most 255 bytes. Anything much longer did not come from
// target_core_user.c and is refused rather than carried into paths and logs.
const (
	maxDeviceLen = 1024
	maxConfigLen = 1024
)

// ErrEventsLost is the Err of the Event that Receive delivers when the
// kernel dropped multicast messages because the socket's receive buffer was
// full (ENOBUFS). Any event may have been lost, including an ADDED_DEVICE
// whose configfs writer now waits for a reply that will never come: see the
// package documentation for how to recover.
var ErrEventsLost = errors.New("netlink events lost")

// An Event is one TCM-USER message the kernel multicast to the "config"
// group.
//
// A well-formed event has Err == nil and carries Device, Minor and
// DeviceID; a RECONFIG_DEVICE event carries exactly one of Config, Size and
// WriteCache, the others carry none. An event with Err != nil was malformed
// (or is the ErrEventsLost notice) and its other fields hold whatever could
// be decoded; if HasDeviceID is set the kernel may be waiting for an answer,
// so reply -EINVAL to it.
type Event struct {
	// Cmd is the generic netlink command: CmdAddedDevice, CmdRemovedDevice or
	// CmdReconfigDevice for a well-formed event.
	Cmd Command
	// Version is the generic netlink header version. The kernel waits for
	// *_DONE replies only from version 2 on; Reply sends nothing for
	// version 1, as tcmu-runner does.
	Version uint8

	// Device is the uio device name (TCMU_ATTR_DEVICE):
	// "tcm-user/<hba>/<name>/<dev_config>" or "tcm-user/<hba>/<name>".
	Device string
	// Minor is the uio minor (TCMU_ATTR_MINOR): the device is /dev/uio<Minor>.
	Minor uint32
	// DeviceID is se_dev.dev_index (TCMU_ATTR_DEVICE_ID), which the kernel
	// matches a *_DONE reply against. Valid only if HasDeviceID.
	DeviceID    uint32
	HasDeviceID bool

	// For RECONFIG_DEVICE, the one setting that changed.
	Config     *string // TCMU_ATTR_DEV_CFG: a write to attrib/dev_config
	Size       *uint64 // TCMU_ATTR_DEV_SIZE: a write to attrib/dev_size
	WriteCache *bool   // TCMU_ATTR_WRITECACHE: a write to attrib/emulate_write_cache

	// Err says why the event is malformed; nil for a well-formed event.
	Err error
}

// decodeEvent decodes one TCM-USER message. It never fails outright: a
// malformed message yields an Event whose Err says why, with every field
// that decoded cleanly (DEVICE_ID above all, so the caller can still answer
// the kernel).
func decodeEvent(m genetlink.Message) Event {
	ev := Event{Cmd: Command(m.Header.Command), Version: m.Header.Version}
	if err := ev.decode(m.Data); err != nil {
		ev.Err = fmt.Errorf("decode %v event: %w", ev.Cmd, err)
	}
	return ev
}

func (ev *Event) decode(b []byte) error {
	var (
		seen     = make(map[uint16]bool)
		config   *string
		size     *uint64
		cache    *bool
		reconfig int
		// A bad attribute value is remembered and the walk goes on, because
		// the kernel puts DEVICE first and DEVICE_ID last
		// (tcmu_netlink_event_init) and DEVICE_ID is what the caller needs
		// to fail the waiting configfs writer with -EINVAL. A framing error
		// ends the walk: nothing after it can be located.
		valueErr error
	)
	fail := func(format string, args ...any) {
		if valueErr == nil {
			valueErr = fmt.Errorf(format, args...)
		}
	}
	// The attributes are walked by hand rather than with
	// netlink.AttributeDecoder, which refuses the whole buffer up front if
	// any attribute is truncated (and DEVICE_ID may still be readable before
	// it), and which accepts a length of 0 where the kernel's nla_ok()
	// requires at least the 4-byte header.
	for len(b) > 0 {
		if len(b) < 4 {
			return errors.Join(valueErr, fmt.Errorf("truncated attribute header: %d bytes left", len(b)))
		}
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		// NLA_F_NESTED and NLA_F_NET_BYTEORDER are masked off as nla_type() does.
		typ := binary.NativeEndian.Uint16(b[2:4]) & 0x3fff
		if n < 4 || n > len(b) {
			return errors.Join(valueErr, fmt.Errorf("%s: length %d with %d bytes left", attrName(typ), n, len(b)))
		}
		data := b[4:n]
		// Attributes are padded to 4 bytes; the last one may lack its padding.
		b = b[min((n+3)&^3, len(b)):]

		switch typ {
		case attrDevice, attrMinor, attrDeviceID, attrDevCfg, attrDevSize, attrWriteCache:
			if seen[typ] {
				fail("duplicate %s", attrName(typ))
				continue
			}
			seen[typ] = true
		default:
			// PAD, and attributes a newer kernel may add, carry nothing
			// gotcmu needs.
			continue
		}

		switch typ {
		case attrDevice:
			s, err := nulString(data, maxDeviceLen)
			switch {
			case err != nil:
				fail("DEVICE: %w", err)
			case s == "":
				fail("DEVICE: empty")
			default:
				ev.Device = s
			}
		case attrMinor:
			if err := fixed(data, 4); err != nil {
				fail("MINOR: %w", err)
				break
			}
			ev.Minor = binary.NativeEndian.Uint32(data)
		case attrDeviceID:
			if err := fixed(data, 4); err != nil {
				fail("DEVICE_ID: %w", err)
				break
			}
			ev.DeviceID = binary.NativeEndian.Uint32(data)
			ev.HasDeviceID = true
		case attrDevCfg:
			reconfig++
			s, err := nulString(data, maxConfigLen)
			if err != nil {
				fail("DEV_CFG: %w", err)
				break
			}
			config = &s
		case attrDevSize:
			reconfig++
			if err := fixed(data, 8); err != nil {
				fail("DEV_SIZE: %w", err)
				break
			}
			v := binary.NativeEndian.Uint64(data)
			size = &v
		case attrWriteCache:
			reconfig++
			if err := fixed(data, 1); err != nil {
				fail("WRITECACHE: %w", err)
				break
			}
			on := data[0] != 0
			cache = &on
		}
	}
	if valueErr != nil {
		return valueErr
	}

	var missing []string
	for _, typ := range []uint16{attrDevice, attrMinor, attrDeviceID} {
		if !seen[typ] {
			missing = append(missing, attrName(typ))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %v", missing)
	}

	switch ev.Cmd {
	case CmdAddedDevice, CmdRemovedDevice:
		// The kernel never puts reconfiguration attributes in these; if some
		// sender did, they are ignored like any other unexpected attribute.
	case CmdReconfigDevice:
		// tcmu_send_dev_config_event, tcmu_send_dev_size_event and
		// tcmu_send_emulate_write_cache each put exactly one.
		if reconfig != 1 {
			return fmt.Errorf("want exactly one of DEV_CFG, DEV_SIZE, WRITECACHE, got %d", reconfig)
		}
		ev.Config, ev.Size, ev.WriteCache = config, size, cache
	default:
		return errors.New("not an event command")
	}
	return nil
}

// nulString decodes a string attribute as nla_put_string writes it: the
// bytes followed by exactly one NUL, with no NUL inside.
func nulString(b []byte, limit int) (string, error) {
	if len(b) == 0 || b[len(b)-1] != 0 {
		return "", errors.New("string not NUL-terminated")
	}
	s := b[:len(b)-1]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		return "", fmt.Errorf("NUL inside string at byte %d", i)
	}
	if len(s) > limit {
		return "", fmt.Errorf("string of %d bytes, more than %d", len(s), limit)
	}
	return string(s), nil
}

// fixed checks that an integer attribute has exactly its size.
func fixed(b []byte, size int) error {
	if len(b) != size {
		return fmt.Errorf("want %d bytes, got %d", size, len(b))
	}
	return nil
}
