package metrics

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
)

type fakeSource []handler.DeviceStats

func (f fakeSource) Stats() []handler.DeviceStats { return f }

func TestServeExportsDeviceCounters(t *testing.T) {
	var snap handler.StatsSnapshot
	for i := range snap.Classes {
		snap.Classes[i].Buckets = make([]uint64, len(handler.LatencyBuckets))
	}
	snap.Classes[handler.ClassRead] = handler.ClassSnapshot{Ops: 7, Bytes: 7 * 4096, LatencySum: 7 * time.Millisecond,
		Buckets: func() []uint64 {
			b := make([]uint64, len(handler.LatencyBuckets))
			for i := range b {
				b[i] = 7
			}
			return b
		}()}
	snap.BySenseKey[5] = 3
	snap.Busy = 2
	snap.RingOutstanding = 4
	snap.BusyFor, snap.BusyEscalations = 1500*time.Millisecond, 2
	src := fakeSource{{DeviceStatus: handler.DeviceStatus{Name: "lun0", Handler: "rbd", Size: 1 << 30, InFlight: 1, State: "given-up", GiveUps: 3}, Snapshot: snap},
		{DeviceStatus: handler.DeviceStatus{Name: "lun1", Handler: "rbd", Size: 1 << 20}, Waiting: true}}
	srv, err := Serve("127.0.0.1:0", src, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	body := scrape(t, srv.Addr())
	for _, want := range []string{
		`gotcmu_commands_total{backend="rbd",class="read",device="lun0"} 7`,
		`gotcmu_bytes_total{backend="rbd",class="read",device="lun0"} 28672`,
		`gotcmu_command_latency_seconds_count{backend="rbd",class="read",device="lun0"} 7`,
		`gotcmu_check_conditions_total{backend="rbd",device="lun0",sense_key="illegal_request"} 3`,
		`gotcmu_status_total{backend="rbd",device="lun0",status="busy"} 2`,
		`gotcmu_ring_outstanding{backend="rbd",device="lun0"} 4`,
		`gotcmu_backend_inflight{backend="rbd",device="lun0"} 1`,
		`gotcmu_device_size_bytes{backend="rbd",device="lun0"} 1.073741824e+09`,
		`gotcmu_device_waiting{backend="rbd",device="lun0"} 0`,
		`gotcmu_busy_seconds{backend="rbd",device="lun0"} 1.5`,
		`gotcmu_busy_escalations_total{backend="rbd",device="lun0"} 2`,
		`gotcmu_device_given_up{backend="rbd",device="lun0"} 1`,
		`gotcmu_loop_give_ups_total{backend="rbd",device="lun0"} 3`,
		// A device waiting for its backend: flagged, sized, no counters.
		`gotcmu_device_waiting{backend="rbd",device="lun1"} 1`,
		`gotcmu_device_size_bytes{backend="rbd",device="lun1"} 1.048576e+06`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, `gotcmu_commands_total{backend="rbd",class="read",device="lun1"}`) {
		t.Error("counters exported for a device waiting for its backend")
	}
}

func TestServeRefusesABadAddress(t *testing.T) {
	if _, err := Serve("256.0.0.1:1", fakeSource{}, zerolog.Nop()); err == nil {
		t.Error("Serve on an invalid address succeeded")
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
