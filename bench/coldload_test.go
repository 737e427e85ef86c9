package bench

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
)

// BenchmarkColdLoad measures a GetOrSet of a key no tier holds, on a cache
// as a service builds it (NewProvider on one client: the Redis L2 and the
// Redis backplane, ProductionDefaults, BackgroundL2Operations off so that
// the write is part of the operation): a memory miss, a GET that misses,
// the factory, and the newest-wins write with its announcement. With
// factory timeouts (ProductionDefaults has them) the load runs detached
// from the caller, on another goroutine. goroutines callers at once; it
// reports cpu-ns/op (the process's CPU: on two shared cores steadier than
// the time).
func BenchmarkColdLoad(b *testing.B) {
	rdb := redisFor(b)
	run := time.Now().UnixNano()
	var calls atomic.Int64 // of the function below: each gets keys of its own
	for _, g := range []int{1, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{Client: rdb}, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			closed := false
			defer func() {
				if !closed {
					p.Close()
				}
			}()
			name := fmt.Sprintf("cold-%d-%d", run, calls.Add(1))
			c, err := p.Register(name, func(s *strata.CacheSettings) {
				s.Entry.BackgroundL2Operations = false
				s.WaitForInitialBackplaneSubscribe = 5 * time.Second
			})
			if err != nil {
				b.Fatal(err)
			}
			var loads atomic.Int64
			load := func(_ context.Context, fc *hybrid.FactoryContext[Value]) (Value, error) {
				loads.Add(1)
				return Value{ID: 1, Title: fc.Key()}, nil
			}
			var next atomic.Int64
			ctx := context.Background()
			b.SetParallelism(max(1, g/runtime.GOMAXPROCS(0)))
			stop := cpuMeter(b)
			b.ResetTimer()
			if g == 1 {
				for b.Loop() {
					if _, err := hybrid.GetOrSet(ctx, c, fmt.Sprintf("k%d", next.Add(1)), load); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := hybrid.GetOrSet(ctx, c, fmt.Sprintf("k%d", next.Add(1)), load); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			stop()
			p.Close() // waits for loads that outlived a factory timeout
			closed = true
			if n := loads.Load(); n < int64(b.N) {
				b.Fatalf("%d loads for %d cold keys", n, b.N)
			}
		})
	}
}
