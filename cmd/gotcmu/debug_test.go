package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestServeDebug(t *testing.T) {
	if addr, stop := serveDebug(zerolog.Nop(), ""); addr != "" {
		stop()
		t.Fatalf("an empty --debug-addr listened on %s", addr)
	}
	addr, stop := serveDebug(zerolog.Nop(), "127.0.0.1:0")
	if addr == "" {
		t.Fatal("no debug endpoint on 127.0.0.1:0")
	}
	defer stop()
	for path, want := range map[string]string{
		"/debug/pprof/goroutine?debug=1":  "goroutine profile",
		"/debug/pprof/trace?seconds=0.05": "go 1.",
		"/debug/pprof/profile?seconds=1":  "",
	} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, %d bytes", path, resp.Status, len(body))
		}
	}
}
