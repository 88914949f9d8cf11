package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
)

// Source is what the collector reads: the device manager.
type Source interface {
	Stats() []handler.DeviceStats
}

var (
	labels     = []string{"device", "backend"}
	descOps    = prometheus.NewDesc("gotcmu_commands_total", "SCSI commands completed, by class.", append(labels, "class"), nil)
	descBytes  = prometheus.NewDesc("gotcmu_bytes_total", "Bytes transferred by successful reads and writes.", append(labels, "class"), nil)
	descLat    = prometheus.NewDesc("gotcmu_command_latency_seconds", "Time from ring fetch to ring completion, by class.", append(labels, "class"), nil)
	descSense  = prometheus.NewDesc("gotcmu_check_conditions_total", "Commands completed with CHECK CONDITION, by sense key.", append(labels, "sense_key"), nil)
	descStatus = prometheus.NewDesc("gotcmu_status_total", "Commands completed with BUSY or TASK SET FULL.", append(labels, "status"), nil)
	descRing   = prometheus.NewDesc("gotcmu_ring_outstanding", "Commands fetched from the ring and not yet completed.", labels, nil)
	descIO     = prometheus.NewDesc("gotcmu_backend_inflight", "Backend operations in flight.", labels, nil)
	descLock   = prometheus.NewDesc("gotcmu_lock_transitions_total", "Exclusive lock acquisitions and losses.", labels, nil)
	descSize   = prometheus.NewDesc("gotcmu_device_size_bytes", "Device capacity.", labels, nil)
	descWait   = prometheus.NewDesc("gotcmu_device_waiting", "1 while the device's backend has not opened (the device is blocked, its commands answered BUSY, and the open retried), else 0.", labels, nil)
	descBusy   = prometheus.NewDesc("gotcmu_busy_seconds", "How long the device has answered BUSY since the first BUSY of the current run, 0 without one; past its bound the device escalates.", labels, nil)
	descEscal  = prometheus.NewDesc("gotcmu_busy_escalations_total", "Runs of BUSY that lasted their bound: the device answered NOT READY (04/0C) and, with a lock gate, took its TPGs offline and reopened.", labels, nil)
	descGiven  = prometheus.NewDesc("gotcmu_device_given_up", "1 while the device's command loop has given up (ring broken too often, a fault) and waits for its retry, else 0.", labels, nil)
	descGiveUp = prometheus.NewDesc("gotcmu_loop_give_ups_total", "Times the device's command loop gave up and was retried after a backoff.", labels, nil)
)

var senseKeyNames = [16]string{
	"no_sense", "recovered_error", "not_ready", "medium_error", "hardware_error",
	"illegal_request", "unit_attention", "data_protect", "blank_check", "vendor_specific",
	"copy_aborted", "aborted_command", "reserved_c", "volume_overflow", "miscompare", "completed",
}

// Collector is a prometheus.Collector over a Source.
type Collector struct{ src Source }

// NewCollector returns a collector reading src at every scrape.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOps, descBytes, descLat, descSense, descStatus, descRing, descIO, descLock, descSize, descWait,
		descBusy, descEscal, descGiven, descGiveUp} {
		ch <- d
	}
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.src.Stats() {
		lv := []string{d.Name, d.Handler}
		if d.Waiting {
			ch <- prometheus.MustNewConstMetric(descWait, prometheus.GaugeValue, 1, lv...)
			ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(d.Size), lv...)
			continue
		}
		ch <- prometheus.MustNewConstMetric(descWait, prometheus.GaugeValue, 0, lv...)
		for i, cs := range d.Snapshot.Classes {
			class := handler.OpClass(i).String()
			ch <- prometheus.MustNewConstMetric(descOps, prometheus.CounterValue, float64(cs.Ops), d.Name, d.Handler, class)
			if handler.OpClass(i) != handler.ClassOther {
				ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(cs.Bytes), d.Name, d.Handler, class)
			}
			// A snapshot without buckets (a device that has not yet
			// counted a command) exports an empty histogram, not a panic.
			buckets := make(map[float64]uint64, len(handler.LatencyBuckets))
			for b, le := range handler.LatencyBuckets {
				if b < len(cs.Buckets) {
					buckets[le] = cs.Buckets[b]
				}
			}
			ch <- prometheus.MustNewConstHistogram(descLat, cs.Ops, cs.LatencySum.Seconds(), buckets, d.Name, d.Handler, class)
		}
		for k, n := range d.Snapshot.BySenseKey {
			if n > 0 {
				ch <- prometheus.MustNewConstMetric(descSense, prometheus.CounterValue, float64(n), d.Name, d.Handler, senseKeyNames[k])
			}
		}
		ch <- prometheus.MustNewConstMetric(descStatus, prometheus.CounterValue, float64(d.Snapshot.Busy), d.Name, d.Handler, "busy")
		ch <- prometheus.MustNewConstMetric(descStatus, prometheus.CounterValue, float64(d.Snapshot.TaskSetFull), d.Name, d.Handler, "task_set_full")
		ch <- prometheus.MustNewConstMetric(descRing, prometheus.GaugeValue, float64(d.Snapshot.RingOutstanding), lv...)
		ch <- prometheus.MustNewConstMetric(descIO, prometheus.GaugeValue, float64(d.InFlight), lv...)
		ch <- prometheus.MustNewConstMetric(descLock, prometheus.CounterValue, float64(d.Snapshot.LockTransitions), lv...)
		ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(d.Size), lv...)
		ch <- prometheus.MustNewConstMetric(descBusy, prometheus.GaugeValue, d.Snapshot.BusyFor.Seconds(), lv...)
		ch <- prometheus.MustNewConstMetric(descEscal, prometheus.CounterValue, float64(d.Snapshot.BusyEscalations), lv...)
		given := 0.0
		if d.State == "given-up" {
			given = 1
		}
		ch <- prometheus.MustNewConstMetric(descGiven, prometheus.GaugeValue, given, lv...)
		ch <- prometheus.MustNewConstMetric(descGiveUp, prometheus.CounterValue, float64(d.GiveUps), lv...)
	}
}

// Server is a running metrics endpoint.
type Server struct {
	srv  *http.Server
	addr string
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.addr }

// Stop shuts the server down.
func (s *Server) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// Serve serves /metrics on addr until Stop. Listen errors are returned at
// once; the server's own errors are logged.
func Serve(addr string, src Source, log zerolog.Logger) (*Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(cHeapCollectors()...)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: nil}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("metrics server stopped")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving metrics")
	return &Server{srv: srv, addr: ln.Addr().String()}, nil
}
