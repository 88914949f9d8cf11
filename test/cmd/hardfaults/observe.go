package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/test/internal/observe"
)

// scsiTrace counts the kernel's scsi_dispatch_cmd_done events of one SCSI
// host: what the initiator's midlayer got back for each command. It
// consumes trace_pipe while the fault runs: reading the whole `trace` file
// at the end instead held a guest CPU in the kernel for minutes (soft
// lockups under TCG).
type scsiTrace struct {
	dir    string // tracefs
	host   int
	pipe   int
	counts traceCounts
	part   []byte
	stopc  chan struct{}
	done   chan struct{}
	over0  int64
}

const tracefs = "/sys/kernel/tracing"

// newSCSITrace prepares tracing of host's completions (tracefs mounted if
// need be).
func newSCSITrace(host int) (*scsiTrace, error) {
	if _, err := os.Stat(filepath.Join(tracefs, "events")); err != nil {
		if out, err := exec.Command("mount", "-t", "tracefs", "nodev", tracefs).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mount tracefs: %w: %s", err, out)
		}
	}
	t := &scsiTrace{dir: tracefs, host: host}
	for _, ev := range []string{"scsi_dispatch_cmd_done", "scsi_dispatch_cmd_timeout"} {
		f := filepath.Join(t.dir, "events/scsi", ev, "filter")
		if err := os.WriteFile(f, []byte(fmt.Sprintf("host_no == %d", host)), 0); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// start discards what the pipe holds, enables the events and consumes
// them. The pipe stays open from one fault to the next: opened again after
// a close, trace_pipe answered EBUSY.
func (t *scsiTrace) start() error {
	if t.pipe == 0 {
		fd, err := unix.Open(filepath.Join(t.dir, "trace_pipe"), unix.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open trace_pipe: %w", err)
		}
		t.pipe = fd
	}
	// What the pipe holds from before is read into counts that are then
	// dropped.
	t.counts = traceCounts{notGood: map[string]int{}}
	t.drain()
	t.part = nil
	t.counts = traceCounts{notGood: map[string]int{}}
	t.over0 = t.overruns()
	if err := t.enable("1"); err != nil {
		return err
	}
	t.stopc, t.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(t.done)
		for {
			t.drain()
			select {
			case <-t.stopc:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return nil
}

// drain reads what trace_pipe holds now.
func (t *scsiTrace) drain() {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(t.pipe, buf)
		if err != nil || n <= 0 {
			return
		}
		data := append(t.part, buf[:n]...)
		last := strings.LastIndexByte(string(data), '\n')
		c, _ := countTrace(strings.NewReader(string(data[:last+1])))
		t.counts.add(c)
		t.part = append([]byte(nil), data[last+1:]...)
	}
}

func (t *scsiTrace) enable(v string) error {
	for _, ev := range []string{"scsi_dispatch_cmd_done", "scsi_dispatch_cmd_timeout"} {
		if err := os.WriteFile(filepath.Join(t.dir, "events/scsi", ev, "enable"), []byte(v), 0); err != nil {
			return err
		}
	}
	return nil
}

// overruns sums the events the ring buffer dropped, over every CPU.
func (t *scsiTrace) overruns() int64 {
	var n int64
	files, _ := filepath.Glob(filepath.Join(t.dir, "per_cpu/cpu*/stats"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "overrun: "); ok {
				k, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += k
			}
		}
	}
	return n
}

// stop disables the events and returns what was traced; false if start
// did not succeed.
func (t *scsiTrace) stop() (traceCounts, bool) {
	t.enable("0")
	if t.stopc == nil {
		return traceCounts{}, false
	}
	close(t.stopc)
	<-t.done
	t.stopc = nil
	t.drain()
	if t.overruns() > t.over0 {
		t.counts.lost = true
	}
	return t.counts, true
}

// traceCounts is what a trace held: completions by result, other than
// GOOD, and commands that timed out in the midlayer.
type traceCounts struct {
	good     int
	notGood  map[string]int // "WRITE_10 host=DID_OK status=SAM_STAT_BUSY" -> count
	timeouts int
	lost     bool // the buffer overflowed: counts are low
}

var (
	reCmd    = regexp.MustCompile(`cmnd=\((\w+)`)
	reResult = regexp.MustCompile(`result=\(([^)]*)\)`)
)

// countTrace reads a tracefs trace file.
func countTrace(r io.Reader) (traceCounts, error) {
	c := traceCounts{notGood: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
			if strings.Contains(line, "entries-in-buffer") {
				// "# entries-in-buffer/entries-written: 100/200   #P:2"
				var in, written int
				if _, err := fmt.Sscanf(line[strings.Index(line, ":")+1:], " %d/%d", &in, &written); err == nil && in < written {
					c.lost = true
				}
			}
		case strings.Contains(line, "scsi_dispatch_cmd_timeout:"):
			c.timeouts++
		case strings.Contains(line, "scsi_dispatch_cmd_done:"):
			res := reResult.FindStringSubmatch(line)
			if res == nil {
				continue
			}
			// Drop the fields that say nothing (driver and message bytes).
			var keep []string
			for _, f := range strings.Fields(res[1]) {
				if strings.HasPrefix(f, "host=") || strings.HasPrefix(f, "status=") {
					keep = append(keep, f)
				}
			}
			r := strings.Join(keep, " ")
			if r == "host=DID_OK status=SAM_STAT_GOOD" {
				c.good++
				continue
			}
			cmd := "?"
			if m := reCmd.FindStringSubmatch(line); m != nil {
				cmd = m[1]
			}
			c.notGood[cmd+" "+r]++
		}
	}
	return c, sc.Err()
}

// add adds o's counts to c.
func (c *traceCounts) add(o traceCounts) {
	c.good += o.good
	c.timeouts += o.timeouts
	c.lost = c.lost || o.lost
	if c.notGood == nil && len(o.notGood) > 0 {
		c.notGood = map[string]int{}
	}
	for k, v := range o.notGood {
		c.notGood[k] += v
	}
}

func (c traceCounts) String() string {
	var parts []string
	for _, k := range observe.SortedKeys(c.notGood) {
		parts = append(parts, fmt.Sprintf("%s x%d", k, c.notGood[k]))
	}
	s := "none"
	if len(parts) > 0 {
		s = strings.Join(parts, ", ")
	}
	s = fmt.Sprintf("%d GOOD; other: %s; midlayer timeouts %d", c.good, s, c.timeouts)
	if c.lost {
		s += " (the trace buffer overran: counts are low)"
	}
	return s
}
