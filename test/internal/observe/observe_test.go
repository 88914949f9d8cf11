package observe

import (
	"strings"
	"testing"
)

func TestParseStatusCounts(t *testing.T) {
	m, err := ParseStatusCounts(strings.NewReader(`# HELP gotcmu_status_total x
gotcmu_status_total{backend="rbd",device="hard0",status="busy"} 12
gotcmu_status_total{backend="rbd",device="rbd0",status="busy"} 99
gotcmu_check_conditions_total{backend="rbd",device="hard0",sense_key="not_ready"} 3
`), "hard0")
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["busy"] != 12 || m["check condition not_ready"] != 3 {
		t.Fatalf("counts = %v", m)
	}
	if d := StatusDelta(map[string]float64{"busy": 2}, m); d != "busy +10, check condition not_ready +3" {
		t.Fatalf("delta = %q", d)
	}
}
