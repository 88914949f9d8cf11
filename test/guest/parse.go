package guest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MetricSum sums the samples of the Prometheus text exposition text whose
// metric is name and whose labels include every pair of labels (nil: any).
func MetricSum(text, name string, labels map[string]string) float64 {
	var sum float64
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		got, have, value, ok := parseSample(line)
		if !ok || got != name {
			continue
		}
		match := true
		for k, v := range labels {
			if have[k] != v {
				match = false
				break
			}
		}
		if match {
			sum += value
		}
	}
	return sum
}

// parseSample splits `name{k="v",...} value [timestamp]`.
func parseSample(line string) (name string, labels map[string]string, value float64, ok bool) {
	labels = map[string]string{}
	rest := line
	if i := strings.IndexAny(line, "{ "); i < 0 {
		return "", nil, 0, false
	} else {
		name, rest = line[:i], line[i:]
	}
	if strings.HasPrefix(rest, "{") {
		end := strings.LastIndexByte(rest, '}')
		if end < 0 {
			return "", nil, 0, false
		}
		body := rest[1:end]
		rest = rest[end+1:]
		for body != "" {
			k, after, found := strings.Cut(body, "=")
			if !found || !strings.HasPrefix(after, `"`) {
				return "", nil, 0, false
			}
			v, tail, err := unquoteLabel(after)
			if err != nil {
				return "", nil, 0, false
			}
			labels[strings.TrimSpace(k)] = v
			body = strings.TrimPrefix(strings.TrimSpace(tail), ",")
		}
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", nil, 0, false
	}
	value, err := strconv.ParseFloat(f[0], 64)
	return name, labels, value, err == nil
}

// unquoteLabel reads one quoted label value from the start of s and
// returns it and what follows it.
func unquoteLabel(s string) (string, string, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 == len(s) {
				return "", "", fmt.Errorf("label value %q: trailing backslash", s)
			}
			i++
			if s[i] == 'n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", fmt.Errorf("label value %q: no closing quote", s)
}

// ProcStat is what the checks read of /proc/PID/stat.
type ProcStat struct {
	PID   int
	Comm  string // without the parentheses
	State byte   // R, S, D, Z, T, ...
}

// ParseProcStat parses /proc/PID/stat; the command name may hold spaces
// and parentheses, so it ends at the last ')'.
func ParseProcStat(s string) (ProcStat, error) {
	open := strings.IndexByte(s, '(')
	end := strings.LastIndexByte(s, ')')
	if open < 1 || end < open || len(s) < end+3 {
		return ProcStat{}, fmt.Errorf("/proc stat %q: no (comm) state", s)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return ProcStat{}, fmt.Errorf("/proc stat %q: pid: %w", s, err)
	}
	return ProcStat{PID: pid, Comm: s[open+1 : end], State: s[end+2]}, nil
}

// CephTool reports whether comm is one of Ceph's daemons or tools (ceph,
// ceph-osd, rados, rbd, ...): under TCG their own I/O puts them in D for
// moments while a cluster starts, which says nothing about gotcmu.
func CephTool(comm string) bool {
	return comm == "ceph" || comm == "rados" || comm == "rbd" || strings.HasPrefix(comm, "ceph-")
}

// CountAcked counts the acknowledged writes ("A block seq" records) in an
// ackwriter log.
func CountAcked(log []byte) int {
	n := 0
	for line := range strings.Lines(string(log)) {
		if strings.HasPrefix(line, "A ") {
			n++
		}
	}
	return n
}

// AckFigures returns the figures of ackwriter verify's last summary line,
// from its first "acknowledged=" on ("acknowledged=N verified=N lost=N
// ... newer-unacknowledged=N"), "" if it printed none.
func AckFigures(out string) string {
	figures := ""
	for line := range strings.Lines(out) {
		if i := strings.Index(line, "acknowledged="); i >= 0 {
			figures = strings.TrimRight(line[i:], "\n")
		}
	}
	return figures
}

var reWriteErrors = regexp.MustCompile(`\berrors=[0-9]+`)

// WriteErrors returns ackwriter write's last "errors=N", "" if none.
func WriteErrors(out string) string {
	all := reWriteErrors.FindAllString(out, -1)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// Listening returns the local addresses (kernel hex, "0100007F:2558") of
// the sockets in a /proc/net/tcp or tcp6 table that listen on port.
func Listening(table string, port int) []string {
	var out []string
	suffix := fmt.Sprintf(":%04X", port)
	first := true
	for line := range strings.Lines(table) {
		if first {
			first = false // the header
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" { // TCP_LISTEN
			continue
		}
		if strings.HasSuffix(strings.ToUpper(f[1]), suffix) {
			out = append(out, f[1])
		}
	}
	return out
}

var reSGGood = regexp.MustCompile(`status: *good`)

// SGRawStatus classifies what sg_raw printed for one command: whether it
// said the SCSI status was GOOD, and whether it said BUSY anywhere.
func SGRawStatus(out string) (good, busy bool) {
	low := strings.ToLower(out)
	return reSGGood.MatchString(low), strings.Contains(low, "busy")
}

// Write10 returns the CDB of WRITE(10) of blocks blocks at lba as sg_raw
// takes it: one hex byte an argument.
func Write10(lba uint32, blocks uint16) []string {
	b := []byte{0x2a, 0, byte(lba >> 24), byte(lba >> 16), byte(lba >> 8), byte(lba), 0, byte(blocks >> 8), byte(blocks), 0}
	out := make([]string, len(b))
	for i, x := range b {
		out[i] = fmt.Sprintf("%02x", x)
	}
	return out
}

// BoundingSet turns capability names (CAP_NET_ADMIN, as systemd writes
// them) into setpriv's --bounding-set argument: every capability dropped
// but these.
func BoundingSet(caps []string) string {
	s := "-all"
	for _, c := range caps {
		s += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	return s
}

// UnitValue returns the value of KEY= in a systemd unit file, "" if the
// unit does not set it.
func UnitValue(unit, key string) string {
	for line := range strings.Lines(unit) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			return v
		}
	}
	return ""
}

// LogMatch returns the times of the entries of a zerolog JSON log whose
// message is msg and whose fields hold the values of fields (compared as
// printed: "true" matches the boolean), in the order logged; lines that
// are not JSON are passed over.
func LogMatch(log []byte, msg string, fields map[string]string) []time.Time {
	var out []time.Time
	sc := bufio.NewScanner(strings.NewReader(string(log)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) != nil || e["message"] != msg {
			continue
		}
		match := true
		for k, v := range fields {
			if got, ok := e[k]; !ok || fmt.Sprint(got) != v {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		ts, _ := e["time"].(string)
		t, _ := time.Parse(time.RFC3339Nano, ts)
		out = append(out, t)
	}
	return out
}

// Progress is one sample of a device's completed writes.
type Progress struct {
	At     int64 // unix seconds
	Writes int64
}

// ParseProgress reads "unix-seconds writes" lines; others are passed over.
func ParseProgress(text string) []Progress {
	var out []Progress
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		at, err1 := strconv.ParseInt(f[0], 10, 64)
		w, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 == nil && err2 == nil {
			out = append(out, Progress{at, w})
		}
	}
	return out
}

// LongestStall returns the longest time, in seconds, over which the
// samples taken at from or later show no write completing.
func LongestStall(samples []Progress, from int64) int64 {
	var longest, since int64
	var prev *Progress
	for i := range samples {
		s := &samples[i]
		if s.At < from {
			continue
		}
		if prev != nil && s.Writes == prev.Writes {
			longest = max(longest, s.At-since)
		} else {
			since = s.At
		}
		prev = s
	}
	return longest
}

// ParseRBDInfo returns an image's object name prefix and object size
// order from `rbd info`'s text.
func ParseRBDInfo(text string) (prefix string, order int, err error) {
	order = -1
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "block_name_prefix:":
			prefix = f[1]
		case len(f) >= 2 && f[0] == "order":
			order, err = strconv.Atoi(f[1])
			if err != nil {
				return "", 0, fmt.Errorf("rbd info: order %q: %w", f[1], err)
			}
		}
	}
	if prefix == "" || order < 0 {
		return "", 0, fmt.Errorf("rbd info without block_name_prefix and order: %q", text)
	}
	return prefix, order, nil
}

// BlockWrites returns the writes completed of a /sys/block/DEV/stat (its
// fifth field).
func BlockWrites(stat string) (int64, error) {
	f := strings.Fields(stat)
	if len(f) < 5 {
		return 0, fmt.Errorf("block stat %q: fewer than 5 fields", stat)
	}
	return strconv.ParseInt(f[4], 10, 64)
}
