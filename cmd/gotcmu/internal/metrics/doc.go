// Package metrics exports gotcmu's per-device counters as Prometheus
// metrics. It reads snapshots the device manager takes from atomic
// counters, so scraping never touches the command path. It never listens
// on anything but the address it is given (loopback by default).
package metrics
