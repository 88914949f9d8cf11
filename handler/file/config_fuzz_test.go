package file

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzCheckConfig feeds arbitrary user:file config strings (the part after
// "file/", from configfs or a D-Bus caller) to CheckPath and CheckConfig.
// Neither may panic, and whatever CheckPath accepts must be a path the
// daemon can open without surprise: absolute, clean, no ".." element,
// printable UTF-8, short enough for the kernel's dev_config. CheckConfig
// must refuse everything CheckPath refuses; on accepted paths it runs
// below a temporary directory, so it only ever stats and checks access
// there. The committed corpus is in testdata/fuzz/FuzzCheckConfig.
func FuzzCheckConfig(f *testing.F) {
	for _, s := range []string{
		"/var/lib/gotcmu/disk.img", "/", "", "disk.img", "/a/../b", "/a/./b", "//a", "/a/",
		"/a\x00b", "/a\nb", "/\xff", "/" + strings.Repeat("x", 249), "/" + strings.Repeat("x", 250),
		"/srv/é t é.img", "/a/..b/c", "/...", "/dev/null",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, path string) {
		err := CheckPath(path)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("CheckPath(%q): empty error message", path)
			}
			if CheckConfig(context.Background(), path) == nil {
				t.Fatalf("CheckConfig(%q) accepted what CheckPath refused: %v", path, err)
			}
			return
		}
		switch {
		case !filepath.IsAbs(path):
			t.Fatalf("CheckPath accepted relative %q", path)
		case filepath.Clean(path) != path:
			t.Fatalf("CheckPath accepted unclean %q", path)
		case !utf8.ValidString(path):
			t.Fatalf("CheckPath accepted invalid UTF-8 %q", path)
		case len(Subtype)+1+len(path) > 255:
			t.Fatalf("CheckPath accepted %d bytes, more than dev_config holds", len(path))
		case strings.IndexFunc(path, unicode.IsControl) >= 0:
			t.Fatalf("CheckPath accepted a control character in %q", path)
		}
		for _, elem := range strings.Split(path, "/") {
			if elem == ".." {
				t.Fatalf("CheckPath accepted a .. element in %q", path)
			}
		}
		// Below the temporary directory the path is still clean and
		// absolute; CheckConfig may accept or refuse it (it may not
		// exist, or be too long now), but must not panic.
		_ = CheckConfig(context.Background(), dir+path)
	})
}
