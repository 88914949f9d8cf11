//go:build !nautilus

package rbd

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
	cephrbd "github.com/ceph/go-ceph/rbd"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// BenchmarkImageCost measures what an open, idle image costs the process
// (issue 16): anonymous memory, the C heap in use, OS threads and fds per
// image, and RADOS clients (librados' msgr-worker-0 threads, one per
// client), for imageCostN images opened by go-ceph alone (a client each,
// no more than librados and librbd need: the floor for any handler), the
// same with the image's service-map entry (tcmu-runner's layout), the same
// with gotcmu's bound on mon commands, and by gotcmu's handler at several
// rbd_images_per_client. Each configuration should run
// in a process of its own (test/scale/scale.sh does: -test.bench
// '^BenchmarkImageCost/NAME$'), since glibc's arenas keep what an earlier
// one freed; the iteration count is ignored (-benchtime 1x).
func BenchmarkImageCost(b *testing.B) {
	b.Run("go-ceph", func(b *testing.B) { imageCost(b, func(b *testing.B, name string) { openRaw(b, name) }) })
	b.Run("go-ceph-registered", func(b *testing.B) {
		imageCost(b, func(b *testing.B, name string) { openRaw(b, name).registered(b, name) })
	})
	// gotcmu bounds mon commands (conn.go: rados_mon_op_timeout) and runs
	// two at open (poolNonRotational); librados then arms a timer on the
	// client's io_context, whose reactor costs an epoll set, an eventfd
	// and a timerfd per client that go-ceph's plain open does not have.
	b.Run("go-ceph-mon-op-timeout", func(b *testing.B) {
		imageCost(b, func(b *testing.B, name string) {
			r := openRaw(b, name, [2]string{"rados_mon_op_timeout", "30"})
			if _, err := poolNonRotational(r.conn, "rbd"); err != nil {
				b.Fatal(err)
			}
		})
	})
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

// rawImage is an image openRaw opened, with its client.
type rawImage struct {
	conn  *rados.Conn
	image *cephrbd.Image
}

// openRaw opens rbd/name on a client of its own with go-ceph, as gotcmu
// configures one (rbd_cache off) and with the options of extra, closing
// both at the end of the benchmark.
func openRaw(b *testing.B, name string, extra ...[2]string) rawImage {
	conn, ioctx, im := openRawImage(b, name, extra...)
	b.Cleanup(conn.Shutdown)
	b.Cleanup(ioctx.Destroy)
	b.Cleanup(func() { im.Close() })
	return rawImage{conn, im}
}

// openRawImage is openRaw without the clean-ups: the caller closes.
func openRawImage(b *testing.B, name string, extra ...[2]string) (*rados.Conn, *rados.IOContext, *cephrbd.Image) {
	conn, err := rados.NewConn()
	if err != nil {
		b.Fatal(err)
	}
	if err := conn.ReadConfigFile(cluster.conf); err != nil {
		b.Fatal(err)
	}
	for _, o := range append([][2]string{{"rbd_cache", "false"}}, extra...) {
		if err := conn.SetConfigOption(o[0], o[1]); err != nil {
			b.Fatal(err)
		}
	}
	if err := conn.Connect(); err != nil {
		b.Fatal(err)
	}
	ioctx, err := conn.OpenIOContext("rbd")
	if err != nil {
		b.Fatal(err)
	}
	im, err := cephrbd.OpenImage(ioctx, name, cephrbd.NoSnapshot)
	if err != nil {
		b.Fatal(err)
	}
	return conn, ioctx, im
}

// registered adds the image to Ceph's service map on its client, as
// tcmu-runner does for each image it opens (rados_service_register): with
// it the raw open is tcmu-runner's layout.
func (r rawImage) registered(b *testing.B, name string) {
	id, err := r.image.GetId()
	if err != nil {
		b.Fatal(err)
	}
	svc, err := registerService(r.conn, nil, zerolog.Nop(), "bench", Config{Pool: "rbd", Image: name}, id)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.close)
}

func imageCost(b *testing.B, open func(*testing.B, string)) {
	needCeph(b)
	names := make([]string, imageCostN)
	for i := range names {
		names[i] = newImage(b, "rbd", imageCostSize, 22)
	}
	anon0, threads0, clients0 := processCost(b)
	fds0, heap0 := fdKinds(b), cHeapInUse()
	for _, n := range names {
		open(b, n)
	}
	anon1, threads1, clients1 := processCost(b)
	fds1, heap1 := fdKinds(b), cHeapInUse()
	b.ReportMetric(float64(anon1-anon0)/imageCostN, "anon-KiB/image")
	b.ReportMetric((float64(heap1)-float64(heap0))/1024/imageCostN, "c-heap-KiB/image")
	b.ReportMetric(float64(threads1-threads0)/imageCostN, "threads/image")
	b.ReportMetric(float64(clients1-clients0), "rados-clients")
	b.ReportMetric(float64(fds1[""]-fds0[""])/imageCostN, "fds/image")
	var kinds []string
	for k, n := range fds1 {
		if k != "" && n != fds0[k] {
			kinds = append(kinds, fmt.Sprintf("%s %+.2f", k, float64(n-fds0[k])/imageCostN))
		}
	}
	sort.Strings(kinds)
	b.Logf("%d images: RssAnon %d -> %d KiB, threads %d -> %d, RADOS clients %d -> %d, fds %d -> %d; per image: %s",
		imageCostN, anon0, anon1, threads0, threads1, clients0, clients1, fds0[""], fds1[""], strings.Join(kinds, ", "))
}

// fdKinds counts this process's open fds by what they are ("" holds the
// total): an anon inode by its name ([eventpoll], [eventfd], [timerfd]),
// a socket, a pipe, or "file".
func fdKinds(t testing.TB) map[string]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own fd, closed by now
		}
		kind := "file"
		switch {
		case strings.HasPrefix(l, "anon_inode:"):
			kind = strings.TrimPrefix(l, "anon_inode:")
		case strings.HasPrefix(l, "socket:"):
			kind = "socket"
		case strings.HasPrefix(l, "pipe:"):
			kind = "pipe"
		}
		n[kind]++
		n[""]++
	}
	return n
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

// BenchmarkImageClose measures what closing one open, idle image costs
// (issue 16: stopping with 256 LUNs took gotcmu 1.9x tcmu-runner's time in
// the guest): the wall time and this process's CPU time (getrusage) of each
// of imageCostN closes (CLOSE_IMAGES), one after the other, for tcmu-runner's layout on
// go-ceph (rbd_close, the service-map entry's client shut down with the
// image's own: rados_shutdown) and for gotcmu's Image.Close, which the
// manager's shutdown calls, at rbd_images_per_client 1 and 4. Run each in
// a process of its own, as BenchmarkImageCost.
func BenchmarkImageClose(b *testing.B) {
	b.Run("go-ceph-registered", func(b *testing.B) {
		closeCost(b, func(b *testing.B, name string) func() {
			conn, ioctx, im := openRawImage(b, name)
			id, err := im.GetId()
			if err != nil {
				b.Fatal(err)
			}
			svc, err := registerService(conn, nil, zerolog.Nop(), "bench", Config{Pool: "rbd", Image: name}, id)
			if err != nil {
				b.Fatal(err)
			}
			return func() {
				svc.close()
				im.Close()
				ioctx.Destroy()
				conn.Shutdown()
			}
		})
	})
	for _, ipc := range []int{1, 4} {
		b.Run("images-per-client-"+strconv.Itoa(ipc), func(b *testing.B) {
			h := Handler(Options{ImagesPerClient: ipc})
			closeCost(b, func(b *testing.B, name string) func() {
				im := openDevice(b, h, "rbd/"+name, imageCostSize)
				return func() { im.Close() }
			})
		})
	}
	// The C heap trimmed after every client's shutdown, as before
	// 7878e45: what that cost grows with the number of clients.
	b.Run("images-per-client-1-trim-each", func(b *testing.B) {
		defer func(d time.Duration) { trimDelay = d }(trimDelay)
		trimDelay = 0
		h := Handler(Options{ImagesPerClient: 1})
		closeCost(b, func(b *testing.B, name string) func() {
			im := openDevice(b, h, "rbd/"+name, imageCostSize)
			return func() { im.Close() }
		})
	})
}

// closeCost opens CLOSE_IMAGES images (default imageCostN) with open and
// reports what closing them one after the other cost.
func closeCost(b *testing.B, open func(*testing.B, string) func()) {
	needCeph(b)
	n := envInt("CLOSE_IMAGES", imageCostN)
	closers := make([]func(), n)
	for i := range closers {
		closers[i] = open(b, newImage(b, "rbd", imageCostSize, 22))
	}
	processCost(b) // settled: librados' threads started
	var wall, cpu, worst time.Duration
	for _, c := range closers {
		t0, c0 := time.Now(), cpuTime(b)
		c()
		w := time.Since(t0)
		wall, cpu, worst = wall+w, cpu+cpuTime(b)-c0, max(worst, w)
	}
	b.ReportMetric(float64(wall.Microseconds())/1000/float64(n), "close-ms/image")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "close-cpu-ms/image")
	b.ReportMetric(float64(worst.Microseconds())/1000, "slowest-close-ms")
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkImageOpen measures what opening an image costs this process
// (issue 16: adopting 256 LUNs took gotcmu 1.20x tcmu-runner's time in the
// guest, creating them 1.11x): the wall time and CPU time (getrusage) per
// open of OPEN_IMAGES images (default imageCostN), OPEN_PARALLEL at a time
// (default 1: as LUNs are created, one after the other), for
// tcmu-runner's open on go-ceph (a client, the image, its service-map
// entry, the pool's device class by two mon commands) and for gotcmu's
// handler at rbd_images_per_client 1. Run each in a process of its own, as
// BenchmarkImageCost.
func BenchmarkImageOpen(b *testing.B) {
	b.Run("go-ceph-registered-class", func(b *testing.B) {
		openCost(b, func(b *testing.B, name string) {
			r := openRaw(b, name, [2]string{"rados_mon_op_timeout", "30"})
			r.registered(b, name)
			if _, err := poolNonRotational(r.conn, "rbd"); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("images-per-client-1", func(b *testing.B) {
		h := Handler(Options{ImagesPerClient: 1})
		openCost(b, func(b *testing.B, name string) { openDevice(b, h, "rbd/"+name, imageCostSize) })
	})
}

// openCost creates OPEN_IMAGES images, then opens them with open,
// OPEN_PARALLEL at a time, and reports the wall and CPU time per open. The
// opens run on worker goroutines: an open that fails ends its worker
// (b.Fatal there stops only that goroutine) and fails the benchmark.
func openCost(b *testing.B, open func(*testing.B, string)) {
	needCeph(b)
	n, par := envInt("OPEN_IMAGES", imageCostN), envInt("OPEN_PARALLEL", 1)
	names := make(chan string, n)
	for range n {
		names <- newImage(b, "rbd", imageCostSize, 22)
	}
	close(names)
	processCost(b) // the benchmark's own clients settled
	t0, c0 := time.Now(), cpuTime(b)
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() {
			for name := range names {
				open(b, name)
			}
		})
	}
	wg.Wait()
	wall, cpu := time.Since(t0), cpuTime(b)-c0
	b.ReportMetric(float64(wall.Microseconds())/1000/float64(n), "open-ms/image")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "open-cpu-ms/image")
}

// envInt is the positive integer the environment variable name holds, or
// def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
