package bench

import (
	"context"
	"sync/atomic"
	"testing"
)

// l1Contender is a cache and the read path that a hit benchmark measures:
// a plain lookup, or the read-through (GetOrLoad) whose hit path it is.
type l1Contender struct {
	name  string
	build func(env) (contender, error)
	load  bool
}

// l1Contenders are measured on L1 hits. The Redis-backed ones (eko-chain,
// go-redis-cache) are filled through Redis and read from their memory tier.
var l1Contenders = []l1Contender{
	{"strata-tryget", newStrata, false},
	{"strata-getorset", newStrata, true},
	{"ristretto", newRistretto, false},
	{"otter", newOtter, false},
	{"otter-loader", newOtter, true},
	{"sturdyc", newSturdyc, false},
	{"sturdyc-getorfetch", newSturdyc, true},
	{"eko-loadable", newEkoLoadable, true},
	{"eko-chain", newEkoChain, false},
	{"go-redis-cache", newGoRedisCache, false},
	{"go-redis-cache-once", newGoRedisCache, true},
}

// BenchmarkL1Hit measures a memory-tier hit on one goroutine, over the
// uniform stream of the 2^16 keys, every key present.
func BenchmarkL1Hit(b *testing.B) {
	k := sharedKeyspace()
	rdb := redisFor(b)
	for _, lc := range l1Contenders {
		b.Run("cache="+lc.name, func(b *testing.B) {
			c := newContender(b, lc.build, env{rdb: rdb, load: notFound})
			fill(b, c, k.keys, k.values)
			ctx := context.Background()
			stream := k.uniform
			misses := 0
			i := 0
			b.ReportAllocs()
			if lc.load {
				for b.Loop() {
					if _, err := c.GetOrLoad(ctx, k.keys[stream[i&(streamLen-1)]]); err != nil {
						misses++
					}
					i++
				}
			} else {
				for b.Loop() {
					if _, ok := c.Get(ctx, k.keys[stream[i&(streamLen-1)]]); !ok {
						misses++
					}
					i++
				}
			}
			if misses > 0 {
				b.Fatalf("%d misses in a hit benchmark", misses)
			}
		})
	}
}

// BenchmarkL1HitParallel measures memory-tier hits under b.RunParallel
// (GOMAXPROCS goroutines), over the Zipf (s=1.1) and the uniform streams.
// Each goroutine starts at its own offset in the stream.
func BenchmarkL1HitParallel(b *testing.B) {
	k := sharedKeyspace()
	rdb := redisFor(b)
	for _, dist := range []string{"zipf", "uniform"} {
		stream := k.stream(dist)
		for _, lc := range l1Contenders {
			b.Run("dist="+dist+"/cache="+lc.name, func(b *testing.B) {
				c := newContender(b, lc.build, env{rdb: rdb, load: notFound})
				fill(b, c, k.keys, k.values)
				var misses, workers atomic.Int64
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					i := int(workers.Add(1)) * (streamLen / 16)
					n := 0
					if lc.load {
						for pb.Next() {
							if _, err := c.GetOrLoad(ctx, k.keys[stream[i&(streamLen-1)]]); err != nil {
								n++
							}
							i++
						}
					} else {
						for pb.Next() {
							if _, ok := c.Get(ctx, k.keys[stream[i&(streamLen-1)]]); !ok {
								n++
							}
							i++
						}
					}
					misses.Add(int64(n))
				})
				if n := misses.Load(); n > 0 {
					b.Fatalf("%d misses in a hit benchmark", n)
				}
			})
		}
	}
}
