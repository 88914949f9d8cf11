package metrics

import (
	"fmt"
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

// devices is a source of n busy devices: every class has counted commands
// in every latency bucket and every sense key has fired, the most series a
// device exports.
func devices(n int) fakeSource {
	var snap handler.StatsSnapshot
	for i := range snap.Classes {
		b := make([]uint64, len(handler.LatencyBuckets))
		for j := range b {
			b[j] = uint64(j + 1)
		}
		snap.Classes[i] = handler.ClassSnapshot{Ops: 100, Bytes: 409600, LatencySum: time.Second, Buckets: b}
	}
	for k := range snap.BySenseKey {
		snap.BySenseKey[k] = 1
	}
	src := make(fakeSource, n)
	for i := range src {
		src[i] = handler.DeviceStats{DeviceStatus: handler.DeviceStatus{Name: fmt.Sprintf("lun%d", i), Handler: "rbd", Size: 1 << 30}, Snapshot: snap}
	}
	return src
}

// seriesCount is the number of samples in a scrape (lines that are not
// comments).
func seriesCount(body string) int {
	n := 0
	for _, l := range strings.Split(body, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

// The endpoint's size grows with the devices and with nothing else (issue
// 16 point 3): the same number of series for every device, whether 1 or
// 256 are served, besides the process's own (Go runtime and process
// collectors).
func TestScrapeSeriesPerDeviceConstant(t *testing.T) {
	count := func(n int) int {
		srv, err := Serve("127.0.0.1:0", devices(n), zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Stop()
		return seriesCount(scrape(t, srv.Addr()))
	}
	base := count(0)
	one, many := count(1)-base, count(256)-base
	t.Logf("series: %d for the process, %d per device, %d for 256 devices", base, one, many)
	if one == 0 || many != 256*one {
		t.Errorf("256 devices export %d series, want 256 x %d", many, one)
	}
}

// BenchmarkScrape256 is one scrape of the endpoint with 256 busy devices,
// HTTP included (make scale quotes it for the status views at N = 256).
func BenchmarkScrape256(b *testing.B) {
	srv, err := Serve("127.0.0.1:0", devices(256), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	size := 0
	for b.Loop() {
		resp, err := http.Get("http://" + srv.Addr() + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		size = int(n)
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}
