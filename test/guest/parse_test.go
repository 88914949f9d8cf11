package guest

import (
	"slices"
	"testing"
	"time"
)

const exposition = `# HELP gotcmu_status_total Commands answered, by status.
# TYPE gotcmu_status_total counter
gotcmu_status_total{device="rbd0",op="write",status="busy"} 12
gotcmu_status_total{device="rbd0",op="read",status="busy"} 3
gotcmu_status_total{device="rbd0",op="write",status="good"} 1e3
gotcmu_status_total{device="rbd01",op="write",status="busy"} 100
gotcmu_status_total{device="a \"quoted\", one",status="busy"} 7
gotcmu_status_total_other{device="rbd0",status="busy"} 50
go_goroutines 23
`

func TestMetricSum(t *testing.T) {
	for _, c := range []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"every op of one device", "gotcmu_status_total", map[string]string{"device": "rbd0", "status": "busy"}, 15},
		{"a device whose name extends another's is not it", "gotcmu_status_total", map[string]string{"device": "rbd01"}, 100},
		{"escaped label values", "gotcmu_status_total", map[string]string{"device": `a "quoted", one`}, 7},
		{"exponent", "gotcmu_status_total", map[string]string{"status": "good"}, 1000},
		{"no labels", "go_goroutines", nil, 23},
		{"absent", "gotcmu_nothing", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := MetricSum(exposition, c.metric, c.labels); got != c.want {
				t.Errorf("MetricSum(%s, %v) = %v, want %v", c.metric, c.labels, got, c.want)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	for _, c := range []struct {
		stat string
		want ProcStat
	}{
		{"812 (sh) D 800 812 1 0 -1 4194560 98 0 0 0", ProcStat{812, "sh", 'D'}},
		{"9 (kworker/0:1-events) I 2 0 0", ProcStat{9, "kworker/0:1-events", 'I'}},
		{"77 (a (b) c) S 1 77", ProcStat{77, "a (b) c", 'S'}},
	} {
		got, err := ParseProcStat(c.stat)
		if err != nil || got != c.want {
			t.Errorf("ParseProcStat(%q) = %+v, %v; want %+v", c.stat, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "12 sh D", "x (sh) D", "12 (sh)"} {
		if _, err := ParseProcStat(bad); err == nil {
			t.Errorf("ParseProcStat(%q) took it", bad)
		}
	}
}

func TestCephTool(t *testing.T) {
	for comm, want := range map[string]bool{"ceph": true, "ceph-osd": true, "ceph-mon": true, "rados": true, "rbd": true,
		"sh": false, "gotcmu": false, "rbd-target-api": false, "cephx": false} {
		if got := CephTool(comm); got != want {
			t.Errorf("CephTool(%q) = %v", comm, got)
		}
	}
}

func TestAckwriterOutput(t *testing.T) {
	write := "ackwriter write: issued=10 acknowledged=9 errors=0 acknowledged-after-last-error=9 elapsed=1.0s\n" +
		"write error at block 3: EIO\nackwriter write: issued=20 acknowledged=19 errors=2 acknowledged-after-last-error=4 elapsed=9.0s\n"
	if got := WriteErrors(write); got != "errors=2" {
		t.Errorf("WriteErrors = %q, want the last, errors=2", got)
	}
	verify := "reading 4096 blocks\nackwriter verify: acknowledged=19 verified=19 lost=0 blocks=4096 newer-unacknowledged=0\n"
	if got := AckFigures(verify); got != "acknowledged=19 verified=19 lost=0 blocks=4096 newer-unacknowledged=0" {
		t.Errorf("AckFigures = %q", got)
	}
	if got := AckFigures("open /dev/sdz: no such file\n"); got != "" {
		t.Errorf("AckFigures of a failed verify = %q, want empty", got)
	}
	if got := WriteErrors(""); got != "" {
		t.Errorf("WriteErrors of nothing = %q", got)
	}
	log := "ackwriter-log v1 run=1 bs=4096 blocks=16 offset=0\nW 1 1\nA 1 1\nW 2 2\nA 2 2\nW 3 3\n"
	if got := CountAcked([]byte(log)); got != 2 {
		t.Errorf("CountAcked = %d, want 2", got)
	}
}

func TestListening(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2558 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0100007F:2558 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 3 1
`
	tcp6 := `  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:2558 00000000000000000000000000000000:0000 0A 0
`
	got := append(Listening(tcp, 9560), Listening(tcp6, 9560)...)
	want := []string{"0100007F:2558", "00000000000000000000000000000000:2558"}
	if !slices.Equal(got, want) {
		t.Errorf("Listening = %v, want %v (established sockets and other ports left out)", got, want)
	}
}

func TestSGRawStatus(t *testing.T) {
	for _, c := range []struct {
		out        string
		good, busy bool
	}{
		{"SCSI Status: Good \n\nexit 0\n", true, false},
		{"SCSI Status: Busy\nexit 99\n", false, true},
		{"write: transport error\nexit 97\n", false, false},
	} {
		if g, b := SGRawStatus(c.out); g != c.good || b != c.busy {
			t.Errorf("SGRawStatus(%q) = %v, %v; want %v, %v", c.out, g, b, c.good, c.busy)
		}
	}
}

func TestWrite10(t *testing.T) {
	got := Write10(0x01020304, 8)
	want := []string{"2a", "00", "01", "02", "03", "04", "00", "00", "08", "00"}
	if !slices.Equal(got, want) {
		t.Errorf("Write10 = %v, want %v", got, want)
	}
}

func TestBoundingSet(t *testing.T) {
	if got := BoundingSet([]string{"CAP_NET_ADMIN", "CAP_DAC_OVERRIDE"}); got != "-all,+net_admin,+dac_override" {
		t.Errorf("BoundingSet = %q", got)
	}
	if got := BoundingSet(nil); got != "-all" {
		t.Errorf("BoundingSet(nil) = %q", got)
	}
}

func TestUnitValue(t *testing.T) {
	unit := "[Service]\n# CapabilityBoundingSet=CAP_SYS_ADMIN\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_SETUID\nAmbientCapabilities=\n"
	if got := UnitValue(unit, "CapabilityBoundingSet"); got != "CAP_NET_ADMIN CAP_SETUID" {
		t.Errorf("UnitValue = %q", got)
	}
	if got := UnitValue(unit, "User"); got != "" {
		t.Errorf("UnitValue of an unset key = %q", got)
	}
}

func TestLogMatch(t *testing.T) {
	log := `{"level":"info","dev":"fdel","drained":true,"time":"2026-12-05T09:17:33Z","message":"device closed"}
not json at all
{"level":"info","dev":"nl0","time":"2026-12-05T09:18:00Z","message":"serving device"}
{"level":"info","owner":"x","took":1.5,"time":"2026-12-05T09:19:00Z","message":"took exclusive lock"}
{"level":"info","owner":"y","time":"2026-12-05T09:20:30Z","message":"took exclusive lock"}
`
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		name   string
		msg    string
		fields map[string]string
		want   []time.Time
	}{
		{"by message", "took exclusive lock", nil, []time.Time{at("2026-12-05T09:19:00Z"), at("2026-12-05T09:20:30Z")}},
		{"a string field", "device closed", map[string]string{"dev": "fdel"}, []time.Time{at("2026-12-05T09:17:33Z")}},
		{"a boolean field", "device closed", map[string]string{"drained": "true"}, []time.Time{at("2026-12-05T09:17:33Z")}},
		{"a field that differs", "serving device", map[string]string{"dev": "fdel"}, nil},
		{"a field that is absent", "serving device", map[string]string{"drained": "true"}, nil},
		{"a message that differs", "command ring reset; serving again", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := LogMatch([]byte(log), c.msg, c.fields); !slices.EqualFunc(got, c.want, time.Time.Equal) {
				t.Errorf("LogMatch = %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseRBDInfo(t *testing.T) {
	info := `rbd image 'faults':
	size 256 MiB in 64 objects
	order 22 (4 MiB objects)
	snapshot_count: 0
	id: 10a2b3c4
	block_name_prefix: rbd_data.10a2b3c4
	format: 2
`
	prefix, order, err := ParseRBDInfo(info)
	if err != nil || prefix != "rbd_data.10a2b3c4" || order != 22 {
		t.Errorf("ParseRBDInfo = %q, %d, %v", prefix, order, err)
	}
	if _, _, err := ParseRBDInfo("rbd: error opening image faults\n"); err == nil {
		t.Error("ParseRBDInfo took an error message")
	}
}

func TestLongestStall(t *testing.T) {
	// Writes complete every second up to 103, none from 104 to 129, then
	// again from 130: the stall is 26 s, from the last sample that saw
	// writes to the last that saw none. The samples before from, a longer
	// stall, are not looked at.
	var samples []Progress
	w := int64(0)
	for at := int64(90); at <= 140; at++ {
		if at < 104 || at > 129 {
			w += 10
		}
		samples = append(samples, Progress{at, w})
	}
	samples = append([]Progress{{10, 0}, {50, 0}}, samples...) // a long stall before from
	if got := LongestStall(samples, 100); got != 26 {
		t.Errorf("LongestStall = %d, want 26 (writes last completed at 103, next at 130)", got)
	}
	if got := LongestStall(nil, 0); got != 0 {
		t.Errorf("LongestStall(nil) = %d", got)
	}
	text := "100 5\n101 5\ngarbage\n102 6\n"
	if got := ParseProgress(text); !slices.Equal(got, []Progress{{100, 5}, {101, 5}, {102, 6}}) {
		t.Errorf("ParseProgress = %v", got)
	}
}
