//go:build !nautilus

package rbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"
)

// unmapParams builds an UNMAP parameter list (SBC-3 5.28.2) of one-block
// or n-block descriptors.
func unmapParams(descs ...[2]uint64) []byte {
	p := make([]byte, 8+16*len(descs))
	binary.BigEndian.PutUint16(p[0:], uint16(len(p)-2))
	binary.BigEndian.PutUint16(p[2:], uint16(16*len(descs)))
	for i, d := range descs {
		binary.BigEndian.PutUint64(p[8+16*i:], d[0])
		binary.BigEndian.PutUint32(p[8+16*i+8:], uint32(d[1]))
	}
	return p
}

func unmap10(pll int) []byte {
	cdb := make([]byte, 10)
	cdb[0] = 0x42
	binary.BigEndian.PutUint16(cdb[7:], uint16(pll))
	return cdb
}

// TestUnmapLibiscsiSimple replays through a whole handler.Device what
// libiscsi's SCSI.Unmap.Simple sends (test_unmap_simple.c): 256 blocks
// written, then UNMAP of blocks 0..i as one descriptor for i = 1..256,
// each followed by a READ(10) of the blocks that must read back as zeros
// (LBPRZ); the blocks written again, then UNMAP of i+1 one-block
// descriptors 0, 1, ..., i for i = 0..255 (32896 descriptors in all), each
// followed by the read. The second half is what took 581 s in the VM when
// every descriptor was its own serial librbd discard: on a loaded 2-core
// host's micro cluster it took 14.0 s as 32896 discards and 0.37 s once
// the handler joins the descriptors (256 discards, handler/unmap.go
// coalesceDescriptors). The times are logged, not bounded: the handler's
// tests hold the number of discards.
func TestUnmapLibiscsiSimple(t *testing.T) {
	needCeph(t)
	const size = 128 << 20
	name := newImage(t, "rbd", size, 22)
	g := startGateway(t, "gwu", "rbd/"+name, size, time.Second, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	data := bytes.Repeat([]byte{'a'}, 256*blockSize)
	if c, _, err := g.writeRetryingBusy(ctx, 0, data); err != nil || c.Status != scsiGood {
		t.Fatalf("write: %s, %v", outcome(c), err)
	}
	zeros := make([]byte, 256*blockSize)
	run := func(list []byte, n int) {
		t.Helper()
		c, err := g.exec(ctx, unmap10(len(list)), list, 0)
		if err != nil || c.Status != scsiGood {
			t.Fatalf("UNMAP of %d descriptors: %s, %v", (len(list)-8)/16, outcome(c), err)
		}
		c, err = g.exec(ctx, rw10(0x28, 0, n*blockSize), nil, n*blockSize)
		if err != nil || c.Status != scsiGood {
			t.Fatalf("READ of %d blocks: %s, %v", n, outcome(c), err)
		}
		if !bytes.Equal(c.DataIn[:n*blockSize], zeros[:n*blockSize]) {
			t.Fatalf("blocks 0-%d do not read back as zeros after UNMAP", n-1)
		}
	}
	start := time.Now()
	for i := 1; i <= 256; i++ {
		run(unmapParams([2]uint64{0, uint64(i)}), i)
	}
	single := time.Since(start)
	if c, err := g.exec(ctx, write10(0, data), data, 0); err != nil || c.Status != scsiGood {
		t.Fatalf("write: %s, %v", outcome(c), err)
	}
	descs := make([][2]uint64, 0, 256)
	start = time.Now()
	for i := range 256 {
		descs = append(descs, [2]uint64{uint64(i), 1})
		run(unmapParams(descs...), i+1)
	}
	perBlock := time.Since(start)
	t.Logf("libiscsi Unmap.Simple on user:rbd: 256 single-descriptor UNMAPs + reads %v, 256 UNMAPs of 1..256 one-block descriptors (32896) + reads %v",
		single.Round(time.Millisecond), perBlock.Round(time.Millisecond))
}
