package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// peer is how b talks to a (test/vm/lib-pair.sh's protocol): each guest
// serves its share directory on port 8080; a flag is a file there.
type peer struct {
	url   string // a's share, http://10.99.0.1:8080
	share string // b's own share directory
	cl    http.Client
}

func newPeer(url, share string) *peer {
	return &peer{url: strings.TrimSuffix(url, "/"), share: share, cl: http.Client{Timeout: 5 * time.Second}}
}

// say publishes a flag for a, atomically.
func (p *peer) say(name, content string) error {
	tmp := filepath.Join(p.share, name+".tmp")
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(p.share, name))
}

// get fetches a file of a's share.
func (p *peer) get(name string) ([]byte, error) {
	resp, err := p.cl.Get(p.url + "/" + name)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/%s: %s", p.url, name, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// await waits up to d for a's flag name and returns its content.
func (p *peer) await(name string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		b, err := p.get(name)
		if err == nil {
			return strings.TrimSpace(string(b)), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no %q from %s in %v: %w", name, p.url, d, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// unixTime parses "seconds.nanoseconds" as `date +%s.%N` prints it.
func unixTime(s string) (time.Time, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("unix time %q: %w", s, err)
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
}

// tpgSample is one line of a's tpg.txt: its TPG's enable attribute at a
// time (a's clock).
type tpgSample struct {
	at      time.Time
	enabled bool
}

// parseTPGSamples reads "unix-seconds enable" lines; malformed ones (the
// last, while it is being written) are skipped.
func parseTPGSamples(s string) []tpgSample {
	var out []tpgSample
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		t, err := unixTime(f[0])
		if err != nil {
			continue
		}
		out = append(out, tpgSample{t, f[1] == "1"})
	}
	return out
}

// tpgChanges returns when the TPG went offline first and came back first
// after that, at or after from; zero times when it did not.
func tpgChanges(s []tpgSample, from time.Time) (off, on time.Time) {
	for _, x := range s {
		if x.at.Before(from) {
			continue
		}
		switch {
		case off.IsZero() && !x.enabled:
			off = x.at
		case !off.IsZero() && on.IsZero() && x.enabled:
			on = x.at
		}
	}
	return off, on
}
