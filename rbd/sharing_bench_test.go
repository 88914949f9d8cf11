//go:build !nautilus

package rbd

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gotcmu/gotcmu/handler"
)

// BenchmarkImagesPerClient measures what sharing RADOS clients costs: 8
// images, each driven with 4 KiB random IO at queue depth 16, served by
// one client per image or by clients shared by 2, 4 or 8 images. One op is
// one IO; compare ns/op across the sub-benchmarks. This is the measurement
// behind DefaultImagesPerClient (SPDK #2580 found sharing much slower).
func BenchmarkImagesPerClient(b *testing.B) {
	needCeph(b)
	const (
		images = 8
		qd     = 16
		size   = 64 << 20
	)
	names := make([]string, images)
	for i := range names {
		names[i] = newImage(b, "rbd", size, 22)
	}
	for _, op := range []struct {
		name string
		op   handler.Op
	}{{"write4k", handler.OpWrite}, {"read4k", handler.OpRead}} {
		for _, per := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("%s/per_client_%d", op.name, per), func(b *testing.B) {
				h := Handler(Options{ImagesPerClient: per})
				ims := make([]*Image, images)
				for i, n := range names {
					ims[i] = openDevice(b, h, "rbd/"+n, size)
				}
				var left atomic.Int64
				left.Store(int64(b.N))
				b.SetBytes(4096)
				b.ResetTimer()
				var wg sync.WaitGroup
				for i := 0; i < images*qd; i++ {
					im := ims[i%images]
					buf := mmapBuf(b, 4096)
					wg.Add(1)
					go func() {
						defer wg.Done()
						rng := rand.New(rand.NewPCG(uint64(i), 7))
						for left.Add(-1) >= 0 {
							off := int64(rng.IntN(size/4096)) * 4096
							if _, err := do(im, op.op, off, 4096, false, buf); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				for _, im := range ims {
					im.Close()
				}
			})
		}
	}
}
