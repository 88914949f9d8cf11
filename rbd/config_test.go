package rbd

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Config
	}{
		{"pool_and_image", "rbd/disk1", Config{Pool: "rbd", Image: "disk1"}},
		{"namespace", "rbd/tenant-a/disk1", Config{Pool: "rbd", Namespace: "tenant-a", Image: "disk1"}},
		{"ceph_iscsi_default", "rbd/disk_1;osd_op_timeout=30", Config{Pool: "rbd", Image: "disk_1", OSDOpTimeout: 30 * time.Second}},
		{"all_options", "p/i;osd_op_timeout=600;conf=/etc/ceph/other.conf;id=iscsi",
			Config{Pool: "p", Image: "i", OSDOpTimeout: 600 * time.Second, ConfPath: "/etc/ceph/other.conf", ID: "iscsi"}},
		{"options_any_order", "p/i;id=gw.1;conf=/c.conf", Config{Pool: "p", Image: "i", ConfPath: "/c.conf", ID: "gw.1"}},
		{"zero_timeout_means_default", "p/i;osd_op_timeout=0", Config{Pool: "p", Image: "i"}},
		{"utf8_names", "pöol/ïmage", Config{Pool: "pöol", Image: "ïmage"}},
		{"longest", "p/" + strings.Repeat("i", maxConfigLen-2), Config{Pool: "p", Image: strings.Repeat("i", maxConfigLen-2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig(tt.in)
			if err != nil {
				t.Fatalf("ParseConfig(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseConfig(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseConfigRefuses(t *testing.T) {
	tests := []struct {
		name, in, msg string
	}{
		{"empty", "", "empty config"},
		{"image_only", "disk1", "has 1 elements"},
		{"too_many_elements", "a/b/c/d", "has 4 elements"},
		{"empty_pool", "/disk1", "empty pool"},
		{"empty_image", "rbd/", "empty image"},
		{"empty_namespace", "rbd//disk1", "empty namespace"},
		{"snapshot", "rbd/disk1@snap", "snapshots cannot be served"},
		{"dot_dot_pool", "../disk1", "pool name \"..\""},
		{"space_in_image", "rbd/my disk", "not allowed"},
		{"colon", "rbd/disk:1", "':'"},
		{"nul", "rbd/disk\x001", "NUL"},
		{"newline", "rbd/disk1\n", "control character"},
		{"bad_utf8", "rbd/disk\xff", "UTF-8"},
		{"overlong", "p/" + strings.Repeat("i", maxConfigLen-1), "at most"},
		{"trailing_semicolon", "rbd/disk1;", "empty option"},
		{"double_semicolon", "rbd/disk1;;id=a", "empty option"},
		{"unknown_option", "rbd/disk1;cache=on", "unknown option \"cache\""},
		{"option_without_value", "rbd/disk1;osd_op_timeout", "no '='"},
		{"duplicate_option", "rbd/disk1;id=a;id=b", "given twice"},
		{"timeout_not_number", "rbd/disk1;osd_op_timeout=abc", "whole seconds"},
		{"timeout_negative", "rbd/disk1;osd_op_timeout=-1", "whole seconds"},
		{"timeout_plus", "rbd/disk1;osd_op_timeout=+5", "whole seconds"},
		{"timeout_hex", "rbd/disk1;osd_op_timeout=0x10", "whole seconds"},
		{"timeout_empty", "rbd/disk1;osd_op_timeout=", "whole seconds"},
		{"timeout_too_big", "rbd/disk1;osd_op_timeout=601", "0-600"},
		{"timeout_overflow", "rbd/disk1;osd_op_timeout=99999999999999999999", "whole seconds"},
		{"conf_relative", "rbd/disk1;conf=ceph.conf", "not absolute"},
		{"conf_dotdot", "rbd/disk1;conf=/etc/ceph/../shadow", "not clean"},
		{"conf_directory", "rbd/disk1;conf=/etc/ceph/", "not clean"},
		{"conf_empty", "rbd/disk1;conf=", "conf option is empty"},
		{"id_with_client_prefix", "rbd/disk1;id=client.admin", "without \"client.\""},
		{"id_bad_char", "rbd/disk1;id=a/b", "want letters"},
		{"id_empty", "rbd/disk1;id=", "id option is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig(tt.in)
			if err == nil {
				t.Fatalf("ParseConfig(%q) = %+v, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ParseConfig(%q) error %q does not say %q", tt.in, err, tt.msg)
			}
		})
	}
}

func TestConfigStringRoundTrip(t *testing.T) {
	for _, in := range []string{
		"rbd/disk1",
		"rbd/ns/disk1",
		"rbd/disk1;osd_op_timeout=30;conf=/etc/ceph/ceph.conf;id=iscsi",
	} {
		c, err := ParseConfig(in)
		if err != nil {
			t.Fatalf("ParseConfig(%q): %v", in, err)
		}
		if got := c.String(); got != in {
			t.Errorf("ParseConfig(%q).String() = %q", in, got)
		}
	}
}

// FuzzParseConfig checks that the parser never panics and that every
// accepted string survives a round trip through String unchanged in meaning.
// The committed corpus is in testdata/fuzz/FuzzParseConfig.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"rbd/disk1", "rbd/ns/disk1;osd_op_timeout=30", "p/i;conf=/a/b;id=x",
		"", "/", "//", "a/b;", "a/b;=", "a/b;osd_op_timeout=600", "a/b@c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfig(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseConfig(%q): empty error message", s)
			}
			return
		}
		if c.Pool == "" || c.Image == "" {
			t.Fatalf("ParseConfig(%q) accepted an empty pool or image: %+v", s, c)
		}
		again, err := ParseConfig(c.String())
		if err != nil {
			t.Fatalf("ParseConfig(%q) accepted, but its String %q is refused: %v", s, c.String(), err)
		}
		if again != c {
			t.Fatalf("round trip of %q: got %+v, want %+v", s, again, c)
		}
	})
}
