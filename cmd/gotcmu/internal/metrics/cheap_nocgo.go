//go:build !(linux && cgo)

package metrics

import "github.com/prometheus/client_golang/prometheus"

// cHeapCollectors is empty without cgo: there is no C heap to report.
func cHeapCollectors() []prometheus.Collector { return nil }
