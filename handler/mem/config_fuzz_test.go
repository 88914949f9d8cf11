package mem

import (
	"context"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
)

// FuzzHandlerConfig feeds arbitrary user:mem config strings (the label
// after "mem/", from configfs or a D-Bus caller) and device sizes (from
// the kernel's netlink event and configfs) to the handler's CheckConfig
// and Open. Neither may panic; they must agree on the label; an accepted
// label is printable UTF-8 that fits the kernel's dev_config; Open refuses
// exactly the sizes outside 0..1 PiB. The committed corpus is in
// testdata/fuzz/FuzzHandlerConfig.
func FuzzHandlerConfig(f *testing.F) {
	f.Add("", int64(1<<20))
	f.Add("disk0", int64(0))
	f.Add("a b/c;d=e", int64(512))
	f.Add("\x00", int64(4096))
	f.Add("\xff\xfe", int64(1<<30))
	f.Add("é", int64(-1))
	f.Add(strings.Repeat("x", 251), int64(1<<50))
	f.Add(strings.Repeat("x", 252), int64(1<<50+1))
	f.Add("x", int64(-1<<63))
	h := Handler()
	f.Fuzz(func(t *testing.T, label string, size int64) {
		checkErr := h.CheckConfig(context.Background(), label)
		if checkErr == nil {
			switch {
			case !utf8.ValidString(label):
				t.Fatalf("CheckConfig accepted invalid UTF-8 %q", label)
			case len(Subtype)+1+len(label) > 255:
				t.Fatalf("CheckConfig accepted %d bytes, more than dev_config holds", len(label))
			case strings.IndexFunc(label, unicode.IsControl) >= 0:
				t.Fatalf("CheckConfig accepted a control character in %q", label)
			}
		}
		// Sizes the handler accepts are allocated (a chunk table of 16
		// bytes per MiB): keep the ones in range small, pass the others
		// through so the refusal is what is tested.
		if size > 0 && size <= maxSize {
			size %= 1 << 34
		}
		be, err := h.Open(context.Background(), handler.DeviceInfo{Name: "fuzz", Config: label, Size: size, BlockSize: 512}, zerolog.Nop())
		wantOK := checkErr == nil && size >= 0 && size <= maxSize
		if (err == nil) != wantOK {
			t.Fatalf("Open(%q, size %d) = %v; CheckConfig said %v", label, size, err, checkErr)
		}
		if err == nil {
			if err := be.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
	})
}
