package netlink

import (
	"encoding/binary"

	"github.com/mdlayher/genetlink"
)

// Builders of raw attributes, byte for byte as the kernel's nla_put_* write
// them, and of deliberately broken ones.

// attr encodes one attribute with its true length, padded to 4 bytes.
func attr(typ uint16, data []byte) []byte {
	return rawAttr(uint16(4+len(data)), typ, data)
}

// rawAttr encodes an attribute whose length field says length, whatever
// the data is, padded to 4 bytes.
func rawAttr(length, typ uint16, data []byte) []byte {
	b := make([]byte, 4, 4+len(data)+3)
	binary.NativeEndian.PutUint16(b[0:], length)
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// nlaString is the data of nla_put_string: the bytes and one NUL.
func nlaString(s string) []byte { return append([]byte(s), 0) }

func nlaU8(v uint8) []byte { return []byte{v} }

func nlaU32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func nlaU64(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

// join concatenates encoded attributes.
func join(attrs ...[]byte) []byte {
	var b []byte
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

// eventMessage is a generic netlink message as target_core_user.c sends it
// (genlmsg_put with the family's version, 2).
func eventMessage(cmd Command, attrs ...[]byte) genetlink.Message {
	return genetlink.Message{
		Header: genetlink.Header{Command: uint8(cmd), Version: 2},
		Data:   join(attrs...),
	}
}

// deviceAttrs are the three attributes tcmu_netlink_event_init puts in
// every event, in its order.
func deviceAttrs(device string, minor, id uint32) []byte {
	return join(
		attr(attrDevice, nlaString(device)),
		attr(attrMinor, nlaU32(minor)),
		attr(attrDeviceID, nlaU32(id)),
	)
}

func ptr[T any](v T) *T { return &v }
