package bench

import (
	"context"
	"sync/atomic"
	"testing"
)

// hitRatioCapacity is the memory capacity of BenchmarkZipfHitRatio: 1/16
// of the key space, so that most keys do not fit and admission decides.
const hitRatioCapacity = numKeys / 16

// BenchmarkZipfHitRatio replays the keyspace's Zipf (s=1.1) stream through
// GetOrLoad on caches holding 1/16 of the keys, on one goroutine, and
// reports hit-% (100 x (1 - loader calls / operations)): the hit ratio
// under eviction. ristretto's GetOrLoad is Get, then the loader and Set
// (its buffers may drop the Set: that costs it hits, as in real use).
func BenchmarkZipfHitRatio(b *testing.B) {
	k := sharedKeyspace()
	for _, hc := range []struct {
		name  string
		build func(env) (contender, error)
	}{
		{"strata", func(e env) (contender, error) { return newStrataSized(e, hitRatioCapacity) }},
		{"ristretto", func(e env) (contender, error) { return newRistrettoSized(e, hitRatioCapacity) }},
		{"otter", func(e env) (contender, error) { return newOtterSized(e, hitRatioCapacity) }},
	} {
		b.Run("cache="+hc.name, func(b *testing.B) {
			var loads atomic.Int64
			load := func(_ context.Context, key string) (Value, error) {
				loads.Add(1)
				return k.values[0], nil
			}
			c := newContender(b, hc.build, env{load: load})
			ctx := context.Background()
			// A warm-up pass over a quarter of the stream, uncounted.
			for i := range streamLen / 4 {
				if _, err := c.GetOrLoad(ctx, k.keys[k.zipf[i]]); err != nil {
					b.Fatal(err)
				}
			}
			loads.Store(0)
			i := 0
			for b.Loop() {
				if _, err := c.GetOrLoad(ctx, k.keys[k.zipf[(streamLen/4+i)&(streamLen-1)]]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(100*(1-float64(loads.Load())/float64(i)), "hit-%")
		})
	}
}
