package uio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Waiter blocks until the kernel has signalled the ring. *Device and the
// fake kernel in uio/uiotest both implement it, so a device's command loop
// runs unchanged against either:
//
//	for {
//		if err := w.Wait(ctx); err != nil { ... }
//		ring.Refresh(); for ring.Next(cmd) { ... }; ring.Release(); ring.Kick()
//	}
//
// The contract: the first Wait returns at once (so commands queued before
// the device was opened are drained); each later Wait returns once at
// least one notification arrived since the previous Wait returned, several
// notifications coalescing into one return, exactly as a 4-byte read of a
// uio fd does. Wait returns ctx.Err() when ctx is done, an error wrapping
// os.ErrClosed after Close, and an error wrapping ErrDeviceGone (and
// syscall.EIO) once the device was removed. Wait is called by one
// goroutine at a time.
type Waiter interface {
	Wait(ctx context.Context) error
}

// ErrDeviceGone means the kernel removed the device: reads, writes and
// polls of its uio fd fail with EIO (uio_unregister_device).
var ErrDeviceGone = errors.New("uio device removed")

// Roots are the directories gotcmu finds the kernel's files under. The
// zero value means the real system paths; tests point the fields at a
// temporary tree.
type Roots struct {
	SysDir    string // sysfs mount point, default /sys
	DevDir    string // device nodes, default /dev
	ConfigDir string // configfs mount point, default /sys/kernel/config
}

func (r Roots) sys() string      { return or(r.SysDir, "/sys") }
func (r Roots) dev() string      { return or(r.DevDir, "/dev") }
func (r Roots) configfs() string { return or(r.ConfigDir, "/sys/kernel/config") }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (r Roots) uioDir(minor int) string {
	return filepath.Join(r.sys(), "class", "uio", "uio"+strconv.Itoa(minor))
}

// Bounds on sysfs reads: the files are small, but their contents are
// not ours.
const (
	maxSysfsAttr = 4096 // one page, the most a sysfs/configfs show returns
	maxSizeAttr  = 64
)

// A uio map larger than this is not a TCMU map: 8 MiB command area plus
// the largest data area global_max_data_area_mb can allow (an int).
const maxMapSize = 1 << 40

// Device is one open TCMU uio device: the /dev/uioN fd and its mapping.
//
// The fd is not in Go's netpoller itself: it sits in an epoll set of the
// device's own (wait.go), with the fd a backend signals its completions on
// (Watch), a wake eventfd and a timerfd, and only that epoll fd is in the
// netpoller, so one wake-up serves commands and completions alike. Ring, Name, Minor and Configfs
// may be called from any goroutine. Wait and WaitEvents are called by one
// goroutine at a time; Close may be called concurrently with them and
// makes them return. Close unmaps the region: every goroutine that touches
// the Ring or a Command's buffers must have stopped first.
type Device struct {
	roots Roots
	minor int
	name  string
	mem   []byte
	ring  *Ring
	unmap func([]byte) error

	// fd is the uio fd (non-blocking), -1 once closed; fdMu guards its
	// use by the doorbell against Close.
	fdMu sync.RWMutex
	fd   int
	bell [4]byte // written by the doorbell; the value is ignored

	// The waiting side (wait.go), owned by the goroutine holding waitMu.
	waitMu  sync.Mutex
	ep      int // epoll over fd, wake, tfd and the watched fd; -1 until the first wait
	epf     *os.File
	epRC    syscall.RawConn
	epollFn func(uintptr) bool // epollWait, bound once
	nev     int                // what epollWait found
	everr   error
	tfd     int       // timerfd: WaitEvents' timeout, one-shot
	tickAt  time.Time // when it fires; zero when disarmed
	watched int       // the fd Watch added, or -1
	primed  bool
	ack     [4]byte // filled by the event count read
	count   [8]byte // an eventfd's or timerfd's count, read and dropped
	evs     [4]unix.EpollEvent
	// wake is an eventfd that Close and a cancelled context write to wake
	// a blocked wait.
	wake int

	mu     sync.Mutex
	done   <-chan struct{} // ctx.Done() that the watch below belongs to
	stop   func() bool     // stops the context.AfterFunc watching done
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// Open opens /dev/uio<minor> on the real system; see Roots.Open.
func Open(minor int) (*Device, error) { return Roots{}.Open(minor) }

// Open opens /dev/uio<minor> (O_RDWR|O_NONBLOCK|O_CLOEXEC), maps exactly
// the size in /sys/class/uio/uio<minor>/maps/map0/size at offset 0 (the
// kernel refuses any other size, tcmu_mmap) and checks the mailbox.
// The kernel allows one open per device: a second gets EBUSY.
func (r Roots) Open(minor int) (*Device, error) {
	if minor < 0 {
		return nil, fmt.Errorf("open uio device: negative minor %d", minor)
	}
	dir := r.uioDir(minor)
	name, err := readAttr(filepath.Join(dir, "name"), maxSysfsAttr)
	if err != nil {
		return nil, fmt.Errorf("open uio%d: %w", minor, err)
	}
	sizePath := filepath.Join(dir, "maps", "map0", "size")
	sizeStr, err := readAttr(sizePath, maxSizeAttr)
	if err != nil {
		return nil, fmt.Errorf("open uio%d: %w", minor, err)
	}
	// The kernel prints the size with %pa: "0x0000000040800000".
	size, err := strconv.ParseUint(sizeStr, 0, 64)
	if err != nil {
		return nil, fmt.Errorf("open uio%d: parse %s %q: %w", minor, sizePath, sizeStr, err)
	}
	if size < MailboxSize || size > maxMapSize {
		return nil, fmt.Errorf("open uio%d: map size %d in %s is not a TCMU map", minor, size, sizePath)
	}

	path := filepath.Join(r.dev(), "uio"+strconv.Itoa(minor))
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mmap %d bytes of %s: %w", size, path, err)
	}
	d, err := newDevice(r, minor, name, fd, mem, unix.Munmap)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return d, nil
}

// newDevice wraps an open non-blocking fd and its mapping. On error it
// closes both.
func newDevice(r Roots, minor int, name string, fd int, mem []byte, unmap func([]byte) error) (*Device, error) {
	d := &Device{roots: r, minor: minor, name: name, fd: fd, mem: mem, unmap: unmap, ep: -1, tfd: -1, watched: -1, wake: -1}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("create wake eventfd for uio%d: %w", minor, err)
	}
	d.wake = wake
	ring, err := NewRing(mem, d.doorbell)
	if err != nil {
		d.Close()
		return nil, err
	}
	ring.SetDoorbellFD(fd)
	d.ring = ring
	return d, nil
}

// Ring returns the device's command ring.
func (d *Device) Ring() *Ring { return d.ring }

// Name returns the uio name the device had when it was opened,
// "tcm-user/<hba>/<dev_name>[/<dev_config>]" (see ParseUIOName). The
// kernel renames the device when dev_config is reconfigured.
func (d *Device) Name() string { return d.name }

// Minor returns the uio minor: the device node is /dev/uio<minor>.
func (d *Device) Minor() int { return d.minor }

// Configfs returns the device's configfs view, found from its uio name.
func (d *Device) Configfs() (*Configfs, error) { return d.roots.Configfs(d.name) }

// Found is a uio device Scan found.
type Found struct {
	Minor int    // /dev/uio<Minor>
	Name  string // the uio name, "tcm-user/..."
}

// Scan lists the TCMU devices that exist now, on the real system; see
// Roots.Scan.
func Scan() ([]Found, error) { return Roots{}.Scan() }

// Scan lists every /sys/class/uio/uio<N> whose name starts with
// "tcm-user/", in minor order: the devices a daemon adopts at start. No
// /sys/class/uio (uio not loaded) means no devices. A device removed
// while Scan runs is left out.
func (r Roots) Scan() ([]Found, error) {
	dir := filepath.Join(r.sys(), "class", "uio")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan uio devices: %w", err)
	}
	var found []Found
	for _, e := range entries {
		minor, ok := parseUIONode(e.Name())
		if !ok {
			continue
		}
		name, err := readAttr(filepath.Join(dir, e.Name(), "name"), maxSysfsAttr)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("scan uio devices: %w", err)
		}
		if strings.HasPrefix(name, uioNamePrefix) {
			found = append(found, Found{Minor: minor, Name: name})
		}
	}
	// ReadDir sorts by name, which puts uio10 before uio2.
	slices.SortFunc(found, func(a, b Found) int { return a.Minor - b.Minor })
	return found, nil
}

// parseUIONode parses "uio<N>" as N.
func parseUIONode(s string) (int, bool) {
	digits, ok := strings.CutPrefix(s, "uio")
	if !ok || digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// readAttr reads a sysfs or configfs attribute of at most max bytes and
// returns it without the trailing newline.
func readAttr(path string, max int) (string, error) {
	b, err := readBounded(path, max)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// readBounded reads a whole file that must not exceed max bytes.
func readBounded(path string, max int) ([]byte, error) {
	f, err := os.Open(path) // errors name the path and keep the errno
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("read %s: longer than %d bytes", path, max)
	}
	return b, nil
}
