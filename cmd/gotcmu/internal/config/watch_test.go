package config

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// watched runs Watch on dir/tcmu.conf and returns the configurations it
// applies.
func watched(t *testing.T, dir string) (<-chan Config, <-chan error) {
	t.Helper()
	path := filepath.Join(dir, "tcmu.conf")
	initial, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	applied := make(chan Config, 16)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		done <- Watch(ctx, path, initial, zerolog.New(zerolog.NewTestWriter(t)), func(c Config) { applied <- c })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	// Let the watch be in place before the test changes anything.
	time.Sleep(50 * time.Millisecond)
	return applied, done
}

func expectLevel(t *testing.T, applied <-chan Config, want int) {
	t.Helper()
	select {
	case c := <-applied:
		if c.LogLevel != want {
			t.Fatalf("applied log_level %d, want %d", c.LogLevel, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no configuration applied; want log_level %d", want)
	}
}

func expectNothing(t *testing.T, applied <-chan Config) {
	t.Helper()
	select {
	case c := <-applied:
		t.Fatalf("applied %+v, want nothing", c)
	case <-time.After(4 * settle):
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tcmu.conf")
	writeFile(t, path, "log_level = 3\n")
	applied, _ := watched(t, dir)

	// Written in place.
	writeFile(t, path, "log_level = 4\n")
	expectLevel(t, applied, 4)

	// Commenting the key out restores the default.
	writeFile(t, path, "# log_level = 4\n")
	expectLevel(t, applied, 3)

	// A bad file is not applied; the old configuration stays.
	writeFile(t, path, "log_level = four\n")
	expectNothing(t, applied)

	// An editor writing a new file and renaming it over the old one.
	tmp := filepath.Join(dir, ".tcmu.conf.swp")
	writeFile(t, tmp, "log_level = 1\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	expectLevel(t, applied, 1)

	// Removing the file keeps the configuration; a new file applies.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, applied)
	// An event for the name while there is no file to read (a dangling
	// symbolic link) must not bring the defaults back either.
	if err := os.Symlink(filepath.Join(dir, "nowhere"), path); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, applied)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "log_level = 2\n")
	expectLevel(t, applied, 2)

	// Other files in the directory do not matter.
	writeFile(t, filepath.Join(dir, "other.conf"), "log_level = 5\n")
	expectNothing(t, applied)

	// Saving the same configuration applies nothing.
	writeFile(t, path, "log_level = 2 # same\n")
	expectNothing(t, applied)
}

// TestWatchApplySettledFile checks that a save in several writes is
// applied once, as the final file, and never as a half-written one.
func TestWatchApplySettledFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tcmu.conf")
	writeFile(t, path, "log_level = 3\n")
	applied, _ := watched(t, dir)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"# new file\n", "log_dir = \"/tmp\"\n", "log_level = 5\n"} {
		if _, err := f.WriteString(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(settle / 4)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-applied:
		if c.LogLevel != 5 || c.LogDir != "/tmp" {
			t.Fatalf("applied %+v, want the whole file", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing applied")
	}
	expectNothing(t, applied)
}

func TestWatchDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tcmu")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tcmu.conf")
	done := make(chan error, 1)
	go func() { done <- Watch(context.Background(), path, Default(), zerolog.Nop(), func(Config) {}) }()
	time.Sleep(50 * time.Millisecond)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Watch returned nil when its directory went away")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not notice its directory went away")
	}
}

func TestWatchMissingDirectory(t *testing.T) {
	err := Watch(context.Background(), filepath.Join(t.TempDir(), "nope", "tcmu.conf"), Default(), zerolog.Nop(), func(Config) {})
	if err == nil {
		t.Fatal("Watch of a missing directory returned nil")
	}
}
