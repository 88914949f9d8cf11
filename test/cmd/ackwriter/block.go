package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Block layout, little-endian:
//
//	0   8  magic "GOTCMUAW"
//	8   8  run id (random per write run, so stale data of an earlier run never verifies)
//	16  8  block number
//	24  8  sequence number (unique over the run; later writes to a block have higher ones)
//	32  4  block size
//	36  4  CRC-32C over bytes [0,36) and [40,size)
//	40  -  payload derived from run, block and sequence
//
// The checksum covers the payload, so a torn write (new header, old tail, or
// the reverse) never decodes.
const (
	blockMagic   = "GOTCMUAW"
	headerSize   = 40
	minBlockSize = 512
	crcOffset    = 36
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errNotWritten = errors.New("no block written here")
	errChecksum   = errors.New("checksum mismatch")
)

// blockHeader names one write: which run, which block, which attempt.
type blockHeader struct {
	Run   uint64
	Block uint64
	Seq   uint64
}

// validBlockSize reports whether n can hold a block and suits O_DIRECT.
func validBlockSize(n int) bool {
	return n >= minBlockSize && n%minBlockSize == 0
}

// encodeBlock fills all of buf with the block for h.
func encodeBlock(buf []byte, h blockHeader) {
	copy(buf[0:8], blockMagic)
	binary.LittleEndian.PutUint64(buf[8:], h.Run)
	binary.LittleEndian.PutUint64(buf[16:], h.Block)
	binary.LittleEndian.PutUint64(buf[24:], h.Seq)
	binary.LittleEndian.PutUint32(buf[32:], uint32(len(buf)))
	fillPayload(buf[headerSize:], h)
	binary.LittleEndian.PutUint32(buf[crcOffset:], blockChecksum(buf))
}

// decodeBlock checks buf and returns the header of the write it holds.
func decodeBlock(buf []byte) (blockHeader, error) {
	if len(buf) < headerSize || string(buf[0:8]) != blockMagic {
		return blockHeader{}, errNotWritten
	}
	if size := binary.LittleEndian.Uint32(buf[32:]); int(size) != len(buf) {
		return blockHeader{}, fmt.Errorf("block size field %d, want %d", size, len(buf))
	}
	if got, want := binary.LittleEndian.Uint32(buf[crcOffset:]), blockChecksum(buf); got != want {
		return blockHeader{}, fmt.Errorf("%w: stored %08x, computed %08x", errChecksum, got, want)
	}
	return blockHeader{
		Run:   binary.LittleEndian.Uint64(buf[8:]),
		Block: binary.LittleEndian.Uint64(buf[16:]),
		Seq:   binary.LittleEndian.Uint64(buf[24:]),
	}, nil
}

func blockChecksum(buf []byte) uint32 {
	c := crc32.Update(0, castagnoli, buf[:crcOffset])
	return crc32.Update(c, castagnoli, buf[headerSize:])
}

// fillPayload writes a splitmix64 stream seeded from h, so every write
// carries different bytes and a block never verifies by accident.
func fillPayload(p []byte, h blockHeader) {
	x := h.Run ^ h.Block*0x9e3779b97f4a7c15 ^ h.Seq*0xbf58476d1ce4e5b9
	var w [8]byte
	for len(p) > 0 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		binary.LittleEndian.PutUint64(w[:], z)
		p = p[copy(p, w[:]):]
	}
}
