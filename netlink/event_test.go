package netlink

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/genetlink"
)

const testDevice = "tcm-user/1/disk0/file//var/lib/disk0.img"

func TestDecodeEvent(t *testing.T) {
	dev := deviceAttrs(testDevice, 3, 7)
	tests := []struct {
		name    string
		m       genetlink.Message
		want    Event
		wantErr string // substring of Err; empty for a well-formed event
	}{
		{
			name: "added",
			m:    eventMessage(CmdAddedDevice, dev),
			want: Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
		},
		{
			name: "removed",
			m:    eventMessage(CmdRemovedDevice, dev),
			want: Event{Cmd: CmdRemovedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
		},
		{
			name: "reconfig dev_config",
			m:    eventMessage(CmdReconfigDevice, dev, attr(attrDevCfg, nlaString("file//var/lib/other.img"))),
			want: Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true,
				Config: ptr("file//var/lib/other.img")},
		},
		{
			name: "reconfig dev_size after PAD",
			m:    eventMessage(CmdReconfigDevice, dev, attr(attrPad, nil), attr(attrDevSize, nlaU64(1<<40))),
			want: Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true,
				Size: ptr(uint64(1 << 40))},
		},
		{
			name: "reconfig write cache on",
			m:    eventMessage(CmdReconfigDevice, dev, attr(attrWriteCache, nlaU8(1))),
			want: Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true,
				WriteCache: ptr(true)},
		},
		{
			name: "reconfig write cache off",
			m:    eventMessage(CmdReconfigDevice, dev, attr(attrWriteCache, nlaU8(0))),
			want: Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true,
				WriteCache: ptr(false)},
		},
		{
			name: "reconfig empty dev_config",
			m:    eventMessage(CmdReconfigDevice, dev, attr(attrDevCfg, nlaString(""))),
			want: Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true,
				Config: ptr("")},
		},
		{
			name: "version 1 kept",
			m:    genetlink.Message{Header: genetlink.Header{Command: uint8(CmdAddedDevice), Version: 1}, Data: dev},
			want: Event{Cmd: CmdAddedDevice, Version: 1, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
		},
		{
			name: "unknown and unspec attributes ignored",
			m: eventMessage(CmdAddedDevice, attr(0, nlaU32(1)), attr(42, []byte("future")), dev,
				attr(attrCmdStatus, nlaU32(5)), attr(attrSuppKernCmdReply, nlaU8(1))),
			want: Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
		},
		{
			name: "attribute order free",
			m: eventMessage(CmdAddedDevice, attr(attrDeviceID, nlaU32(7)), attr(attrMinor, nlaU32(3)),
				attr(attrDevice, nlaString(testDevice))),
			want: Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
		},
		{
			name: "type flag bits masked as nla_type does",
			m: eventMessage(CmdAddedDevice, attr(attrDevice, nlaString(testDevice)),
				attr(attrMinor|0x8000, nlaU32(3)), attr(attrDeviceID, nlaU32(7))),
			want: Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
		},
		{
			name: "last attribute without its padding",
			m: eventMessage(CmdAddedDevice, attr(attrMinor, nlaU32(3)), attr(attrDeviceID, nlaU32(7)),
				attr(attrDevice, nlaString("tcm-user/1/a"))[:4+13]),
			want: Event{Cmd: CmdAddedDevice, Version: 2, Device: "tcm-user/1/a", Minor: 3, DeviceID: 7, HasDeviceID: true},
		},
		{
			name: "added ignores reconfiguration attributes",
			m:    eventMessage(CmdAddedDevice, dev, attr(attrDevSize, nlaU64(4096))),
			want: Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
		},

		{
			name:    "missing DEVICE",
			m:       eventMessage(CmdAddedDevice, attr(attrMinor, nlaU32(3)), attr(attrDeviceID, nlaU32(7))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "missing [DEVICE]",
		},
		{
			name:    "missing MINOR",
			m:       eventMessage(CmdRemovedDevice, attr(attrDevice, nlaString(testDevice)), attr(attrDeviceID, nlaU32(7))),
			want:    Event{Cmd: CmdRemovedDevice, Version: 2, Device: testDevice, DeviceID: 7, HasDeviceID: true},
			wantErr: "missing [MINOR]",
		},
		{
			name:    "missing DEVICE_ID",
			m:       eventMessage(CmdAddedDevice, attr(attrDevice, nlaString(testDevice)), attr(attrMinor, nlaU32(3))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice, Minor: 3},
			wantErr: "missing [DEVICE_ID]",
		},
		{
			name:    "no attributes",
			m:       eventMessage(CmdAddedDevice),
			want:    Event{Cmd: CmdAddedDevice, Version: 2},
			wantErr: "missing [DEVICE MINOR DEVICE_ID]",
		},
		{
			name:    "truncated attribute header",
			m:       eventMessage(CmdAddedDevice, dev, []byte{8, 0}),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "truncated attribute header",
		},
		{
			name:    "attribute longer than the message",
			m:       eventMessage(CmdAddedDevice, attr(attrDeviceID, nlaU32(7)), rawAttr(100, attrDevice, nlaString("tcm"))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEVICE: length 100 with 8 bytes left",
		},
		{
			name:    "attribute length below its header",
			m:       eventMessage(CmdAddedDevice, rawAttr(2, attrPad, nil), dev),
			want:    Event{Cmd: CmdAddedDevice, Version: 2},
			wantErr: "PAD: length 2",
		},
		{
			name:    "attribute length zero",
			m:       eventMessage(CmdAddedDevice, rawAttr(0, attrPad, nil), dev),
			want:    Event{Cmd: CmdAddedDevice, Version: 2},
			wantErr: "PAD: length 0",
		},
		{
			name:    "MINOR of two bytes",
			m:       eventMessage(CmdAddedDevice, attr(attrDeviceID, nlaU32(7)), attr(attrMinor, []byte{3, 0})),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, DeviceID: 7, HasDeviceID: true},
			wantErr: "MINOR: want 4 bytes, got 2",
		},
		{
			name:    "MINOR of eight bytes",
			m:       eventMessage(CmdAddedDevice, attr(attrMinor, nlaU64(3)), attr(attrDeviceID, nlaU32(7))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, DeviceID: 7, HasDeviceID: true},
			wantErr: "MINOR: want 4 bytes, got 8",
		},
		{
			name:    "DEVICE_ID of two bytes",
			m:       eventMessage(CmdAddedDevice, attr(attrDevice, nlaString(testDevice)), attr(attrDeviceID, []byte{7, 0})),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice},
			wantErr: "DEVICE_ID: want 4 bytes, got 2",
		},
		{
			name:    "DEVICE not NUL-terminated",
			m:       eventMessage(CmdAddedDevice, attr(attrDeviceID, nlaU32(7)), attr(attrDevice, []byte("tcm-user/1/a"))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEVICE: string not NUL-terminated",
		},
		{
			name: "DEVICE_ID after a bad DEVICE kept",
			m: eventMessage(CmdAddedDevice, attr(attrDevice, []byte("tcm-user/1/a")), attr(attrMinor, nlaU32(3)),
				attr(attrDeviceID, nlaU32(7))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEVICE: string not NUL-terminated",
		},
		{
			name: "bad value and then a broken frame both reported",
			m: eventMessage(CmdAddedDevice, attr(attrDevice, nlaString("")), attr(attrDeviceID, nlaU32(7)),
				rawAttr(200, attrMinor, nlaU32(3))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEVICE: empty\nMINOR: length 200 with 8 bytes left",
		},
		{
			name:    "DEVICE with a NUL inside",
			m:       eventMessage(CmdAddedDevice, attr(attrDeviceID, nlaU32(7)), attr(attrDevice, []byte("tcm-user/1\x00/a\x00"))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEVICE: NUL inside string at byte 10",
		},
		{
			name:    "DEVICE with two NULs at the end",
			m:       eventMessage(CmdAddedDevice, attr(attrDeviceID, nlaU32(7)), attr(attrDevice, []byte("tcm-user/1/a\x00\x00"))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEVICE: NUL inside string",
		},
		{
			name:    "DEVICE empty",
			m:       eventMessage(CmdAddedDevice, attr(attrDeviceID, nlaU32(7)), attr(attrDevice, nlaString(""))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEVICE: empty",
		},
		{
			name:    "DEVICE longer than the kernel can make",
			m:       eventMessage(CmdAddedDevice, attr(attrDeviceID, nlaU32(7)), attr(attrDevice, nlaString(strings.Repeat("a", maxDeviceLen+1)))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEVICE: string of 1025 bytes, more than 1024",
		},
		{
			name:    "DEVICE as long as an attribute can be",
			m:       eventMessage(CmdAddedDevice, attr(attrDeviceID, nlaU32(7)), attr(attrDevice, nlaString(strings.Repeat("a", 0xffff-5)))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEVICE: string of 65530 bytes",
		},
		{
			name:    "DEV_CFG not NUL-terminated",
			m:       eventMessage(CmdReconfigDevice, dev, attr(attrDevCfg, []byte("file//x"))),
			want:    Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEV_CFG: string not NUL-terminated",
		},
		{
			name:    "DEV_CFG longer than the kernel can make",
			m:       eventMessage(CmdReconfigDevice, dev, attr(attrDevCfg, nlaString(strings.Repeat("c", 5000)))),
			want:    Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEV_CFG: string of 5000 bytes",
		},
		{
			name:    "DEV_SIZE of four bytes",
			m:       eventMessage(CmdReconfigDevice, dev, attr(attrDevSize, nlaU32(4096))),
			want:    Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "DEV_SIZE: want 8 bytes, got 4",
		},
		{
			name:    "WRITECACHE of four bytes",
			m:       eventMessage(CmdReconfigDevice, dev, attr(attrWriteCache, nlaU32(1))),
			want:    Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "WRITECACHE: want 1 bytes, got 4",
		},
		{
			name:    "duplicate DEVICE",
			m:       eventMessage(CmdAddedDevice, dev, attr(attrDevice, nlaString("tcm-user/2/other"))),
			want:    Event{Cmd: CmdAddedDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "duplicate DEVICE",
		},
		{
			name:    "duplicate DEV_SIZE",
			m:       eventMessage(CmdReconfigDevice, dev, attr(attrDevSize, nlaU64(1)), attr(attrDevSize, nlaU64(2))),
			want:    Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "duplicate DEV_SIZE",
		},
		{
			name:    "reconfig without a setting",
			m:       eventMessage(CmdReconfigDevice, dev),
			want:    Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "want exactly one of DEV_CFG, DEV_SIZE, WRITECACHE, got 0",
		},
		{
			name: "reconfig with two settings",
			m: eventMessage(CmdReconfigDevice, dev, attr(attrDevSize, nlaU64(4096)),
				attr(attrWriteCache, nlaU8(1))),
			want:    Event{Cmd: CmdReconfigDevice, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "want exactly one of DEV_CFG, DEV_SIZE, WRITECACHE, got 2",
		},
		{
			name:    "reply command multicast",
			m:       eventMessage(cmdAddedDeviceDone, dev),
			want:    Event{Cmd: cmdAddedDeviceDone, Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "decode ADDED_DEVICE_DONE event: not an event command",
		},
		{
			name:    "unknown command",
			m:       eventMessage(Command(200), dev),
			want:    Event{Cmd: Command(200), Version: 2, Device: testDevice, Minor: 3, DeviceID: 7, HasDeviceID: true},
			wantErr: "decode Command(200) event: not an event command",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeEvent(tt.m)
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Event{}, "Err")); diff != "" {
				t.Errorf("decodeEvent() mismatch (-want +got):\n%s", diff)
			}
			switch {
			case tt.wantErr == "" && got.Err != nil:
				t.Errorf("decodeEvent() Err = %v, want nil", got.Err)
			case tt.wantErr != "" && got.Err == nil:
				t.Errorf("decodeEvent() Err = nil, want one containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(got.Err.Error(), tt.wantErr):
				t.Errorf("decodeEvent() Err = %q, want one containing %q", got.Err, tt.wantErr)
			}
		})
	}
}

func TestCommandString(t *testing.T) {
	for c, want := range map[Command]string{
		0: "UNSPEC", CmdAddedDevice: "ADDED_DEVICE", CmdRemovedDevice: "REMOVED_DEVICE",
		CmdReconfigDevice: "RECONFIG_DEVICE", cmdAddedDeviceDone: "ADDED_DEVICE_DONE",
		cmdRemovedDeviceDone: "REMOVED_DEVICE_DONE", cmdReconfigDeviceDone: "RECONFIG_DEVICE_DONE",
		cmdSetFeatures: "SET_FEATURES", 8: "Command(8)",
	} {
		if got := c.String(); got != want {
			t.Errorf("Command(%d).String() = %q, want %q", uint8(c), got, want)
		}
	}
}
