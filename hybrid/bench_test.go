package hybrid_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/strata-cache/strata/hybrid"
)

// BenchmarkHitTags compares an L1 hit on an entry with three tags (some of
// them invalidated before the entry was written) with one without tags.
//
//	go test -run '^$' -bench HitTags -count 8 ./hybrid | benchstat -
func BenchmarkHitTags(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		tags []string
	}{{"tags=0", nil}, {"tags=3", []string{"a", "b", "c"}}} {
		b.Run(tc.name, func(b *testing.B) {
			c, _ := hybrid.New(hybrid.Options{})
			defer c.Close()
			c.RemoveByTag(ctx, "a", "b") // invalidations exist, older than the entries
			keys := make([]string, 1024)
			for i := range keys {
				keys[i] = fmt.Sprint("k", i)
				hybrid.Set(ctx, c, keys[i], i, hybrid.WithTags(tc.tags...))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok, _ := hybrid.TryGet[int](ctx, c, keys[i&1023]); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
	}
}

// BenchmarkWritePath measures the memory-only write and cold-load paths:
// Set of a new key, and a GetOrSet of a key never seen (the load, the
// factory, the store). Each iteration uses a new key.
//
//	go test -run '^$' -bench WritePath -count 6 ./hybrid | benchstat -
func BenchmarkWritePath(b *testing.B) {
	ctx := context.Background()
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	factory := func(context.Context, *hybrid.FactoryContext[int]) (int, error) { return 1, nil }
	// Each iteration writes a key never seen; a fresh cache every 64k keys.
	newKeys := func(b *testing.B, op func(c *hybrid.Cache, key string, i int)) {
		b.ReportAllocs()
		var c *hybrid.Cache
		i := 0
		for b.Loop() {
			if i%len(keys) == 0 {
				b.StopTimer()
				c = newBenchCache(b)
				b.StartTimer()
			}
			op(c, keys[i%len(keys)], i)
			i++
		}
	}
	b.Run("op=set-new-key", func(b *testing.B) {
		newKeys(b, func(c *hybrid.Cache, key string, i int) { hybrid.Set(ctx, c, key, i) })
	})
	b.Run("op=cold-getorset", func(b *testing.B) {
		newKeys(b, func(c *hybrid.Cache, key string, i int) { hybrid.GetOrSet(ctx, c, key, factory) })
	})
}

func newBenchCache(b *testing.B) *hybrid.Cache {
	c, err := hybrid.New(hybrid.Options{L1MaxEntries: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkReadYourWritesFull writes new keys into a full memory tier and
// reads each back at once: the share that reads its own write (the rest
// was refused or evicted by the tier's admission policy) is reported as
// ryw-%.
//
//	go test -run '^$' -bench ReadYourWritesFull -benchtime 20000x ./hybrid
func BenchmarkReadYourWritesFull(b *testing.B) {
	ctx := context.Background()
	c, err := hybrid.New(hybrid.Options{L1MaxEntries: 1000})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for i := range 5000 { // fill it, with some history for the admission policy
		hybrid.Set(ctx, c, fmt.Sprint("warm", i%1000), i)
		hybrid.TryGet[int](ctx, c, fmt.Sprint("warm", i%1000))
	}
	hits := 0
	i := 0
	for b.Loop() {
		k := fmt.Sprint("new", i)
		hybrid.Set(ctx, c, k, i)
		if v, ok, _ := hybrid.TryGet[int](ctx, c, k); ok && v == i {
			hits++
		}
		i++
	}
	b.ReportMetric(100*float64(hits)/float64(i), "ryw-%")
}
