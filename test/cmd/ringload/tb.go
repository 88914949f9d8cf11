package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// runTB is the testing.TB uiotest.New wants, outside a test: errors are
// printed and remembered, Fatalf ends the program, cleanups run last-in
// first-out when the run ends. uiotest calls nothing else; the embedded
// interface only supplies testing.TB's unexported method.
type runTB struct {
	testing.TB
	out io.Writer

	mu       sync.Mutex
	errs     []error
	cleanups []func()
}

func newRunTB(out io.Writer) *runTB { return &runTB{out: out} }

func (t *runTB) Helper() {}

func (t *runTB) Errorf(format string, args ...any) {
	err := fmt.Errorf(format, args...)
	fmt.Fprintf(t.out, "ringload: %v\n", err)
	t.mu.Lock()
	t.errs = append(t.errs, err)
	t.mu.Unlock()
}

func (t *runTB) Fatalf(format string, args ...any) {
	fmt.Fprintf(t.out, "ringload: "+format+"\n", args...)
	os.Exit(1)
}

func (t *runTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

// cleanup runs the registered cleanups, last first.
func (t *runTB) cleanup() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// err is every error reported so far.
func (t *runTB) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.errs...)
}
