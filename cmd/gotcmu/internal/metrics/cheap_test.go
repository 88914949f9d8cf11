//go:build linux && cgo

package metrics

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/rs/zerolog"
)

// The C heap's two series are served, and in_use counts what malloc has
// handed out: the cgo runtime's own allocations at least, so never 0.
func TestServeExportsTheCHeap(t *testing.T) {
	srv, err := Serve("127.0.0.1:0", fakeSource{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	body := scrape(t, srv.Addr())
	for _, state := range []string{"in_use", "free"} {
		m := regexp.MustCompile(`(?m)^gotcmu_c_heap_bytes\{state="` + state + `"\} (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("metrics lack gotcmu_c_heap_bytes{state=%q}", state)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil || v < 0 || (state == "in_use" && v == 0) {
			t.Errorf("gotcmu_c_heap_bytes{state=%q} = %s", state, m[1])
		}
	}
	in, _ := mallinfo()
	if in == 0 {
		t.Error("mallinfo2 reports nothing allocated")
	}
}
