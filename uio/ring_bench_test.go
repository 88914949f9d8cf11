package uio

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
)

// benchKernel queues one-block READ(10) entries the way queue_cmd_ring
// does (128-byte entries, PAD at the wrap), and nothing else: enough of a
// kernel to drive the ring round without measuring a fake's bookkeeping.
type benchKernel struct {
	rr    *rawRegion
	head  uint32
	id    uint16
	entry [128]byte
}

func newBenchKernel(b *testing.B) *benchKernel {
	bk := &benchKernel{rr: newRawRegion(b, 64<<10-MailboxSize, 1<<20, 0)}
	le := binary.LittleEndian
	le.PutUint32(bk.entry[:], 128|OpCmd)
	le.PutUint32(bk.entry[reqIovCntOff:], 1)
	dataOff, _ := bk.rr.ring.DataArea()
	le.PutUint64(bk.entry[ReqIovOff:], dataOff)
	le.PutUint64(bk.entry[ReqIovOff+8:], 4096)
	copy(bk.entry[CmdEntrySize:], []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0})
	return bk
}

func (bk *benchKernel) submit() {
	size := bk.rr.ring.Size()
	le := binary.LittleEndian
	cmdr := bk.rr.mem[MailboxSize : MailboxSize+size]
	if size-bk.head < uint32(len(bk.entry)) {
		le.PutUint32(cmdr[bk.head:], (size-bk.head)|OpPad)
		bk.head = 0
	}
	e := cmdr[bk.head : bk.head+uint32(len(bk.entry))]
	copy(e, bk.entry[:])
	bk.id = bk.id%maxCmdID + 1
	le.PutUint16(e[hdrCmdIDOff:], bk.id)
	le.PutUint64(e[reqCdbOffOff:], uint64(MailboxSize+bk.head+CmdEntrySize))
	bk.head = (bk.head + uint32(len(bk.entry))) % size
	atomic.StoreUint32(bk.rr.ring.u32(mbCmdHeadOff), bk.head)
}

// BenchmarkRingRoundTrip measures one command through the ring: queue,
// Refresh, Next (copying CDB and iovec out), Complete (taking over the
// tail slot) and Kick (one doorbell), per command and in batches of 32
// as a loaded device loop sees them. The project's goal is 0 allocs/op.
func BenchmarkRingRoundTrip(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(map[int]string{1: "single", 32: "batch32"}[batch], func(b *testing.B) {
			bk := newBenchKernel(b)
			r := bk.rr.ring
			cmds := make([]*Command, batch)
			for i := range cmds {
				cmds[i] = NewCommand()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n += batch {
				for range batch {
					bk.submit()
				}
				if err := r.Refresh(); err != nil {
					b.Fatal(err)
				}
				for _, c := range cmds {
					if ok, err := r.Next(c); !ok || err != nil {
						b.Fatalf("Next = %v, %v", ok, err)
					}
				}
				for i := len(cmds) - 1; i >= 0; i-- { // out of order
					cmds[i].ReadLen, cmds[i].HasReadLen = 4096, true
					r.Complete(cmds[i])
				}
				if err := r.Kick(); err != nil {
					b.Fatal(err)
				}
			}
			if !r.Idle() {
				b.Fatal("ring not idle")
			}
		})
	}
}
