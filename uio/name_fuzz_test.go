package uio

import (
	"strings"
	"testing"
)

// FuzzParseUIOName feeds arbitrary uio device names to ParseUIOName. The
// name comes from the kernel (netlink events, /sys/class/uio/uioN/name)
// but carries dev_name and dev_config, which whoever writes configfs
// chose, and dev_name becomes a configfs path component: an accepted name
// must never climb out of core/user_N, and must survive a round trip
// through String. The committed corpus is in testdata/fuzz/FuzzParseUIOName.
func FuzzParseUIOName(f *testing.F) {
	for _, s := range []string{
		"tcm-user/1/disk0/file//var/lib/disk.img", "tcm-user/1/disk0", "tcm-user/0/d/rbd/pool/img;osd_op_timeout=30",
		"tcm-user/1/../file//x", "tcm-user/1/./x", "tcm-user/1/", "tcm-user/1/d/", "tcm-user//d", "tcm-user/x/d",
		"tcm-user/4294967296/d", "tcm-user/-1/d", "tcm-user/007/d", "tcm-user/1/d\x00e", "other/1/d", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseUIOName(s)
		if err != nil {
			return
		}
		if n.Device == "" || n.Device == "." || n.Device == ".." || strings.ContainsAny(n.Device, "/\x00") {
			t.Fatalf("ParseUIOName(%q) accepted device name %q, which is no single path component", s, n.Device)
		}
		again, err := ParseUIOName(n.String())
		if err != nil || again != n {
			t.Fatalf("ParseUIOName(%q) = %+v; its String %q parses as %+v, %v", s, n, n.String(), again, err)
		}
	})
}
