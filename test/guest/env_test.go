//go:build guest

package guest

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env is what the guest script hands over: where the repository, the
// daemon and the tools are, and where results go.
type env struct {
	repo       string // REPO: the repository, as the guest sees it
	gotcmu     string // GOTCMU
	gotcmuArgs []string
	ackwriter  string // ACKWRITER
	hardfaults string // HARDFAULTS
	summary    string // SUMMARY: the suite's PASS/FAIL lines (hardfaults appends its own)
	out        string // this suite's output directory
	fig        *figures
}

// loadEnv reads the environment; out is the suite's output directory,
// made empty of figures.
func loadEnv(t *testing.T, out string) *env {
	e := &env{
		repo:       os.Getenv("REPO"),
		gotcmu:     os.Getenv("GOTCMU"),
		gotcmuArgs: strings.Fields(os.Getenv("GOTCMU_ARGS")),
		ackwriter:  os.Getenv("ACKWRITER"),
		hardfaults: os.Getenv("HARDFAULTS"),
		summary:    os.Getenv("SUMMARY"),
		out:        out,
	}
	if e.repo == "" {
		t.Fatal("REPO (the repository as the guest sees it) not set: run through the guest script")
	}
	for name, p := range map[string]string{"GOTCMU": e.gotcmu, "ACKWRITER": e.ackwriter} {
		if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s=%q is not an executable (make build; test-vm.sh builds the tools)", name, p)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	e.fig = &figures{path: filepath.Join(out, "figures.txt")}
	if err := os.WriteFile(e.fig.path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// output runs a command and returns its standard output and error.
func output(name string, args ...string) (string, error) {
	b, err := exec.Command(name, args...).CombinedOutput()
	return string(b), err
}

// fetch GETs url within 10 s.
func fetch(url string) (string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
