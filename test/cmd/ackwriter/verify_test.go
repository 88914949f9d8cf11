package main

import (
	"strings"
	"testing"
)

func TestVerifyBlocks(t *testing.T) {
	const bs = 512
	h := logHeader{Run: 42, BlockSize: bs, Blocks: 4}
	// history: block 0 got seqs 1 (acked), 5 (acked), 9 (issued, failed).
	history := func() map[uint64]*blockHistory {
		return map[uint64]*blockHistory{
			0: {issued: []uint64{1, 5, 9}, acked: []uint64{1, 5}},
			2: {issued: []uint64{3}}, // never acknowledged: not checked
		}
	}
	block := func(h blockHeader) []byte {
		b := make([]byte, bs)
		encodeBlock(b, h)
		return b
	}
	tests := []struct {
		name      string
		disk      []byte // what block 0 holds
		want      verifyReport
		wantIssue string
	}{
		{"latest_acknowledged_write_present", block(blockHeader{42, 0, 5}),
			verifyReport{Acknowledged: 2, Verified: 2, Blocks: 1}, ""},
		{"failed_write_landed_after_all", block(blockHeader{42, 0, 9}),
			verifyReport{Acknowledged: 2, Verified: 2, Blocks: 1, Newer: 1}, ""},
		{"older_acknowledged_write_only", block(blockHeader{42, 0, 1}),
			verifyReport{Acknowledged: 2, Verified: 1, Lost: 1, Blocks: 1}, "older than acknowledged seq 5"},
		{"never_written", make([]byte, bs),
			verifyReport{Acknowledged: 2, Lost: 2, Blocks: 1}, "no block written"},
		{"stale_data_of_another_run", block(blockHeader{41, 0, 5}),
			verifyReport{Acknowledged: 2, Lost: 2, Blocks: 1}, "not this run"},
		{"misdirected_write", block(blockHeader{42, 3, 5}),
			verifyReport{Acknowledged: 2, Lost: 2, Blocks: 1}, "misdirected"},
		{"sequence_never_issued_here", block(blockHeader{42, 0, 7}),
			verifyReport{Acknowledged: 2, Lost: 2, Blocks: 1}, "never issued"},
		{"corrupted", func() []byte { b := block(blockHeader{42, 0, 5}); b[300]++; return b }(),
			verifyReport{Acknowledged: 2, Lost: 2, Blocks: 1}, "checksum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			read := func(b uint64, buf []byte) error {
				if b != 0 {
					t.Fatalf("read block %d, which has no acknowledged write", b)
				}
				copy(buf, tc.disk)
				return nil
			}
			got, err := verifyBlocks(h, history(), read, make([]byte, bs))
			if err != nil {
				t.Fatal(err)
			}
			issues := strings.Join(got.Problems, "; ")
			if counts(got) != counts(tc.want) {
				t.Errorf("report %+v, want %+v", got, tc.want)
			}
			if tc.wantIssue == "" && issues != "" || !strings.Contains(issues, tc.wantIssue) {
				t.Errorf("problems %q, want one mentioning %q", issues, tc.wantIssue)
			}
		})
	}
}

// counts is a report without its problem texts, for comparison.
func counts(r verifyReport) [5]int {
	return [5]int{r.Acknowledged, r.Verified, r.Lost, r.Blocks, r.Newer}
}
