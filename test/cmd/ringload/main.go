//go:build !nautilus

package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/rbd"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command line.
type options struct {
	pool            string
	images          []string
	size            int64
	rw              string
	bs              int
	qd              int
	runtime         time.Duration
	ramp            time.Duration
	imagesPerClient int
	cpuProfile      string
	json            bool
	dataIn          bool
}

// result is what one run measured, over every device.
type result struct {
	RW      string  `json:"rw"`
	BS      int     `json:"bs"`
	QD      int     `json:"qd"`
	Images  int     `json:"images"`
	Seconds float64 `json:"seconds"`
	IOs     int64   `json:"ios"`
	IOPS    float64 `json:"iops"`
	MBps    float64 `json:"mb_per_s"`
	// LatUs is the mean completion latency by Little's law: queue depth
	// over throughput.
	LatUs  float64 `json:"lat_us"`
	Errors int64   `json:"errors"`
	// Busy counts BUSY answers, retried (taking the exclusive lock).
	Busy int64 `json:"busy"`
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ringload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var image, images string
	fs.StringVar(&image, "image", "rbd/bench", "`pool/image` to drive (its config string without the rbd/ prefix)")
	fs.StringVar(&images, "images", "", "comma-separated images of -image's pool to drive at once, one device each (overrides -image's name)")
	fs.Int64Var(&o.size, "size", 0, "device size in bytes: the image's size (required)")
	fs.StringVar(&o.rw, "rw", "randread", "pattern: randread, randwrite, read or write (sequential)")
	fs.IntVar(&o.bs, "bs", 4096, "bytes per command, a multiple of 512")
	fs.IntVar(&o.qd, "qd", 32, "commands in flight per device")
	fs.DurationVar(&o.runtime, "runtime", 10*time.Second, "measured time")
	fs.DurationVar(&o.ramp, "ramp", time.Second, "unmeasured warm-up before it")
	fs.IntVar(&o.imagesPerClient, "images-per-client", 0, "rbd Options.ImagesPerClient (0: the backend's default)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured time to `file`")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object")
	fs.BoolVar(&o.dataIn, "datain", false, "let the fake poison every read buffer and copy it out (uiotest's checks; costs the fake two passes over the data)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pool, name, ok := strings.Cut(image, "/")
	if !ok || pool == "" || name == "" {
		fmt.Fprintf(stderr, "ringload: -image %q is not pool/image\n", image)
		return 2
	}
	o.pool, o.images = pool, []string{name}
	if images != "" {
		o.images = strings.Split(images, ",")
	}
	switch {
	case o.size <= 0 || o.size%512 != 0:
		fmt.Fprintln(stderr, "ringload: -size must be the image size, a positive multiple of 512")
		return 2
	case o.bs <= 0 || o.bs%512 != 0 || int64(o.bs) > o.size:
		fmt.Fprintln(stderr, "ringload: -bs must be a positive multiple of 512 within the device")
		return 2
	case o.qd <= 0 || o.qd > 1024:
		fmt.Fprintln(stderr, "ringload: -qd must be 1 to 1024")
		return 2
	}
	switch o.rw {
	case "randread", "randwrite", "read", "write":
	default:
		fmt.Fprintf(stderr, "ringload: -rw %q: want randread, randwrite, read or write\n", o.rw)
		return 2
	}
	res, err := load(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ringload: %v\n", err)
		return 1
	}
	if o.json {
		json.NewEncoder(stdout).Encode(res)
	} else {
		fmt.Fprintf(stdout, "ringload %s bs=%d qd=%d images=%d: %.0f IOPS, %.1f MB/s, mean latency %.0f us (%d IOs in %.1f s, %d busy, %d errors)\n",
			res.RW, res.BS, res.QD, res.Images, res.IOPS, res.MBps, res.LatUs, res.IOs, res.Seconds, res.Busy, res.Errors)
	}
	if res.Errors > 0 {
		return 1
	}
	return 0
}

// load opens one device per image, runs the pattern on all of them for
// the ramp and the measured time, and closes them.
func load(o options, stderr io.Writer) (result, error) {
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	tb := newRunTB(stderr)
	defer tb.cleanup()
	h := rbd.Handler(rbd.Options{ImagesPerClient: o.imagesPerClient, Host: "ringload"})
	var drivers []*driver
	for i, name := range o.images {
		d, err := open(tb, h, o, name, log.With().Str("image", name).Logger())
		if err != nil {
			return result{}, err
		}
		d.seed = uint64(0x9e3779b97f4a7c15) * uint64(i+1)
		drivers = append(drivers, d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var counting atomic.Bool
	var wg sync.WaitGroup
	for _, d := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.drive(ctx, &counting)
		}()
	}
	time.Sleep(o.ramp)
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			cancel()
			wg.Wait()
			return result{}, fmt.Errorf("create profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			cancel()
			wg.Wait()
			return result{}, fmt.Errorf("start profile: %w", err)
		}
	}
	counting.Store(true)
	start := time.Now()
	time.Sleep(o.runtime)
	counting.Store(false)
	elapsed := time.Since(start)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	cancel()
	wg.Wait()
	res := result{RW: o.rw, BS: o.bs, QD: o.qd, Images: len(drivers), Seconds: elapsed.Seconds()}
	var errs []error
	for _, d := range drivers {
		res.IOs += d.ios.Load()
		res.Errors += d.errors.Load()
		res.Busy += d.busy.Load()
		if err := d.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := tb.err(); err != nil {
		errs = append(errs, err)
	}
	res.IOPS = float64(res.IOs) / res.Seconds
	res.MBps = res.IOPS * float64(o.bs) / 1e6
	if res.IOPS > 0 {
		res.LatUs = float64(o.qd*len(drivers)) / res.IOPS * 1e6
	}
	return res, errors.Join(errs...)
}

// driver is one device under load: a fake kernel, a handler.Device with
// an rbd backend, and the pattern's state.
type driver struct {
	o    options
	k    *uiotest.Kernel
	dev  *handler.Device
	stop context.CancelFunc
	done chan error // Run's result
	// runErr is set by drive when Run ended under load.
	runErr error

	seed   uint64 // xorshift state for random offsets
	next   int64  // next sequential offset
	data   []byte // Data-Out of every write
	ios    atomic.Int64
	busy   atomic.Int64
	errors atomic.Int64
}

// SCSI status codes (SAM-5 5.3).
const (
	statusGood = 0x00
	statusBusy = 0x08
)

func open(tb *runTB, h handler.Handler, o options, name string, log zerolog.Logger) (*driver, error) {
	info := handler.DeviceInfo{
		Name:       name,
		Config:     o.pool + "/" + name,
		Size:       o.size,
		BlockSize:  512,
		MaxSectors: uint32(max(o.bs/512, 1024)),
		WriteCache: true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	be, err := h.Open(ctx, info, log)
	if err != nil {
		return nil, fmt.Errorf("open %s/%s: %w", o.pool, name, err)
	}
	// The data area holds every command in flight, in 4 KiB blocks as
	// the kernel's default data_pages_per_blk.
	dataSize := (o.qd*o.bs + 4095) &^ 4095
	const ringSize = 1<<20 - 128
	region, err := unix.Mmap(-1, 0, 128+ringSize+dataSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("map the fake region: %w", err)
	}
	// Cleanups run last-in first-out: the fake stops before the unmap.
	tb.Cleanup(func() { unix.Munmap(region) })
	// The doorbell fd lets librbd's thread answer and ring as it does with
	// the uio fd of a real device (rbd answers reads and writes in C);
	// without it those answers wait for the loop's next wake-up.
	k := uiotest.New(tb, uiotest.Config{RingSize: ringSize, DataSize: dataSize, Region: region, NoDataIn: !o.dataIn, DoorbellFD: true})
	dev, err := handler.NewDevice(log, info, k.Ring(), k, be, nil)
	if err != nil {
		be.Close()
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.Background())
	d := &driver{o: o, k: k, dev: dev, stop: stop, done: make(chan error, 1), data: make([]byte, o.bs)}
	for i := range d.data {
		d.data[i] = byte(i*7 + i>>9)
	}
	go func() { d.done <- dev.Run(runCtx) }()
	return d, nil
}

// drive keeps qd commands in flight until ctx ends, then waits for the
// last of them; completions are counted while counting is set.
func (d *driver) drive(ctx context.Context, counting *atomic.Bool) {
	inflight := 0
	for ; inflight < d.o.qd; inflight++ {
		if !d.submit(ctx) {
			break
		}
	}
	for inflight > 0 {
		var c uiotest.Completion
		select {
		case c = <-d.k.Completions():
		case err := <-d.done:
			d.runErr = fmt.Errorf("device loop ended with %d commands in flight: %v", inflight, err)
			d.done <- err
			d.errors.Add(1)
			return
		}
		inflight--
		switch c.Status {
		case statusGood:
			if counting.Load() {
				d.ios.Add(1)
			}
		case statusBusy:
			// The lock gate answers BUSY while it takes the image's
			// exclusive lock (implicit ALUA); an initiator retries.
			d.busy.Add(1)
			time.Sleep(time.Millisecond)
		default:
			if d.errors.Add(1) <= 5 {
				fmt.Fprintf(os.Stderr, "ringload: command %d: status %#x sense % x\n", c.ID, c.Status, c.Sense[:min(len(c.Sense), 18)])
			}
		}
		if ctx.Err() == nil && d.submit(ctx) {
			inflight++
		}
	}
}

// submit queues the pattern's next command; false once ctx has ended.
func (d *driver) submit(ctx context.Context) bool {
	blocks := int64(d.o.bs / 512)
	var off int64
	switch d.o.rw {
	case "randread", "randwrite":
		d.seed ^= d.seed << 13
		d.seed ^= d.seed >> 7
		d.seed ^= d.seed << 17
		off = int64(d.seed%uint64(d.o.size/int64(d.o.bs))) * int64(d.o.bs)
	default:
		if d.next+int64(d.o.bs) > d.o.size {
			d.next = 0
		}
		off = d.next
		d.next += int64(d.o.bs)
	}
	cdb := make([]byte, 16)
	req := uiotest.Request{CDB: cdb}
	if d.o.rw == "randread" || d.o.rw == "read" {
		cdb[0] = 0x88 // READ(16)
		req.DataInLen = d.o.bs
	} else {
		cdb[0] = 0x8a // WRITE(16)
		req.DataOut = d.data
	}
	binary.BigEndian.PutUint64(cdb[2:], uint64(off/512))
	binary.BigEndian.PutUint32(cdb[10:], uint32(blocks))
	if _, err := d.k.SubmitWait(ctx, req); err != nil {
		if ctx.Err() == nil {
			d.errors.Add(1)
			fmt.Fprintf(os.Stderr, "ringload: submit: %v\n", err)
		}
		return false
	}
	return true
}

// close stops the device loop and closes the backend once nothing is in
// flight.
func (d *driver) close() error {
	d.stop()
	err := errors.Join(d.runErr, <-d.done)
	for d.dev.InFlight() > 0 {
		time.Sleep(time.Millisecond)
	}
	if cerr := d.dev.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	d.k.Close()
	return err
}
