package uio_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gotcmu/gotcmu/uio"
	"github.com/gotcmu/gotcmu/uio/uiotest"
)

const (
	statusGood           = 0x00
	statusCheckCondition = 0x02
	statusBusy           = 0x08
)

// READ(10) and WRITE(10) CDBs; tests carry a command's tag in the LBA.
func read10(lba uint32, blocks uint16) []byte { return cdb10(0x28, lba, blocks) }

func write10(lba uint32, blocks uint16) []byte { return cdb10(0x2a, lba, blocks) }

func cdb10(op byte, lba uint32, blocks uint16) []byte {
	c := []byte{op, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

var testUnitReady = []byte{0, 0, 0, 0, 0, 0}

// pattern is the data a test command carries, derived from its tag.
func pattern(tag, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(tag*7 + i*13 + i>>8)
	}
	return b
}

func fill(iov [][]byte, data []byte) {
	for _, b := range iov {
		data = data[copy(b, data):]
	}
}

func join(iov [][]byte) []byte {
	var out []byte
	for _, b := range iov {
		out = append(out, b...)
	}
	return out
}

// fetch waits for the kernel at least once and fetches exactly n commands.
func fetch(t *testing.T, k *uiotest.Kernel, n int) []*uio.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var cmds []*uio.Command
	for first := true; first || len(cmds) < n; first = false {
		if err := k.Wait(ctx); err != nil {
			t.Fatalf("Wait with %d of %d commands fetched: %v", len(cmds), n, err)
		}
		if err := k.Ring().Refresh(); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		for {
			c := uio.NewCommand()
			ok, err := k.Ring().Next(c)
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if !ok {
				break
			}
			cmds = append(cmds, c)
		}
	}
	if len(cmds) != n {
		t.Fatalf("fetched %d commands, want %d", len(cmds), n)
	}
	return cmds
}

func submit(t *testing.T, k *uiotest.Kernel, req uiotest.Request) uint16 {
	t.Helper()
	id, err := k.Submit(req)
	if err != nil {
		t.Fatalf("Submit(%x): %v", req.CDB, err)
	}
	return id
}

func complete(t *testing.T, r *uio.Ring, c *uio.Command) {
	t.Helper()
	r.Complete(c)
	if err := r.Kick(); err != nil {
		t.Fatalf("Kick: %v", err)
	}
}

func nextCompletion(t *testing.T, k *uiotest.Kernel) uiotest.Completion {
	t.Helper()
	select {
	case c := <-k.Completions():
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no completion within 5s")
		return uiotest.Completion{}
	}
}

func noCompletion(t *testing.T, k *uiotest.Kernel) {
	t.Helper()
	select {
	case c := <-k.Completions():
		t.Fatalf("unexpected completion %+v", c)
	case <-time.After(20 * time.Millisecond):
	}
}

func TestRoundTrip(t *testing.T) {
	sense := []byte{0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0}
	tests := []struct {
		name   string
		req    uiotest.Request
		handle func(t *testing.T, c *uio.Command)
		want   uiotest.Completion
	}{{
		name: "read fills the data-in buffer",
		req:  uiotest.Request{CDB: read10(0, 3), DataInLen: 3 * 4096},
		handle: func(t *testing.T, c *uio.Command) {
			if c.DataLen() != 3*4096 || len(c.Iov) != 1 {
				t.Errorf("Iov: %d buffers of %d bytes, want one of %d", len(c.Iov), c.DataLen(), 3*4096)
			}
			fill(c.Iov, pattern(1, 3*4096))
		},
		want: uiotest.Completion{Status: statusGood, DataIn: pattern(1, 3*4096)},
	}, {
		name: "write sees the data-out buffer",
		req:  uiotest.Request{CDB: write10(0, 2), DataOut: pattern(2, 5000)},
		handle: func(t *testing.T, c *uio.Command) {
			if got := join(c.Iov); !bytes.Equal(got, pattern(2, 5000)) {
				t.Errorf("Data-Out differs (%d bytes, want 5000)", len(got))
			}
		},
		want: uiotest.Completion{Status: statusGood},
	}, {
		name: "no-data command has no buffers",
		req:  uiotest.Request{CDB: testUnitReady},
		handle: func(t *testing.T, c *uio.Command) {
			if !bytes.Equal(c.CDB, testUnitReady) || len(c.Iov) != 0 || len(c.BidiIov) != 0 {
				t.Errorf("CDB %x Iov %v BidiIov %v", c.CDB, c.Iov, c.BidiIov)
			}
		},
		want: uiotest.Completion{Status: statusGood},
	}, {
		name: "check condition carries the sense, the rest of the buffer zero",
		req:  uiotest.Request{CDB: read10(0, 1), DataInLen: 4096},
		handle: func(t *testing.T, c *uio.Command) {
			c.Status, c.Sense = statusCheckCondition, sense
		},
		want: uiotest.Completion{Status: statusCheckCondition, Sense: append(append([]byte{}, sense...), make([]byte, 96-len(sense))...)},
	}, {
		name: "short read with READ_LEN returns only read_len bytes",
		req:  uiotest.Request{CDB: read10(0, 2), DataInLen: 8192},
		handle: func(t *testing.T, c *uio.Command) {
			fill(c.Iov, pattern(3, 8192))
			c.ReadLen, c.HasReadLen = 100, true
		},
		want: uiotest.Completion{Status: statusGood, UFlags: uio.UFlagReadLen, ReadLen: 100, DataIn: pattern(3, 100)},
	}, {
		name: "check condition with READ_LEN still returns the data",
		req:  uiotest.Request{CDB: read10(0, 1), DataInLen: 4096},
		handle: func(t *testing.T, c *uio.Command) {
			fill(c.Iov, pattern(4, 4096))
			c.Status, c.Sense = statusCheckCondition, sense
			c.ReadLen, c.HasReadLen = 512, true
		},
		want: uiotest.Completion{
			Status: statusCheckCondition, UFlags: uio.UFlagReadLen, ReadLen: 512,
			Sense:  append(append([]byte{}, sense...), make([]byte, 96-len(sense))...),
			DataIn: pattern(4, 512),
		},
	}, {
		name: "variable-length CDB is copied whole",
		req:  uiotest.Request{CDB: append([]byte{0x7f, 0, 0, 0, 0, 0, 0, 24}, make([]byte, 24)...)},
		handle: func(t *testing.T, c *uio.Command) {
			if len(c.CDB) != 32 {
				t.Errorf("CDB length %d, want 32", len(c.CDB))
			}
		},
		want: uiotest.Completion{Status: statusGood},
	}, {
		name: "bidirectional command splits Iov and BidiIov",
		req:  uiotest.Request{CDB: []byte{0x53, 0, 0, 0, 0, 0, 0, 0, 1, 0}, DataOut: pattern(5, 512), DataInLen: 512},
		handle: func(t *testing.T, c *uio.Command) {
			if !bytes.Equal(join(c.Iov), pattern(5, 512)) || len(join(c.BidiIov)) != 512 {
				t.Errorf("Iov %d bytes, BidiIov %d bytes", c.DataLen(), len(join(c.BidiIov)))
			}
			fill(c.BidiIov, pattern(6, 512))
		},
		want: uiotest.Completion{Status: statusGood, DataIn: pattern(6, 512)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := uiotest.New(t, uiotest.Config{})
			id := submit(t, k, tt.req)
			c := fetch(t, k, 1)[0]
			if c.Err != nil || c.ID != id {
				t.Fatalf("fetched ID %d Err %v, want ID %d", c.ID, c.Err, id)
			}
			tt.handle(t, c)
			complete(t, k.Ring(), c)
			got := nextCompletion(t, k)
			tt.want.ID = id
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("completion\n got %+v\nwant %+v", got, tt.want)
			}
			if !k.Ring().Idle() || k.Outstanding() != 0 {
				t.Errorf("ring not idle after the only command completed")
			}
		})
	}
}

// TestWrapAroundWithPad drives a small ring round many times with entries
// of different sizes, so the kernel has to pad at the end.
func TestWrapAroundWithPad(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{RingSize: 1000})
	r := k.Ring()
	for i := range 300 {
		var req uiotest.Request
		switch i % 3 {
		case 0: // 112 + 8: 120 bytes
			req = uiotest.Request{CDB: testUnitReady, Tag: i}
		case 1: // 112 + 16: 128 bytes
			req = uiotest.Request{CDB: read10(0, 1), DataInLen: 4096, Tag: i}
		default: // 112 + 16: 128 bytes, two iovecs once blocks fragment
			req = uiotest.Request{CDB: write10(0, 1), DataOut: pattern(i, 700), Tag: i}
		}
		id := submit(t, k, req)
		c := fetch(t, k, 1)[0]
		if c.ID != id || c.Err != nil || !bytes.Equal(c.CDB, req.CDB[:len(c.CDB)]) {
			t.Fatalf("command %d: ID %d (want %d), Err %v, CDB %x", i, c.ID, id, c.Err, c.CDB)
		}
		if req.DataInLen > 0 {
			fill(c.Iov, pattern(i, req.DataInLen))
		}
		if req.DataOut != nil && !bytes.Equal(join(c.Iov), req.DataOut) {
			t.Fatalf("command %d: Data-Out differs", i)
		}
		complete(t, r, c)
		got := nextCompletion(t, k)
		if got.ID != id || got.Status != statusGood || (req.DataInLen > 0 && !bytes.Equal(got.DataIn, pattern(i, req.DataInLen))) {
			t.Fatalf("command %d: completion %+v", i, got)
		}
	}
	st := k.Stats()
	if st.Pads == 0 {
		t.Errorf("no PAD entry in %d commands over a %d-byte ring", st.Submitted, k.RingSize())
	}
	if !r.Idle() {
		t.Error("ring not idle at the end")
	}
}

// TestOutOfOrderCompletion runs thousands of reads and writes through a
// device loop whose commands are completed in random order by many
// goroutines, each kicking the kernel, while the ring wraps and fills.
func TestOutOfOrderCompletion(t *testing.T) {
	const (
		total   = 5000
		workers = 8
	)
	k := uiotest.New(t, uiotest.Config{RingSize: 4096, DataSize: 256 * 4096})
	r := k.Ring()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type job struct {
		tag int
		out bool
		n   int
	}
	jobs := make([]job, total)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range jobs {
		jobs[i] = job{tag: i, out: rng.IntN(2) == 0, n: rng.IntN(8*4096 + 1)}
	}

	// Device loop: fetch and hand out.
	work := make(chan *uio.Command, 64)
	loopErr := make(chan error, 1)
	go func() {
		defer close(work)
		for {
			if err := k.Wait(ctx); err != nil {
				loopErr <- err
				return
			}
			if err := r.Refresh(); err != nil {
				loopErr <- err
				return
			}
			for {
				c := uio.NewCommand()
				ok, err := r.Next(c)
				if err != nil {
					loopErr <- err
					return
				}
				if !ok {
					break
				}
				work <- c
			}
			r.Release()
			if err := r.Kick(); err != nil {
				loopErr <- err
				return
			}
		}
	}()

	// Workers: take a few commands, complete them in random order.
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			var held []*uio.Command
			for c := range work {
				held = append(held, c)
			drain:
				for len(held) < 4 {
					select {
					case c, ok := <-work:
						if !ok {
							break drain
						}
						held = append(held, c)
					default:
						break drain
					}
				}
				rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
				for _, c := range held {
					serveJob(c)
					if rng.IntN(4) == 0 {
						runtime.Gosched()
					}
					r.Complete(c)
					if err := r.Kick(); err != nil {
						t.Errorf("Kick: %v", err)
					}
				}
				held = held[:0]
			}
		}()
	}

	// Submitter.
	go func() {
		for _, j := range jobs {
			req := uiotest.Request{Tag: j.tag}
			blocks := uint16((j.n + 4095) / 4096)
			if j.out {
				req.CDB, req.DataOut = write10(uint32(j.tag), blocks), pattern(j.tag, j.n)
			} else {
				req.CDB, req.DataInLen = read10(uint32(j.tag), blocks), j.n
			}
			if _, err := k.SubmitWait(ctx, req); err != nil {
				t.Errorf("SubmitWait %d: %v", j.tag, err)
				return
			}
		}
	}()

	seen := make([]bool, total)
	for range total {
		var got uiotest.Completion
		select {
		case got = <-k.Completions():
		case err := <-loopErr:
			t.Fatalf("device loop: %v", err)
		case <-ctx.Done():
			t.Fatalf("%d completions missing: %v", total-countTrue(seen), ctx.Err())
		}
		tag := got.Tag.(int)
		j := jobs[tag]
		switch {
		case seen[tag]:
			t.Fatalf("tag %d completed twice", tag)
		case got.Status != statusGood:
			t.Fatalf("tag %d: status %#x sense %x", tag, got.Status, got.Sense)
		case !j.out && !bytes.Equal(got.DataIn, pattern(tag, j.n)):
			t.Fatalf("tag %d: Data-In differs", tag)
		}
		seen[tag] = true
	}
	cancel()
	wg.Wait()
	if n := k.Outstanding(); n != 0 || r.Outstanding() != 0 {
		t.Errorf("outstanding after all completions: kernel %d, ring %d", n, r.Outstanding())
	}
	st := k.Stats()
	t.Logf("%d commands, %d pads, %d notifications, %d doorbells", st.Submitted, st.Pads, st.Notifications, st.Doorbells)
}

// serveJob answers a command of TestOutOfOrderCompletion: a read gets
// the pattern of the tag in its LBA field, a write is checked against it.
func serveJob(c *uio.Command) {
	tag := int(binary.BigEndian.Uint32(c.CDB[2:6]))
	switch c.CDB[0] {
	case 0x28:
		fill(c.Iov, pattern(tag, c.DataLen()))
	case 0x2a:
		if !bytes.Equal(join(c.Iov), pattern(tag, c.DataLen())) {
			c.Status = statusCheckCondition
			c.Sense = []byte{0x70, 0, 0x0b, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x1d}
		}
	}
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// TestCompleteLater: responses kept by CompleteLater reach the ring at
// Flush, in one call for the batch, and the kernel sees them after Kick;
// a command completed later cannot be completed again.
func TestCompleteLater(t *testing.T) {
	k := uiotest.New(t, uiotest.Config{})
	r := k.Ring()
	var ids []uint16
	for i := range 3 {
		ids = append(ids, submit(t, k, uiotest.Request{CDB: read10(uint32(i), 1), DataInLen: 4096}))
	}
	cs := fetch(t, k, 3)
	for i, c := range cs {
		fill(c.Iov, pattern(i, 4096))
		c.Status = statusGood
		r.CompleteLater(c)
	}
	if err := r.Kick(); err != nil {
		t.Fatal(err)
	}
	noCompletion(t, k)
	if got := r.Outstanding(); got != 3 {
		t.Errorf("Outstanding %d before Flush, want 3", got)
	}
	r.Flush()
	r.Complete(cs[0]) // already answered: nothing
	if err := r.Kick(); err != nil {
		t.Fatal(err)
	}
	for i := range cs {
		if got := nextCompletion(t, k); got.ID != ids[i] || got.Status != statusGood {
			t.Fatalf("completion %d: %+v, want ID %d GOOD", i, got, ids[i])
		}
	}
	noCompletion(t, k)
	if got := r.Outstanding(); got != 0 {
		t.Errorf("Outstanding %d after Flush, want 0", got)
	}
}
