package bench

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// l2Keys is the key space of the L2 hit benchmark: small, so that filling
// Redis one SET at a time through each peer's API stays quick; the cost of a
// hit does not depend on it.
const l2Keys = 1 << 12

// l2Samples is the size of the ring of per-operation durations from which
// p50 and p99 are taken (the last l2Samples operations).
const l2Samples = 1 << 18

// l2Contenders read from Redis on every Get: Strata and go-redis/cache skip
// their memory tier, eko's chain has a memory layer that never hits, and the
// raw go-redis GET (with and without the msgpack decode) is the floor.
var l2Contenders = []struct {
	name  string
	build func(env) (contender, error)
}{
	{"strata", newStrataL2},
	{"redis-get", newRedisGet},
	{"redis-get-decode", newRedisGetDecode},
	{"go-redis-cache", newGoRedisCacheSkipLocal},
	{"eko-chain", newEkoChainColdL1},
}

// BenchmarkL2Hit measures a hit in Redis with L1 skipped, on one goroutine,
// over the uniform stream of l2Keys keys, and reports p50-ns and p99-ns.
func BenchmarkL2Hit(b *testing.B) {
	k := sharedKeyspace()
	rdb := redisFor(b)
	for _, lc := range l2Contenders {
		b.Run("cache="+lc.name, func(b *testing.B) {
			// Keys of their own for every run (-count runs this function
			// again on the same Redis) and on a shared REDIS_ADDR.
			run := time.Now().UnixNano()
			c := newContender(b, lc.build, env{rdb: rdb, load: notFound})
			keys := make([]string, l2Keys)
			for i := range keys {
				keys[i] = fmt.Sprintf("bench:l2:%d:%s:%06d", run, lc.name, i)
			}
			fill(b, c, keys, k.values[:l2Keys])
			ctx := context.Background()
			stream := k.uniform
			durs := make([]time.Duration, l2Samples)
			misses := 0
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				key := keys[stream[i&(streamLen-1)]&(l2Keys-1)]
				t0 := time.Now()
				_, ok := c.Get(ctx, key)
				durs[i&(l2Samples-1)] = time.Since(t0)
				if !ok {
					misses++
				}
				i++
			}
			if misses > 0 {
				b.Fatalf("%d misses in a hit benchmark", misses)
			}
			reportPercentiles(b, durs[:min(i, l2Samples)])
		})
	}
}

// reportPercentiles reports the p50 and p99 of durs (sorted in place) as
// p50-ns and p99-ns.
func reportPercentiles(b *testing.B, durs []time.Duration) {
	if len(durs) == 0 {
		return
	}
	slices.Sort(durs)
	b.ReportMetric(float64(durs[len(durs)*50/100]), "p50-ns")
	b.ReportMetric(float64(durs[len(durs)*99/100]), "p99-ns")
}
