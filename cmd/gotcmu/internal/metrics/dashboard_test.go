package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
)

// dashboardPath is the sample Grafana dashboard shipped for operators.
const dashboardPath = "../../grafana/gotcmu-dashboard.json"

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		GridPos struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

// metricName finds the series names a PromQL expression reads: gotcmu's own
// and the Go and process collectors'.
var metricName = regexp.MustCompile(`\b(?:gotcmu|go|process)_[a-z0-9_]+\b`)

// groupBy finds the labels of "by (...)" clauses.
var groupBy = regexp.MustCompile(`\bby \(([^)]*)\)`)

// histogramSeries maps a histogram's _bucket/_sum/_count series to its family.
func histogramSeries(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := strings.CutSuffix(name, s); ok && strings.HasSuffix(f, "_seconds") {
			return f
		}
	}
	return name
}

// TestDashboardMatchesExporter keeps the sample dashboard honest: it is
// valid Grafana JSON whose every query reads a family this daemon exports
// under the labels it groups by, so a renamed metric fails
// here, not on an operator's screen.
func TestDashboardMatchesExporter(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard lacks a title, uid or panels: %q %q %d panels", d.Title, d.UID, len(d.Panels))
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, v := range []string{"datasource", "job", "instance", "device"} {
		if !vars[v] {
			t.Errorf("dashboard lacks the $%s variable", v)
		}
	}

	// The families the exporter serves, scraped from a live endpoint.
	// (CHECK CONDITION counts are exported per sense key seen.)
	var snap handler.StatsSnapshot
	snap.BySenseKey[2] = 1
	src := fakeSource{{DeviceStatus: handler.DeviceStatus{Name: "lun0", Handler: "rbd", Size: 1 << 30}, Snapshot: snap}}
	srv, err := Serve("127.0.0.1:0", src, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	body := scrape(t, srv.Addr())
	exported := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			exported[strings.Fields(f)[0]] = true
		}
	}

	if len(exported) == 0 {
		t.Fatalf("the exporter served no metric families")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid position %+v outside Grafana's 24 columns", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			names := metricName.FindAllString(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q reads no gotcmu, go or process series", p.Title, q.Expr)
			}
			for _, n := range names {
				if !exported[histogramSeries(n)] {
					t.Errorf("panel %q: %s is not exported (query %q)", p.Title, n, q.Expr)
				}
			}
			for _, by := range groupBy.FindAllStringSubmatch(q.Expr, -1) {
				for _, l := range strings.Split(by[1], ",") {
					l = strings.TrimSpace(l)
					if l != "instance" && l != "job" && l != "le" && !strings.Contains(body, l+`="`) {
						t.Errorf("panel %q: groups by %q, a label no series carries (query %q)", p.Title, l, q.Expr)
					}
				}
			}
			if strings.Contains(q.Expr, "gotcmu_") && !strings.Contains(q.Expr, `device=~"$device"`) {
				t.Errorf("panel %q: query %q ignores the $device variable", p.Title, q.Expr)
			}
		}
	}
}
