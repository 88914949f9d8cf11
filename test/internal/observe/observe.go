// Package observe is what the in-guest scenarios (test/cmd/hardfaults,
// test/cmd/partition) watch besides their write load: the kernel log as it
// grows, and what gotcmu answered, from its Prometheus metrics.
package observe

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Kmsg follows the kernel log from the moment it is opened.
type Kmsg struct{ f *os.File }

func OpenKmsg() (*Kmsg, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/kmsg: %w", err)
	}
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("seek /dev/kmsg: %w", err)
	}
	return &Kmsg{os.NewFile(uintptr(fd), "/dev/kmsg")}, nil
}

// Read returns the messages logged since the last read (one record per
// read(2) on /dev/kmsg: "prio,seq,usec,flags;text").
func (k *Kmsg) Read() []string {
	var lines []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(int(k.f.Fd()), buf)
		if err == unix.EPIPE { // records overwritten meanwhile
			continue
		}
		if err != nil || n <= 0 {
			return lines
		}
		rec := string(buf[:n])
		if i := strings.IndexByte(rec, ';'); i >= 0 {
			rec = rec[i+1:]
		}
		if i := strings.IndexByte(rec, '\n'); i >= 0 {
			rec = rec[:i]
		}
		lines = append(lines, rec)
	}
}

func (k *Kmsg) Close() { k.f.Close() }

// StatusCounts scrapes what gotcmu answered other than GOOD for one device:
// gotcmu_status_total by status ("busy") and gotcmu_check_conditions_total
// by sense key ("check condition not_ready") -> count.
func StatusCounts(url, device string) (map[string]float64, error) {
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return ParseStatusCounts(resp.Body, device)
}

var (
	reStatus = regexp.MustCompile(`status="([^"]*)"`)
	reSense  = regexp.MustCompile(`sense_key="([^"]*)"`)
)

func ParseStatusCounts(r io.Reader, device string) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	dev := `device="` + device + `"`
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, dev) {
			continue
		}
		var key string
		switch {
		case strings.HasPrefix(line, "gotcmu_status_total{"):
			if st := reStatus.FindStringSubmatch(line); st != nil {
				key = st[1]
			}
		case strings.HasPrefix(line, "gotcmu_check_conditions_total{"):
			if st := reSense.FindStringSubmatch(line); st != nil {
				key = "check condition " + st[1]
			}
		}
		f := strings.Fields(line)
		if key == "" || len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		m[key] += v
	}
	return m, sc.Err()
}

// StatusDelta formats after - before.
func StatusDelta(before, after map[string]float64) string {
	var parts []string
	for _, k := range SortedKeys(after) {
		if d := after[k] - before[k]; d != 0 {
			parts = append(parts, fmt.Sprintf("%s +%.0f", k, d))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// SortedKeys returns the keys of m in order.
func SortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
