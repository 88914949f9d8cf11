package file

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{name: "absolute", path: "/var/lib/gotcmu/disk.img"},
		{name: "root_level", path: "/disk"},
		{name: "spaces_and_unicode", path: "/srv/disques/é t é.img"},
		{name: "longest", path: "/" + strings.Repeat("x", 249)},
		{name: "empty", path: "", wantErr: "no path"},
		{name: "too_long", path: "/" + strings.Repeat("x", 250), wantErr: "251 bytes long; at most 250"},
		{name: "relative", path: "disk.img", wantErr: "is relative"},
		{name: "relative_dot", path: "./disk.img", wantErr: "is relative"},
		{name: "dotdot", path: "/srv/../etc/shadow", wantErr: `has a ".." element`},
		{name: "trailing_dotdot", path: "/srv/..", wantErr: `has a ".." element`},
		{name: "dot_element", path: "/srv/./disk", wantErr: `write it as "/srv/disk"`},
		{name: "double_slash", path: "//srv/disk", wantErr: `write it as "/srv/disk"`},
		{name: "trailing_slash", path: "/srv/disk/", wantErr: `write it as "/srv/disk"`},
		{name: "nul", path: "/srv/disk\x00.img", wantErr: "control character U+0000"},
		{name: "newline", path: "/srv/disk\n", wantErr: "control character U+000A"},
		{name: "invalid_utf8", path: "/srv/\xfe", wantErr: "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPath(tt.path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckPath(%q) = %v, want nil", tt.path, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckPath(%q) = %v, want an error containing %q", tt.path, err, tt.wantErr)
			}
		})
	}
}

// fsLayout is a directory tree with every case CheckConfig tells apart.
type fsLayout struct {
	open, secret, shared string
}

// newLayout makes, under a world-searchable directory:
// open/ (0755) with file-0600, file-0666, a subdirectory and a FIFO;
// secret/ (0700) with file-0666; shared/ (1777).
func newLayout(t *testing.T) fsLayout {
	t.Helper()
	base := t.TempDir()
	// t.TempDir's directories are 0700; let other users search them.
	for d := base; d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l := fsLayout{
		open:   filepath.Join(base, "open"),
		secret: filepath.Join(base, "secret"),
		shared: filepath.Join(base, "shared"),
	}
	mkdir := func(dir string, mode os.FileMode) {
		if err := os.Mkdir(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil { // not masked by umask
			t.Fatal(err)
		}
	}
	create := func(path string, mode os.FileMode) {
		if err := os.WriteFile(path, nil, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(l.open, 0o755)
	mkdir(l.secret, 0o700)
	mkdir(l.shared, 0o1777)
	mkdir(filepath.Join(l.open, "dir"), 0o755)
	create(filepath.Join(l.open, "file-0600"), 0o600)
	create(filepath.Join(l.open, "file-0666"), 0o666)
	create(filepath.Join(l.secret, "file-0666"), 0o666)
	if err := unix.Mkfifo(filepath.Join(l.open, "fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	return l
}

// asCaller runs fn on a locked thread with the file system credentials of
// uid, as the D-Bus service does for CheckConfig, and never unlocks it, so
// that the thread ends with the goroutine.
func asCaller(t *testing.T, uid int, fn func(ctx context.Context)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("taking another user's file system credentials needs root (CAP_SETUID, CAP_SETGID)")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setgroups(nil); err != nil {
			errc <- err
			return
		}
		unix.Setfsgid(uid)
		unix.Setfsuid(uid)
		if now, _ := unix.SetfsuidRetUid(-1); now != uid {
			errc <- unix.EPERM
			return
		}
		fn(handler.WithCaller(context.Background(), handler.Caller{UID: uint32(uid)}))
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("take the credentials of uid %d: %v", uid, err)
	}
}

func TestCheckConfig(t *testing.T) {
	const nobody = 65534
	l := newLayout(t)
	tests := []struct {
		name string
		path string
		// Errors expected as the daemon (root) and as nobody; ""
		// means valid.
		asDaemon, asNobody string
	}{
		{"existing_file_anyone_may_write", filepath.Join(l.open, "file-0666"), "", ""},
		{"existing_file_only_owner_may_write", filepath.Join(l.open, "file-0600"), "", "is not readable and writable: permission denied"},
		{"missing_file_in_shared_directory", filepath.Join(l.shared, "new.img"), "", ""},
		{"missing_file_in_directory_of_others", filepath.Join(l.open, "new.img"), "", "cannot create"},
		{"missing_directory", filepath.Join(l.open, "nodir", "new.img"), "stat " + filepath.Join(l.open, "nodir") + ": no such file or directory", "no such file or directory"},
		{"directory", filepath.Join(l.open, "dir"), "is a directory", "is a directory"},
		{"fifo", filepath.Join(l.open, "fifo"), "is a FIFO", "is a FIFO"},
		{"character_device", "/dev/null", "is a character device", "is a character device"},
		{"file_in_unsearchable_directory", filepath.Join(l.secret, "file-0666"), "", "permission denied"},
		{"missing_file_in_unsearchable_directory", filepath.Join(l.secret, "missing"), "", "permission denied"},
		{"bad_syntax", "relative/path", "is relative", "is relative"},
	}
	check := func(t *testing.T, ctx context.Context, path, want string) {
		t.Helper()
		err := CheckConfig(ctx, path)
		switch {
		case want == "" && err != nil:
			t.Errorf("CheckConfig(%s) = %v, want nil", path, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("CheckConfig(%s) = %v, want an error containing %q", path, err, want)
		}
	}
	t.Run("as_daemon", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) { check(t, context.Background(), tt.path, tt.asDaemon) })
		}
	})
	t.Run("as_unprivileged_caller", func(t *testing.T) {
		errs := make(map[string]error)
		asCaller(t, nobody, func(ctx context.Context) {
			for _, tt := range tests {
				errs[tt.name] = CheckConfig(ctx, tt.path)
			}
		})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := errs[tt.name]
				switch {
				case tt.asNobody == "" && err != nil:
					t.Errorf("CheckConfig(%s) = %v, want nil", tt.path, err)
				case tt.asNobody != "" && (err == nil || !strings.Contains(err.Error(), tt.asNobody)):
					t.Errorf("CheckConfig(%s) = %v, want an error containing %q", tt.path, err, tt.asNobody)
				}
			})
		}
		// The point of checking as the caller: behind a directory it
		// cannot search, an existing file and a missing one look the
		// same.
		existing := strings.ReplaceAll(errs["file_in_unsearchable_directory"].Error(), "file-0666", "NAME")
		missing := strings.ReplaceAll(errs["missing_file_in_unsearchable_directory"].Error(), "missing", "NAME")
		if existing != missing {
			t.Errorf("an unprivileged caller can tell an existing file from a missing one:\n  existing: %s\n  missing:  %s", existing, missing)
		}
	})
}

func TestCheckConfigHonoursCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := CheckConfig(ctx, "/dev/null"); err == nil {
		t.Error("CheckConfig with a cancelled context succeeded")
	}
}
