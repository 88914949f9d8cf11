package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestAckLogRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ack.log")
	want := logHeader{Run: 0xabc, BlockSize: 4096, Blocks: 100, Offset: 1 << 20}
	l, err := createAckLog(path, want)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		ack        bool
		block, seq uint64
	}{{false, 3, 1}, {true, 3, 1}, {false, 3, 2}, {false, 99, 3}, {true, 99, 3}, {false, 3, 4}, {true, 3, 4}} {
		if r.ack {
			err = l.acked(r.block, r.seq)
		} else {
			err = l.issued(r.block, r.seq)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, blocks, err := readAckLog(f)
	if err != nil {
		t.Fatal(err)
	}
	if h != want {
		t.Errorf("header %+v, want %+v", h, want)
	}
	if b := blocks[3]; b == nil || !slices.Equal(b.issued, []uint64{1, 2, 4}) || !slices.Equal(b.acked, []uint64{1, 4}) || b.lastAcked() != 4 {
		t.Errorf("block 3 history %+v, want issued [1 2 4] acked [1 4]", b)
	}
	if b := blocks[99]; b == nil || !slices.Equal(b.acked, []uint64{3}) {
		t.Errorf("block 99 history %+v, want acked [3]", b)
	}
}

func TestReadAckLog(t *testing.T) {
	const hdr = "ackwriter-log v1 run=00000000000000ff bs=4096 blocks=10 offset=0\n"
	tests := []struct {
		name    string
		log     string
		wantErr string // "" means success
		acked   int    // acknowledged writes found, on success
	}{
		{"header_only", hdr, "", 0},
		{"records", hdr + "W 1 1\nA 1 1\nW 2 2\n", "", 1},
		{"torn_last_line_ignored", hdr + "W 1 1\nA 1 1\nW 2 2\nA 2", "", 1},
		{"torn_acknowledgement_is_not_one", hdr + "W 1 1\nA 1 1\nW 2 2\nA 2 2", "", 1},
		{"empty_file", "", "header", 0},
		{"not_a_log", "hello\n", "not an", 0},
		{"bad_geometry", "ackwriter-log v1 run=ff bs=100 blocks=10 offset=0\n", "geometry", 0},
		{"unknown_record", hdr + "X 1 1\n", "malformed", 0},
		{"record_with_junk", hdr + "W 1 x\n", "malformed", 0},
		{"block_outside_region", hdr + "W 10 1\n", "beyond", 0},
		{"acknowledged_never_issued", hdr + "W 1 1\nA 1 2\n", "never issued", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, blocks, err := readAckLog(strings.NewReader(tc.log))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			acked := 0
			for _, b := range blocks {
				acked += len(b.acked)
			}
			if acked != tc.acked {
				t.Errorf("%d acknowledged writes, want %d", acked, tc.acked)
			}
		})
	}
}
