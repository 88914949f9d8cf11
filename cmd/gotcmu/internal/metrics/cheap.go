//go:build linux && cgo

package metrics

// #include <malloc.h>
import "C"

import "github.com/prometheus/client_golang/prometheus"

// descCHeap splits the C heap (glibc malloc: librados', librbd's and
// gotcmu's own cgo allocations), which the Go runtime's metrics do not
// see. RssAnon grows with either series; only in_use growing is a leak,
// free growing is memory malloc keeps in its arenas after librados'
// threads let go of it.
var descCHeap = prometheus.NewDesc("gotcmu_c_heap_bytes",
	"glibc malloc's heap (mallinfo2): in_use is allocated (including mmapped chunks), free is held by malloc's arenas but not allocated.",
	[]string{"state"}, nil)

// cHeap is a collector of descCHeap, read at every scrape. mallinfo2 walks
// every arena under its lock: microseconds, and never on the command path.
type cHeap struct{}

func (cHeap) Describe(ch chan<- *prometheus.Desc) { ch <- descCHeap }

func (cHeap) Collect(ch chan<- prometheus.Metric) {
	inUse, free := mallinfo()
	ch <- prometheus.MustNewConstMetric(descCHeap, prometheus.GaugeValue, float64(inUse), "in_use")
	ch <- prometheus.MustNewConstMetric(descCHeap, prometheus.GaugeValue, float64(free), "free")
}

// mallinfo returns the bytes malloc has allocated (its arenas' in-use
// chunks and the mmapped ones) and the bytes its arenas hold free.
func mallinfo() (inUse, free uint64) {
	mi := C.mallinfo2()
	return uint64(mi.uordblks) + uint64(mi.hblkhd), uint64(mi.fordblks)
}

// cHeapCollectors are the collectors of the C heap: one where cgo is.
func cHeapCollectors() []prometheus.Collector { return []prometheus.Collector{cHeap{}} }
