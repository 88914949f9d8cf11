package file

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
)

// Subtype is the backstore subtype: user:file, config "file/<path>".
const Subtype = "file"

// ConfigDesc is the help text targetcli shows for the config string.
const ConfigDesc = "File or block device: file/<absolute path>\n" +
	"  path: a regular file (created, sparse, if missing; extended to the device size if shorter) " +
	"or a block device at least as large as the device"

// maxPathLen is the longest path accepted. The kernel keeps the device's
// config in char dev_config[TCMU_CONFIG_LEN] with TCMU_CONFIG_LEN 256
// (drivers/target/target_core_user.c), NUL included, and the "file/"
// prefix counts too.
const maxPathLen = 255 - len("file/")

// Handler returns the user:file handler; opts apply to every device it
// opens.
func Handler(opts Options) handler.Handler {
	return handler.Handler{
		Subtype:     Subtype,
		ConfigDesc:  ConfigDesc,
		CheckConfig: CheckConfig,
		Open: func(_ context.Context, info handler.DeviceInfo, log zerolog.Logger) (handler.Backend, error) {
			return Open(info, opts, log)
		},
	}
}

// CheckPath validates the syntax of the part of a config string after
// "file/", without looking at the filesystem: an absolute, clean path
// (no "." or ".." elements, no doubled or trailing slash) of printable
// UTF-8 that fits in the kernel's dev_config.
func CheckPath(path string) error {
	switch {
	case path == "":
		return errors.New("no path: the config string is file/<absolute path>")
	case len(path) > maxPathLen:
		return fmt.Errorf("path is %d bytes long; at most %d fit in the kernel's dev_config", len(path), maxPathLen)
	case !utf8.ValidString(path):
		return fmt.Errorf("path %q is not valid UTF-8", path)
	}
	for i, r := range path {
		if unicode.IsControl(r) {
			return fmt.Errorf("path has control character %U at byte %d", r, i)
		}
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("path %q is relative; give an absolute path, e.g. file//var/lib/disk.img", path)
	}
	for _, elem := range strings.Split(path[1:], "/") {
		if elem == ".." {
			return fmt.Errorf("path %q has a \"..\" element", path)
		}
	}
	if clean := filepath.Clean(path); clean != path {
		return fmt.Errorf("path %q is not clean; write it as %q", path, clean)
	}
	return nil
}

// CheckConfig validates a config string for user:file: the path's syntax,
// and that the file can be opened for reading and writing, or created.
//
// Every look at the filesystem is a system call made from the calling
// goroutine, with the thread's own credentials: the D-Bus service runs
// CheckConfig on a thread that has the caller's filesystem credentials
// (handler.Caller), so the answer is what stat(2) and access(2) tell that
// caller, and never reveals whether a file the caller cannot see exists.
// For the same reason nothing is handed to another goroutine, and a hung
// filesystem can hold CheckConfig past ctx's deadline; the D-Bus service
// answers the caller at the deadline regardless.
func CheckConfig(ctx context.Context, path string) error {
	if err := CheckPath(path); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	switch err := unix.Stat(path, &st); {
	case err == nil:
		if err := checkType(path, st.Mode); err != nil {
			return err
		}
		if err := access(ctx, path, unix.R_OK|unix.W_OK); err != nil {
			return fmt.Errorf("%s is not readable and writable: %w", path, err)
		}
		return nil
	case errors.Is(err, unix.ENOENT):
		dir := filepath.Dir(path)
		if err := unix.Stat(dir, &st); err != nil {
			return fmt.Errorf("cannot create %s: stat %s: %w", path, dir, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("cannot create %s: %s is not a directory", path, dir)
		}
		if err := access(ctx, dir, unix.W_OK|unix.X_OK); err != nil {
			return fmt.Errorf("cannot create %s in %s: %w", path, dir, err)
		}
		return nil
	default:
		return fmt.Errorf("stat %s: %w", path, err)
	}
}

// checkType accepts regular files and block devices. Anything else either
// has no fixed size and offsets (FIFOs, sockets, character devices) or is
// a directory.
func checkType(path string, mode uint32) error {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFBLK:
		return nil
	case unix.S_IFDIR:
		return fmt.Errorf("%s is a directory", path)
	case unix.S_IFCHR:
		return fmt.Errorf("%s is a character device; only regular files and block devices hold a disk", path)
	case unix.S_IFIFO:
		return fmt.Errorf("%s is a FIFO; only regular files and block devices hold a disk", path)
	case unix.S_IFSOCK:
		return fmt.Errorf("%s is a socket; only regular files and block devices hold a disk", path)
	}
	return fmt.Errorf("%s is not a regular file or block device", path)
}

// access checks path with the thread's filesystem credentials. access(2)
// would check with the real uid, which on the D-Bus service's check thread
// is still the daemon's; faccessat2 with AT_EACCESS uses the credentials
// the thread acts with (fs/open.c, do_faccessat). Kernels before 5.8
// lack faccessat2: there the check is only right for the daemon itself.
func access(ctx context.Context, path string, mode uint32) error {
	err := unix.Faccessat2(unix.AT_FDCWD, path, mode, unix.AT_EACCESS)
	if !errors.Is(err, unix.ENOSYS) {
		return err
	}
	if c, ok := handler.CallerFrom(ctx); ok && c.UID != 0 {
		return fmt.Errorf("cannot check access as uid %d on a kernel without faccessat2: %w", c.UID, err)
	}
	return unix.Access(path, mode)
}
