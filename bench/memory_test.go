package bench

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"unsafe"
)

// memContenders are the memory-only caches measured for bytes per entry.
var memContenders = []struct {
	name  string
	build func(n int) (contender, error)
}{
	{"strata", func(n int) (contender, error) { return newStrataSized(env{load: notFound}, 2*int64(n)) }},
	{"ristretto", func(n int) (contender, error) { return newRistrettoSized(env{load: notFound}, 2*int64(n)) }},
	{"otter", func(n int) (contender, error) { return newOtterSized(env{load: notFound}, 2*n) }},
}

// BenchmarkMemoryPerEntry fills a cache of capacity 2n with n entries and
// reports the live heap it adds, measured after runtime.GC() before and after
// the fill, per entry: B/entry, and overhead-B/entry without the Value struct
// itself (whose strings are shared, so not counted). The fixed cost of an
// empty cache (ristretto's counters, shards) is included, spread over the n
// entries. The measurement is made once per run, before the timed loop; the
// loop then reads the n keys (uniformly), so ns/op is the cost of a hit at
// that size.
func BenchmarkMemoryPerEntry(b *testing.B) {
	k := sharedKeyspace()
	for _, n := range []int{10_000, 100_000} {
		keys := make([]string, n)
		values := make([]Value, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("bench:mem:%08d", i)
			values[i] = newValue(i)
		}
		for _, mc := range memContenders {
			b.Run(fmt.Sprintf("n=%dk/cache=%s", n/1000, mc.name), func(b *testing.B) {
				c, perEntry := heapPerEntry(b, mc.build, keys, values)
				ctx := context.Background()
				stream := k.uniform
				misses := 0
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					if _, ok := c.Get(ctx, keys[int(stream[i&(streamLen-1)])%n]); !ok {
						misses++
					}
					i++
				}
				if misses > 0 {
					b.Fatalf("%d misses after the fill", misses)
				}
				// After the loop: b.Loop's start deletes reported metrics.
				b.ReportMetric(perEntry, "B/entry")
				b.ReportMetric(perEntry-float64(unsafe.Sizeof(Value{})), "overhead-B/entry")
			})
		}
	}
}

// heapPerEntry builds a cache (closed at b's cleanup), fills it with keys
// and values, and returns it with the live heap it holds divided by
// len(keys).
func heapPerEntry(b *testing.B, build func(int) (contender, error), keys []string, values []Value) (contender, float64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := build(len(keys))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	fill(b, c, keys, values)
	runtime.GC()
	runtime.ReadMemStats(&after)
	return c, (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(len(keys))
}
