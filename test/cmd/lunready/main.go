// Command lunready reads the first 4 KiB of every block device it is given,
// all at once, each with O_DIRECT and retried until it succeeds, and prints
// how long it took until the last one answered: the "all LUNs answer I/O"
// time of test/scale (issue 16). A read on a LUN whose handler is not
// serving it yet waits in the kernel's ring, so the figure counts from
// -since (a time the caller took, e.g. just before it started the daemon)
// to the last completion.
//
// With -write it writes 4 KiB of zeros at 1 MiB instead: on user:rbd the
// first write takes the image's exclusive lock, so the figure is the time
// until every LUN can be written.
//
// Usage: lunready [-write] [-since UNIX-NANOSECONDS] [-timeout DURATION] DEVICE...
// Output: one line "SECONDS N FAILED" (seconds with millisecond precision,
// N the devices that answered, FAILED the reads or writes that failed
// before the answers: errors an application would have seen); exit status
// 1 if any device did not answer in time (the line names them on stderr).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, readOnce, writeOnce))
}

// ioFunc reads or writes one block of a device; tests replace them.
type ioFunc func(path string) error

func run(args []string, stdout, stderr io.Writer, read, write ioFunc) int {
	fs := flag.NewFlagSet("lunready", flag.ContinueOnError)
	fs.SetOutput(stderr)
	since := fs.Int64("since", 0, "count from this time (Unix nanoseconds; default: when lunready starts)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	retry := fs.Duration("retry", 50*time.Millisecond, "wait between a failed read and the next")
	doWrite := fs.Bool("write", false, "write 4 KiB of zeros at 1 MiB instead of reading at 0")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *doWrite {
		read = write
	}
	devs := fs.Args()
	if len(devs) == 0 {
		fmt.Fprintln(stderr, "lunready: no devices")
		return 2
	}
	start := time.Now()
	if *since != 0 {
		start = time.Unix(0, *since)
	}
	deadline := time.Now().Add(*timeout)
	var (
		mu     sync.Mutex
		last   time.Time
		failed []string
		errs   int
		wg     sync.WaitGroup
	)
	for _, d := range devs {
		wg.Add(1)
		go func(d string) {
			defer wg.Done()
			for {
				err := read(d)
				if err == nil {
					mu.Lock()
					if now := time.Now(); now.After(last) {
						last = now
					}
					mu.Unlock()
					return
				}
				late := time.Now().After(deadline)
				mu.Lock()
				errs++
				if late {
					failed = append(failed, fmt.Sprintf("%s (%v)", d, err))
				}
				mu.Unlock()
				if late {
					return
				}
				time.Sleep(*retry)
			}
		}(d)
	}
	wg.Wait()
	fmt.Fprintf(stdout, "%.3f %d %d\n", last.Sub(start).Seconds(), len(devs)-len(failed), errs)
	if len(failed) > 0 {
		sort.Strings(failed)
		fmt.Fprintf(stderr, "lunready: %d of %d devices did not answer: %v\n", len(failed), len(devs), failed)
		return 1
	}
	return 0
}

const blockSize = 4096

// aligned returns a zeroed 4 KiB buffer aligned for O_DIRECT.
func aligned() []byte {
	raw := make([]byte, 2*blockSize)
	off := int(uintptr(unsafe.Pointer(&raw[0])) & (blockSize - 1))
	if off != 0 {
		off = blockSize - off
	}
	return raw[off : off+blockSize]
}

// readOnce reads the device's first 4 KiB with O_DIRECT, so the read
// reaches the handler rather than the page cache.
func readOnce(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := f.ReadAt(aligned(), 0)
	if err != nil {
		return err
	}
	if n != blockSize {
		return errors.New("short read")
	}
	return nil
}

// writeOnce writes 4 KiB of zeros at 1 MiB with O_DIRECT.
func writeOnce(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(aligned(), 1<<20); err != nil {
		return err
	}
	return f.Close()
}
