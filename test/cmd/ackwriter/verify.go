package main

import (
	"fmt"
	"io"
	"slices"
)

// verifyReport counts writes, not blocks: an acknowledged write is verified
// when its block holds it or a later write that was issued for that block.
type verifyReport struct {
	Acknowledged int // acknowledged writes in the log
	Verified     int
	Lost         int
	Blocks       int // blocks with at least one acknowledged write
	Newer        int // blocks holding an issued but unacknowledged write newer than the last acknowledged one
	Problems     []string
}

// verifyBlocks reads every block with an acknowledged write through
// readBlock and checks it against the log. It stops early only on a read
// error, which is returned.
func verifyBlocks(h logHeader, blocks map[uint64]*blockHistory, readBlock func(block uint64, buf []byte) error, buf []byte) (verifyReport, error) {
	var r verifyReport
	nums := make([]uint64, 0, len(blocks))
	for b, bh := range blocks {
		if len(bh.acked) > 0 {
			nums = append(nums, b)
		}
	}
	slices.Sort(nums)
	for _, b := range nums {
		bh := blocks[b]
		r.Blocks++
		r.Acknowledged += len(bh.acked)
		if err := readBlock(b, buf); err != nil {
			return r, fmt.Errorf("read block %d: %w", b, err)
		}
		held, problem := heldSeq(h, b, bh, buf)
		if problem != "" {
			r.Lost += len(bh.acked)
			r.Problems = append(r.Problems, problem)
			continue
		}
		last := bh.lastAcked()
		if held > last {
			r.Newer++
		}
		for _, seq := range bh.acked {
			if seq <= held {
				r.Verified++
			} else {
				r.Lost++
			}
		}
		if held < last {
			r.Problems = append(r.Problems, fmt.Sprintf("block %d holds seq %d, older than acknowledged seq %d", b, held, last))
		}
	}
	return r, nil
}

// heldSeq decodes block b and returns the sequence it holds, or a problem
// saying why none of this block's writes is there.
func heldSeq(h logHeader, b uint64, bh *blockHistory, buf []byte) (uint64, string) {
	got, err := decodeBlock(buf)
	switch {
	case err != nil:
		return 0, fmt.Sprintf("block %d: %v (last acknowledged seq %d)", b, err, bh.lastAcked())
	case got.Run != h.Run:
		return 0, fmt.Sprintf("block %d holds run %016x, not this run %016x", b, got.Run, h.Run)
	case got.Block != b:
		return 0, fmt.Sprintf("block %d holds the data of block %d (misdirected write)", b, got.Block)
	case !bh.wasIssued(got.Seq):
		return 0, fmt.Sprintf("block %d holds seq %d, never issued for it", b, got.Seq)
	}
	return got.Seq, ""
}

// readerBlocks reads block b of the logged region from r.
func readerBlocks(r io.ReaderAt, h logHeader) func(uint64, []byte) error {
	return func(b uint64, buf []byte) error {
		n, err := r.ReadAt(buf, h.Offset+int64(b)*int64(h.BlockSize))
		if n == len(buf) {
			return nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
}
