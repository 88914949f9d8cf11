//go:build !nautilus

package rbd

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
	cephrbd "github.com/ceph/go-ceph/rbd"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
)

// The integration tests run against a real Ceph: the cluster CEPH_CONF
// names if set (started with test/micro-ceph.sh, so that its directory
// also allows OSD restarts), otherwise a micro cluster this package starts
// once, on free loopback ports, and stops after the last test.

var cluster struct {
	once    sync.Once
	dir     string // micro-ceph directory; "" if unknown
	conf    string
	started bool // started by this test binary, stopped by TestMain
	err     error
	skip    string
	admin   *rados.Conn
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster.admin != nil {
		cluster.admin.Shutdown()
	}
	if cluster.started {
		out, err := exec.Command(microCeph(), "stop", cluster.dir).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "stop micro ceph: %v\n%s", err, out)
		}
		os.RemoveAll(cluster.dir)
	}
	os.Exit(code)
}

func microCeph() string {
	p, _ := filepath.Abs("../test/micro-ceph.sh")
	return p
}

const clusterDirPrefix = "gotcmu-rbd-ceph-"

// stopOrphanClusters stops the micro clusters earlier test binaries
// started and could not stop: those whose owner process is gone.
func stopOrphanClusters() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), clusterDirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) == nil {
			continue // not ours to judge, or its owner still runs
		}
		if out, err := exec.Command(microCeph(), "stop", dir).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "stop orphan micro ceph %s: %v\n%s", dir, err, out)
			continue
		}
		os.RemoveAll(dir)
	}
}

// freePort returns a loopback TCP port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// needCeph returns the admin connection of the test cluster, starting it
// on first use; it skips the test only if Ceph is not installed.
func needCeph(t testing.TB) *rados.Conn {
	t.Helper()
	cluster.once.Do(startCluster)
	if cluster.skip != "" {
		t.Skip(cluster.skip)
	}
	if cluster.err != nil {
		t.Fatal(cluster.err)
	}
	return cluster.admin
}

func startCluster() {
	if conf := os.Getenv("CEPH_CONF"); conf != "" {
		cluster.conf = conf
		if _, err := os.Stat(filepath.Join(filepath.Dir(conf), "run")); err == nil {
			cluster.dir = filepath.Dir(conf)
		}
	} else {
		for _, tool := range []string{"ceph-mon", "ceph-osd", "ceph-mgr", "ceph"} {
			if _, err := exec.LookPath(tool); err != nil {
				cluster.skip = tool + " is not installed (Debian package ceph-mon/ceph-osd/ceph-mgr/ceph-common) and CEPH_CONF is not set"
				return
			}
		}
		stopOrphanClusters()
		dir, err := os.MkdirTemp("", clusterDirPrefix)
		if err != nil {
			cluster.err = err
			return
		}
		v2, err1 := freePort()
		v1, err2 := freePort()
		if err1 != nil || err2 != nil {
			cluster.err = fmt.Errorf("find free ports: %v %v", err1, err2)
			return
		}
		cmd := exec.Command(microCeph(), "start", dir, "1073741824")
		cmd.Env = append(os.Environ(), fmt.Sprintf("MON_PORT_V2=%d", v2), fmt.Sprintf("MON_PORT_V1=%d", v1))
		cluster.dir, cluster.started = dir, true
		if out, err := cmd.CombinedOutput(); err != nil {
			cluster.err = fmt.Errorf("start micro ceph: %v\n%s", err, out)
			return
		}
		// A test binary that panics (a test timeout) skips TestMain's
		// cleanup; the next run stops its cluster by this owner file
		// (written after the start, which empties the directory).
		if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			cluster.err = err
			return
		}
		cluster.conf = filepath.Join(dir, "ceph.conf")
		os.Setenv("CEPH_CONF", cluster.conf)
	}
	conn, err := rados.NewConn()
	if err == nil {
		err = conn.ReadConfigFile(cluster.conf)
	}
	if err == nil {
		err = conn.Connect()
	}
	if err != nil {
		cluster.err = fmt.Errorf("connect admin to %s: %w", cluster.conf, err)
		return
	}
	cluster.admin = conn
}

var imageSeq atomic.Int64

// newImage creates an image of size bytes with objects of 1<<order bytes
// in pool, removed when the test ends, and returns its name.
func newImage(t testing.TB, pool string, size int64, order int) string {
	t.Helper()
	admin := needCeph(t)
	ioctx, err := admin.OpenIOContext(pool)
	if err != nil {
		t.Fatalf("open pool %s: %v", pool, err)
	}
	name := fmt.Sprintf("%s-%d-%d", strings.ReplaceAll(t.Name(), "/", "-"), os.Getpid(), imageSeq.Add(1))
	opts := cephrbd.NewRbdImageOptions()
	defer opts.Destroy()
	if err := opts.SetUint64(cephrbd.ImageOptionOrder, uint64(order)); err != nil {
		t.Fatal(err)
	}
	if err := cephrbd.CreateImage(ioctx, name, uint64(size), opts); err != nil {
		t.Fatalf("create image %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer ioctx.Destroy()
		for i := 0; i < 30; i++ {
			// The image may still have a watcher for a few seconds after a
			// blocklisted client went away.
			err := cephrbd.RemoveImage(ioctx, name)
			if err == nil || err == cephrbd.ErrNotFound {
				return
			}
			time.Sleep(time.Second)
		}
		t.Logf("image %s left behind", name)
	})
	return name
}

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

// openDevice opens config for a device of size bytes with h and closes it
// at the end of the test if the test did not.
func openDevice(t testing.TB, h handler.Handler, config string, size int64) *Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := h.Open(ctx, handler.DeviceInfo{Name: "dev", Config: config, Size: size, BlockSize: 512, MaxSectors: 1024}, testLogger(t))
	if err != nil {
		t.Fatalf("open %s: %v", config, err)
	}
	im := b.(*Image)
	t.Cleanup(func() { im.Close() })
	return im
}

// mmapBuf returns n bytes of anonymous mmapped memory, as the TCMU data
// area is: Iov buffers handed to librbd must not be Go heap.
func mmapBuf(t testing.TB, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap %d bytes: %v", n, err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// do submits one IO and waits for its completion.
func do(b handler.Backend, op handler.Op, off, length int64, fua bool, iov ...[]byte) (*handler.IO, error) {
	done := make(chan error, 1)
	io := handler.NewIO(func(_ *handler.IO, err error) { done <- err })
	io.Op, io.Off, io.Len, io.FUA, io.Iov = op, off, length, fua, iov
	b.Submit(io)
	return io, <-done
}

// split cuts b into pieces of at most n bytes, as the data area's blocks
// split a transfer.
func split(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}
