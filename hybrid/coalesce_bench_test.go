package hybrid_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// BenchmarkL2ReadFar is reads of the distributed tier (memory skipped) from
// g goroutines over a Redis 0.5 ms away each way (the TCP proxy's latency:
// a round trip of ~1 ms), with coalescing on and off: what the wait for the
// read in flight costs a far Redis under moderate load (docs/l2.md).
//
//	go test -run '^$' -bench L2ReadFar -benchtime 2000x -count 4 ./hybrid | benchstat -col /coalesce -
func BenchmarkL2ReadFar(b *testing.B) {
	srv := redistest.Start(b)
	proxy := srv.Proxy(b)
	proxy.SetLatency(500 * time.Microsecond)
	const keys = 64
	for _, g := range []int{1, 4, 16} {
		for _, on := range []bool{true, false} {
			b.Run(fmt.Sprintf("goroutines=%d/coalesce=%v", g, on), func(b *testing.B) {
				c, err := hybrid.New(hybrid.Options{Name: "far", L2: hybrid.NewRedisL2(srv.FastClient(b, proxy.Addr())),
					DisableL2Coalescing: !on, Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Hour}})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				ctx := context.Background()
				for i := range keys {
					if err := hybrid.Set(ctx, c, fmt.Sprint("k", i), i); err != nil {
						b.Fatal(err)
					}
				}
				skip := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true })
				durs := make([][]time.Duration, g)
				var wg sync.WaitGroup
				per := b.N / g
				b.ResetTimer()
				for w := range g {
					wg.Go(func() {
						d := make([]time.Duration, 0, per)
						for i := range per {
							t0 := time.Now()
							if _, ok, err := hybrid.TryGet[int](ctx, c, fmt.Sprint("k", (w*per+i)%keys), skip); err != nil || !ok {
								b.Errorf("read: %v, %v", ok, err)
								return
							}
							d = append(d, time.Since(t0))
						}
						durs[w] = d
					})
				}
				wg.Wait()
				b.StopTimer()
				all := slices.Concat(durs...)
				slices.Sort(all)
				if len(all) > 0 {
					b.ReportMetric(float64(all[len(all)/2].Nanoseconds()), "p50-ns")
					b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds()), "p99-ns")
				}
			})
		}
	}
}
