package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const usage = `usage:
  ackwriter write  -dev PATH -log PATH [-bs 4096] [-blocks N] [-offset 0] [-depth 8]
                   [-duration 20s] [-writes N] [-retry-delay 200ms] [-give-up 90s] [-direct=true]
  ackwriter verify -dev PATH -log PATH [-direct=true] [-show 20]
exit status: 0 all well; 1 an acknowledged write was lost or none was acknowledged at all
(verify), or the device never recovered (write); 2 bad usage or an I/O error outside the
write path.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var code int
	switch os.Args[1] {
	case "write":
		code = cmdWrite(ctx, os.Args[2:], os.Stdout)
	case "verify":
		code = cmdVerify(os.Args[2:], os.Stdout)
	default:
		fmt.Fprint(os.Stderr, usage)
		code = 2
	}
	os.Exit(code)
}

func cmdWrite(ctx context.Context, args []string, out io.Writer) int {
	fs := flag.NewFlagSet("ackwriter write", flag.ContinueOnError)
	dev := fs.String("dev", "", "block device (or file) to write")
	logPath := fs.String("log", "", "ack log to create")
	bs := fs.Int("bs", 4096, "block size in bytes (multiple of 512)")
	blocks := fs.Uint64("blocks", 0, "blocks in the region (0: up to the end of the device)")
	offset := fs.Int64("offset", 0, "byte offset of the region (multiple of 512)")
	depth := fs.Int("depth", 8, "writes in flight")
	duration := fs.Duration("duration", 20*time.Second, "how long to keep starting writes (0: until -writes)")
	writes := fs.Int64("writes", 0, "stop after this many acknowledged writes (0: no limit)")
	retryDelay := fs.Duration("retry-delay", 200*time.Millisecond, "pause before retrying a failed write")
	giveUp := fs.Duration("give-up", 90*time.Second, "fail when one write keeps failing this long")
	direct := fs.Bool("direct", true, "open with O_DIRECT|O_DSYNC")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dev == "" || *logPath == "" || !validBlockSize(*bs) || *offset < 0 || *offset%minBlockSize != 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	flags := os.O_RDWR
	if *direct {
		flags |= unix.O_DIRECT | unix.O_DSYNC
	}
	f, err := os.OpenFile(*dev, flags, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ackwriter: %v\n", err)
		return 2
	}
	defer f.Close()
	size, err := deviceSize(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ackwriter: %v\n", err)
		return 2
	}
	if *blocks == 0 && size > *offset {
		*blocks = uint64(size-*offset) / uint64(*bs)
	}
	if *blocks == 0 || *offset+int64(*blocks)*int64(*bs) > size {
		fmt.Fprintf(os.Stderr, "ackwriter: %d blocks of %d at offset %d do not fit in %s (%d bytes)\n", *blocks, *bs, *offset, *dev, size)
		return 2
	}
	h := logHeader{Run: rand.Uint64(), BlockSize: *bs, Blocks: *blocks, Offset: *offset}
	alog, err := createAckLog(*logPath, h)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ackwriter: %v\n", err)
		return 2
	}
	w := &writer{
		cfg: writeConfig{
			Header: h, Depth: *depth, Duration: *duration, MaxWrites: *writes,
			RetryDelay: *retryDelay, GiveUp: *giveUp, Seed: h.Run,
		},
		dev:    f,
		log:    alog,
		newBuf: alignedBuffer,
		logf:   func(format string, a ...any) { fmt.Fprintf(out, "ackwriter: "+format+"\n", a...) },
	}
	fmt.Fprintf(out, "ackwriter write: %s depth=%d started\n", h, *depth)
	start := time.Now()
	stats, runErr := w.run(ctx)
	if err := alog.Close(); err != nil && runErr == nil {
		runErr = err
	}
	fmt.Fprintf(out, "ackwriter write: issued=%d acknowledged=%d errors=%d acknowledged-after-last-error=%d elapsed=%.1fs\n",
		stats.Issued, stats.Acked, stats.Errors, stats.Recovered, time.Since(start).Seconds())
	if runErr != nil {
		fmt.Fprintf(os.Stderr, "ackwriter write: %v\n", runErr)
		return 1
	}
	return 0
}

func cmdVerify(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("ackwriter verify", flag.ContinueOnError)
	dev := fs.String("dev", "", "block device (or file) to read")
	logPath := fs.String("log", "", "ack log written by ackwriter write")
	direct := fs.Bool("direct", true, "open with O_DIRECT")
	show := fs.Int("show", 20, "problems to print")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dev == "" || *logPath == "" {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	lf, err := os.Open(*logPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ackwriter: %v\n", err)
		return 2
	}
	h, blocks, err := readAckLog(lf)
	lf.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ackwriter: %v\n", err)
		return 2
	}
	flags := os.O_RDONLY
	if *direct {
		flags |= unix.O_DIRECT
	}
	f, err := os.OpenFile(*dev, flags, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ackwriter: %v\n", err)
		return 2
	}
	defer f.Close()
	buf, err := alignedBuffer(h.BlockSize)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ackwriter: %v\n", err)
		return 2
	}
	r, err := verifyBlocks(h, blocks, readerBlocks(f, h), buf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ackwriter verify: %v\n", err)
		return 2
	}
	for i, p := range r.Problems {
		if i == *show {
			fmt.Fprintf(out, "ackwriter verify: ... %d more problems\n", len(r.Problems)-i)
			break
		}
		fmt.Fprintf(out, "ackwriter verify: %s\n", p)
	}
	fmt.Fprintf(out, "ackwriter verify: acknowledged=%d verified=%d lost=%d blocks=%d newer-unacknowledged=%d\n",
		r.Acknowledged, r.Verified, r.Lost, r.Blocks, r.Newer)
	switch {
	case r.Lost > 0:
		return 1
	case r.Acknowledged == 0:
		// Nothing was acknowledged, so nothing was proven: a run that wrote
		// nothing must not pass as one that lost nothing.
		fmt.Fprintln(out, "ackwriter verify: the log holds no acknowledged write; nothing verified")
		return 1
	}
	return 0
}

// deviceSize returns the size of a block device or regular file.
func deviceSize(f *os.File) (int64, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size %s: %w", f.Name(), err)
	}
	if size == 0 {
		return 0, fmt.Errorf("size %s: empty", f.Name())
	}
	return size, nil
}

// alignedBuffer returns n bytes aligned to a page, as O_DIRECT needs: an
// anonymous mapping is page aligned by construction.
func alignedBuffer(n int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("mmap an I/O buffer: %w", err)
	}
	return b, nil
}
