//go:build !nautilus

package rbd

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
	cephrbd "github.com/ceph/go-ceph/rbd"
)

// BenchmarkImageCost measures what an open, idle image costs the process
// (issue 16): anonymous memory and OS threads per image, and RADOS clients
// (librados' msgr-worker-0 threads, one per client), for imageCostN images
// opened by go-ceph alone (a client each, no more than librados and librbd
// need: the floor for any handler, tcmu-runner's layout) and by gotcmu's
// handler at several rbd_images_per_client. Each configuration should run
// in a process of its own (test/scale/scale.sh does: -test.bench
// '^BenchmarkImageCost/NAME$'), since glibc's arenas keep what an earlier
// one freed; the iteration count is ignored (-benchtime 1x).
func BenchmarkImageCost(b *testing.B) {
	b.Run("go-ceph", func(b *testing.B) { imageCost(b, openRaw) })
	for _, ipc := range []int{1, 4, 16} {
		b.Run("images-per-client-"+strconv.Itoa(ipc), func(b *testing.B) {
			h := Handler(Options{ImagesPerClient: ipc})
			imageCost(b, func(b *testing.B, name string) { openDevice(b, h, "rbd/"+name, imageCostSize) })
		})
	}
}

const (
	imageCostN    = 16
	imageCostSize = 16 << 20
)

// openRaw opens rbd/name on a client of its own with go-ceph, as gotcmu
// configures one (rbd_cache off), closing both at the end of the benchmark.
func openRaw(b *testing.B, name string) {
	conn, err := rados.NewConn()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Shutdown)
	if err := conn.ReadConfigFile(cluster.conf); err != nil {
		b.Fatal(err)
	}
	if err := conn.SetConfigOption("rbd_cache", "false"); err != nil {
		b.Fatal(err)
	}
	if err := conn.Connect(); err != nil {
		b.Fatal(err)
	}
	ioctx, err := conn.OpenIOContext("rbd")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ioctx.Destroy)
	im, err := cephrbd.OpenImage(ioctx, name, cephrbd.NoSnapshot)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { im.Close() })
}

func imageCost(b *testing.B, open func(*testing.B, string)) {
	needCeph(b)
	names := make([]string, imageCostN)
	for i := range names {
		names[i] = newImage(b, "rbd", imageCostSize, 22)
	}
	anon0, threads0, clients0 := processCost(b)
	for _, n := range names {
		open(b, n)
	}
	anon1, threads1, clients1 := processCost(b)
	b.ReportMetric(float64(anon1-anon0)/imageCostN, "anon-KiB/image")
	b.ReportMetric(float64(threads1-threads0)/imageCostN, "threads/image")
	b.ReportMetric(float64(clients1-clients0), "rados-clients")
	b.Logf("%d images: RssAnon %d -> %d KiB, threads %d -> %d, RADOS clients %d -> %d",
		imageCostN, anon0, anon1, threads0, threads1, clients0, clients1)
}

// processCost settles (a GC, then 3 s for librados' threads to start and
// their first allocations) and returns RssAnon in KiB, the OS threads and
// the RADOS clients (threads named msgr-worker-0) of this process.
func processCost(b *testing.B) (anonKiB, threads, clients int) {
	runtime.GC()
	time.Sleep(3 * time.Second)
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "RssAnon:" {
			anonKiB, _ = strconv.Atoi(f[1])
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range tasks {
		comm, _ := os.ReadFile("/proc/self/task/" + t.Name() + "/comm")
		if strings.TrimSpace(string(comm)) == "msgr-worker-0" {
			clients++
		}
	}
	return anonKiB, len(tasks), clients
}
