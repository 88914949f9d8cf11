package main

import (
	"errors"
	"testing"
)

func TestEncodeDecodeBlock(t *testing.T) {
	for _, size := range []int{512, 4096, 65536} {
		want := blockHeader{Run: 0xfeedface, Block: 12345, Seq: 1 << 40}
		buf := make([]byte, size)
		encodeBlock(buf, want)
		got, err := decodeBlock(buf)
		if err != nil {
			t.Fatalf("size %d: decode: %v", size, err)
		}
		if got != want {
			t.Errorf("size %d: decoded %+v, want %+v", size, got, want)
		}
	}
}

func TestEncodeBlockPayloadDiffersPerWrite(t *testing.T) {
	a, b := make([]byte, 4096), make([]byte, 4096)
	encodeBlock(a, blockHeader{Run: 1, Block: 2, Seq: 3})
	encodeBlock(b, blockHeader{Run: 1, Block: 2, Seq: 4})
	if string(a[headerSize:]) == string(b[headerSize:]) {
		t.Error("two writes of one block carry the same payload")
	}
}

func TestDecodeBlockRejects(t *testing.T) {
	good := func() []byte {
		b := make([]byte, 4096)
		encodeBlock(b, blockHeader{Run: 7, Block: 8, Seq: 9})
		return b
	}
	flip := func(at int) func([]byte) []byte {
		return func(b []byte) []byte { b[at] ^= 0x40; return b }
	}
	tests := []struct {
		name   string
		mangle func([]byte) []byte
		want   error // nil: any error
	}{
		{"never_written_zeroes", func(b []byte) []byte { return make([]byte, len(b)) }, errNotWritten},
		{"foreign_data", func(b []byte) []byte { copy(b, "EXT4DATA"); return b }, errNotWritten},
		{"flipped_run", flip(9), errChecksum},
		{"flipped_block_number", flip(17), errChecksum},
		{"flipped_sequence", flip(25), errChecksum},
		{"flipped_checksum", flip(crcOffset + 1), errChecksum},
		{"flipped_first_payload_byte", flip(headerSize), errChecksum},
		{"flipped_last_byte", flip(4095), errChecksum},
		{"torn_new_head_old_tail", func(b []byte) []byte {
			old := make([]byte, len(b))
			encodeBlock(old, blockHeader{Run: 7, Block: 8, Seq: 5})
			copy(b[2048:], old[2048:])
			return b
		}, errChecksum},
		{"wrong_size", func(b []byte) []byte { return b[:2048] }, nil},
		{"shorter_than_header", func(b []byte) []byte { return b[:20] }, errNotWritten},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeBlock(tc.mangle(good()))
			if err == nil {
				t.Fatal("decoded a damaged block")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestValidBlockSize(t *testing.T) {
	for n, want := range map[int]bool{0: false, 256: false, 512: true, 1000: false, 4096: true, 1 << 20: true} {
		if got := validBlockSize(n); got != want {
			t.Errorf("validBlockSize(%d) = %v, want %v", n, got, want)
		}
	}
}
