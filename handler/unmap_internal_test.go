package handler

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// coalesceDescriptors leaves, for any list, ranges in ascending order,
// none empty, none touching the next, that cover exactly the blocks of
// the descriptors.
func TestCoalesceDescriptorsUnion(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		const space = 512
		count := 1 + r.IntN(64)
		if iter%100 == 0 {
			count = maxUnmapDescriptors
		}
		list := make([]byte, count*unmapDescriptorLen)
		var want [space]bool
		for i := range count {
			lba, n := uint64(r.IntN(space-8)), uint32(r.IntN(8))
			binary.BigEndian.PutUint64(list[i*unmapDescriptorLen:], lba)
			binary.BigEndian.PutUint32(list[i*unmapDescriptorLen+8:], n)
			binary.BigEndian.PutUint32(list[i*unmapDescriptorLen+12:], r.Uint32()) // reserved
			for b := range uint64(n) {
				want[lba+b] = true
			}
		}
		out := coalesceDescriptors(list)
		var got [space]bool
		prevEnd := int64(-1)
		for i := range out {
			d := list[i*unmapDescriptorLen:]
			lba, n := be64(d), uint64(be32(d[8:]))
			if n == 0 || int64(lba) <= prevEnd {
				t.Fatalf("list %d: range %d (%d+%d) empty, out of order or touching the one before (end %d)", iter, i, lba, n, prevEnd)
			}
			prevEnd = int64(lba + n)
			for b := range n {
				got[lba+b] = true
			}
		}
		if got != want {
			t.Fatalf("list %d: ranges do not cover exactly the descriptors' blocks", iter)
		}
	}
}

func TestCoalesceDescriptorsAllocs(t *testing.T) {
	list := make([]byte, maxUnmapDescriptors*unmapDescriptorLen)
	fill := func() {
		for i := range maxUnmapDescriptors {
			binary.BigEndian.PutUint64(list[i*unmapDescriptorLen:], uint64(maxUnmapDescriptors-i)*3)
			binary.BigEndian.PutUint32(list[i*unmapDescriptorLen+8:], 1)
		}
	}
	if n := testing.AllocsPerRun(10, func() { fill(); coalesceDescriptors(list) }); n != 0 {
		t.Fatalf("%v allocations per UNMAP list", n)
	}
}
