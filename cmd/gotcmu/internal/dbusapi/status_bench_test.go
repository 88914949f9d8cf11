package dbusapi

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/gotcmu/gotcmu/handler"
)

// BenchmarkStatus256 is `gotcmu status` at the largest LUN count ceph-iscsi
// allows on a target (issue 16 point 3): one Status call over a private
// dbus-daemon, answered from 256 devices whose every field is set as an
// rbd gateway's would be, and decoded as `gotcmu status` decodes it.
// Reports the reply's size; run as root (Status answers root only):
//
//	go test -run '^$' -bench Status256 ./cmd/gotcmu/internal/dbusapi
func BenchmarkStatus256(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("Status answers root only; the benchmark must run as root")
	}
	devs := make(fakeStatus, 256)
	for i := range devs {
		devs[i] = handler.DeviceStatus{
			Name: fmt.Sprintf("disk%03d", i), UIO: fmt.Sprintf("uio%d", i), Handler: "rbd",
			Config: fmt.Sprintf("rbd/disk%03d;osd_op_timeout=30;conf=/etc/ceph/ceph.conf;id=admin", i),
			Size:   1 << 40, BlockSize: 512, State: "running",
			Reason:    "answering BUSY for 1.2s (lock), NOT READY after 60s",
			LockOwner: "client.4123 10.99.0.1:0/1797666559", LockState: "owner", InFlight: 32, Errors: 7, GiveUps: 1,
		}
	}
	addr := startBus(b, "")
	startService(b, addr, WithStatus(devs))
	conn := connect(b, addr)
	ctx := context.Background()
	b.ResetTimer()
	var got StatusReport
	for range b.N {
		var err error
		if got, err = FetchStatus(ctx, conn); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if len(got.Devices) != len(devs) {
		b.Fatalf("status lists %d devices, want %d", len(got.Devices), len(devs))
	}
	// The reply is what statusMethod encodes.
	reply, err := json.Marshal(StatusReport{Devices: devs})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(reply)), "reply-bytes")
}
