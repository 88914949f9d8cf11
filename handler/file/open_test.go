package file

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/handlertest"
)

func TestOpen(t *testing.T) {
	const size = 1 << 20
	tests := []struct {
		name string
		// prepare makes what the path names, in dir, and returns the
		// path.
		prepare  func(t *testing.T, dir string) string
		opts     Options
		size     int64
		wantErr  string
		wantSize int64  // file size after Open
		wantHead []byte // first bytes of the file after Open
	}{
		{
			name:     "creates_missing_file",
			prepare:  func(t *testing.T, dir string) string { return filepath.Join(dir, "new.img") },
			size:     size,
			wantSize: size,
		},
		{
			name: "extends_shorter_file_keeping_data",
			prepare: func(t *testing.T, dir string) string {
				return writeFile(t, filepath.Join(dir, "short.img"), []byte("data at the start"))
			},
			size:     size,
			wantSize: size,
			wantHead: []byte("data at the start"),
		},
		{
			name: "leaves_longer_file_alone",
			prepare: func(t *testing.T, dir string) string {
				p := writeFile(t, filepath.Join(dir, "long.img"), []byte("head"))
				if err := os.Truncate(p, 3*size); err != nil {
					t.Fatal(err)
				}
				return p
			},
			size:     size,
			wantSize: 3 * size,
			wantHead: []byte("head"),
		},
		{
			name:    "refuses_directory",
			prepare: func(t *testing.T, dir string) string { return dir },
			size:    size,
			wantErr: "is a directory",
		},
		{
			name: "refuses_fifo_without_blocking",
			prepare: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "fifo")
				if err := unix.Mkfifo(p, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
			size:    size,
			wantErr: "is a FIFO",
		},
		{
			name:    "refuses_character_device",
			prepare: func(t *testing.T, dir string) string { return "/dev/null" },
			size:    size,
			wantErr: "is a character device",
		},
		{
			name:    "refuses_missing_directory",
			prepare: func(t *testing.T, dir string) string { return filepath.Join(dir, "nodir", "x.img") },
			size:    size,
			wantErr: "no such file or directory",
		},
		{
			name:    "refuses_relative_path",
			prepare: func(t *testing.T, dir string) string { return "x.img" },
			size:    size,
			wantErr: "is relative",
		},
		{
			name:    "refuses_negative_workers",
			prepare: func(t *testing.T, dir string) string { return filepath.Join(dir, "w.img") },
			opts:    Options{Workers: -1},
			size:    size,
			wantErr: "-1 workers",
		},
		{
			name:    "refuses_too_many_workers",
			prepare: func(t *testing.T, dir string) string { return filepath.Join(dir, "w.img") },
			opts:    Options{Workers: maxWorkers + 1},
			size:    size,
			wantErr: "257 workers",
		},
		{
			name:    "refuses_negative_size",
			prepare: func(t *testing.T, dir string) string { return filepath.Join(dir, "n.img") },
			size:    -512,
			wantErr: "device size -512",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.prepare(t, t.TempDir())
			opened := make(chan struct{})
			var b *Backend
			var err error
			go func() {
				defer close(opened)
				b, err = Open(handler.DeviceInfo{Config: path, Size: tt.size, BlockSize: 512}, tt.opts, zerolog.Nop())
			}()
			select {
			case <-opened:
			case <-time.After(10 * time.Second):
				t.Fatal("Open blocked")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open(%s) = %v, want an error containing %q", path, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%s): %v", path, err)
			}
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			var st unix.Stat_t
			if err := unix.Stat(path, &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != tt.wantSize {
				t.Errorf("file size %d after Open, want %d", st.Size, tt.wantSize)
			}
			if tt.name == "creates_missing_file" {
				if perm := st.Mode & 0o777; perm != 0o600 {
					t.Errorf("created with mode %#o, want 0600", perm)
				}
				if st.Blocks != 0 {
					t.Errorf("created file holds %d blocks, want none (sparse)", st.Blocks)
				}
			}
			if tt.wantHead != nil {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(data, tt.wantHead) {
					t.Errorf("file starts %q after Open, want %q", data[:len(tt.wantHead)], tt.wantHead)
				}
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loopDevice attaches a fresh sparse file of size bytes to a loop device
// and returns the device's path.
func loopDevice(tb testing.TB, size int64) string {
	tb.Helper()
	if _, err := exec.LookPath("losetup"); err != nil {
		tb.Skip("losetup not installed: no block device to test on")
	}
	backing := filepath.Join(tb.TempDir(), "loop.img")
	if err := os.WriteFile(backing, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Truncate(backing, size); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", backing).CombinedOutput()
	if err != nil {
		tb.Skipf("cannot attach a loop device (needs root and /dev/loop-control): %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	tb.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			tb.Errorf("detach %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// TestBlockDevice runs the suite on loop devices: a block device's size
// is fixed, its discard is the block layer's, and it has no holes.
func TestBlockDevice(t *testing.T) {
	handlertest.TestBackend(t, func(t *testing.T, size int64) handler.Backend {
		// Room for the suite's resize test to grow into.
		dev := loopDevice(t, size+4<<20)
		b, err := Open(handler.DeviceInfo{Config: dev, Size: size, BlockSize: 512}, Options{}, zerolog.Nop())
		if err != nil {
			t.Fatalf("Open(%s): %v", dev, err)
		}
		return b
	})
}

func TestBlockDeviceTooSmall(t *testing.T) {
	dev := loopDevice(t, 1<<20)
	_, err := Open(handler.DeviceInfo{Config: dev, Size: 2 << 20, BlockSize: 512}, Options{}, zerolog.Nop())
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Open of a 1 MiB block device as a 2 MiB device: %v, want ENOSPC", err)
	}
	b, err := Open(handler.DeviceInfo{Config: dev, Size: 1 << 20, BlockSize: 512}, Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Resize(2 << 20); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Resize beyond the block device: %v, want ENOSPC", err)
	}
}
