package netlink

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/genetlink"
)

// FuzzDecodeEvent feeds arbitrary generic netlink messages (4-byte genl
// header, then attributes) to the event decoder. Seeds are in
// testdata/fuzz/FuzzDecodeEvent: every event the kernel sends and the
// malformations of TestDecodeEvent. Run longer with
//
//	go test -run '^$' -fuzz FuzzDecodeEvent -fuzztime 5m -fuzzminimizetime 2s ./netlink
//
// (The default minimisation budget of 60s per new input stalls the run
// with 0 execs/sec for minutes on this 2-core machine.)
func FuzzDecodeEvent(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var m genetlink.Message
		if err := m.UnmarshalBinary(b); err != nil {
			// genetlink.Conn.Receive drops these before decoding.
			return
		}
		ev := decodeEvent(m)
		if ev.Cmd != Command(m.Header.Command) || ev.Version != m.Header.Version {
			t.Fatalf("header lost: got cmd %v version %d from %v", ev.Cmd, ev.Version, m.Header)
		}
		if ev.Err != nil {
			return
		}

		// A well-formed event keeps the package's promises.
		switch ev.Cmd {
		case CmdAddedDevice, CmdRemovedDevice, CmdReconfigDevice:
		default:
			t.Fatalf("well-formed event with command %v", ev.Cmd)
		}
		if ev.Device == "" || len(ev.Device) > maxDeviceLen || bytes.IndexByte([]byte(ev.Device), 0) >= 0 {
			t.Fatalf("well-formed event with device %q", ev.Device)
		}
		if !ev.HasDeviceID {
			t.Fatal("well-formed event without DEVICE_ID")
		}
		settings := 0
		for _, set := range []bool{ev.Config != nil, ev.Size != nil, ev.WriteCache != nil} {
			if set {
				settings++
			}
		}
		if want := map[bool]int{true: 1, false: 0}[ev.Cmd == CmdReconfigDevice]; settings != want {
			t.Fatalf("%v event with %d settings, want %d", ev.Cmd, settings, want)
		}
		if ev.Config != nil && (len(*ev.Config) > maxConfigLen || bytes.IndexByte([]byte(*ev.Config), 0) >= 0) {
			t.Fatalf("well-formed event with config %q", *ev.Config)
		}

		// Encoding it the kernel's way and decoding again gives it back.
		again := decodeEvent(encodeEvent(ev))
		if diff := cmp.Diff(ev, again, cmpopts.EquateErrors()); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}

// encodeEvent encodes ev as target_core_user.c would send it.
func encodeEvent(ev Event) genetlink.Message {
	attrs := [][]byte{deviceAttrs(ev.Device, ev.Minor, ev.DeviceID)}
	switch {
	case ev.Config != nil:
		attrs = append(attrs, attr(attrDevCfg, nlaString(*ev.Config)))
	case ev.Size != nil:
		attrs = append(attrs, attr(attrPad, nil), attr(attrDevSize, nlaU64(*ev.Size)))
	case ev.WriteCache != nil:
		v := uint8(0)
		if *ev.WriteCache {
			v = 1
		}
		attrs = append(attrs, attr(attrWriteCache, nlaU8(v)))
	}
	return genetlink.Message{
		Header: genetlink.Header{Command: uint8(ev.Cmd), Version: ev.Version},
		Data:   join(attrs...),
	}
}
