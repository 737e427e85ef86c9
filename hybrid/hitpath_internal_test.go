package hybrid

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/ristretto/v2"
)

type benchValue struct {
	ID           int64
	Owner, Title string
	Score        float64
	Flags        uint32
	Version      int32
	Updated      int64
}

func hitKeys(n int) ([]string, []int) {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%08d", i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	idx := make([]int, 1<<20)
	for i := range idx {
		idx[i] = r.IntN(len(keys))
	}
	return keys, idx
}

// BenchmarkHitPath is the L1 hit of TryGet against a raw ristretto Get of
// the same values over the same uniform key stream: 1024 keys (in CPU
// caches: the CPU cost of the path) and 65536 (bound by memory latency).
//
//	go test -run '^$' -bench HitPath -count 8 ./hybrid | benchstat -
func BenchmarkHitPath(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 14, 1 << 16} {
		b.Run(fmt.Sprint("keys=", n), func(b *testing.B) { benchHitPath(b, n) })
	}
}

func benchHitPath(b *testing.B, n int) {
	keys, idx := hitKeys(n)
	ctx := context.Background()
	b.Run("impl=ristretto", benchRistretto(keys, idx, func(i int) benchValue { return benchValue{ID: int64(i)} }, nil))
	// The same with a pointer per value, read through (as Strata's entry
	// is): the cost of one more dependent load once the keys leave the
	// CPU's caches.
	b.Run("impl=ristretto-ptr", benchRistretto(keys, idx, func(i int) *benchValue { return &benchValue{ID: int64(i)} },
		func(v *benchValue) int64 { return v.ID }))
	strata := func(o Options) func(b *testing.B) {
		return func(b *testing.B) {
			c, _ := New(o)
			defer c.Close()
			for i, k := range keys {
				Set(ctx, c, k, benchValue{ID: int64(i)})
			}
			// ristretto may drop an insertion when its buffers are busy
			// (and the window of recent writes keeps only the last ones):
			// set again until every key is in ristretto itself.
			for i, k := range keys {
				for tries := 0; ; tries++ {
					c.l1.rc.Wait()
					if _, ok := c.l1.rc.Get(k); ok {
						break
					}
					if tries == 100 {
						b.Fatalf("key %q never admitted", k)
					}
					Set(ctx, c, k, benchValue{ID: int64(i)})
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok, _ := TryGet[benchValue](ctx, c, keys[idx[i&(1<<20-1)]]); !ok {
					b.Fatal("miss")
				}
				i++
			}
		}
	}
	o := Options{L1MaxEntries: 1 << 17, Entry: EntryOptions{Duration: 1 << 62}}
	b.Run("impl=strata", strata(o))
	// The system clock read on every hit instead of the hit clock.
	pc := o
	pc.PreciseHitClock = true
	b.Run("impl=strata-precise", strata(pc))
	// What a Hit hook costs on a hit: one that counts (an atomic add).
	var hits atomic.Int64
	o.Events = &Events{Hit: func(HitEvent) { hits.Add(1) }}
	b.Run("impl=strata-events", strata(o))
}

// benchRistretto is the hit benchmark of raw ristretto holding keys[i] ->
// mk(i), each hit read through read (nil: not read).
func benchRistretto[V any](keys []string, idx []int, mk func(int) V, read func(V) int64) func(*testing.B) {
	return func(b *testing.B) {
		rc, _ := ristretto.NewCache(&ristretto.Config[string, V]{NumCounters: 1 << 21, MaxCost: 1 << 17, BufferItems: 64, IgnoreInternalCost: true})
		defer rc.Close()
		for i, k := range keys {
			for !rc.Set(k, mk(i), 1) {
				rc.Wait()
			}
			if i%1024 == 0 {
				rc.Wait()
			}
		}
		rc.Wait()
		b.ReportAllocs()
		i := 0
		var sum int64
		for b.Loop() {
			v, ok := rc.Get(keys[idx[i&(1<<20-1)]])
			if !ok {
				b.Fatal("miss")
			}
			if read != nil {
				sum += read(v)
			}
			i++
		}
		_ = sum
	}
}

// BenchmarkHitPathParallel is BenchmarkHitPath's 1024-key case from
// GOMAXPROCS goroutines at once: where a shared counter written on every
// hit would bounce its cache line between cores (Stats' L1 hit counter is
// striped for that reason).
//
//	go test -run '^$' -bench HitPathParallel -count 8 ./hybrid | benchstat -
func BenchmarkHitPathParallel(b *testing.B) {
	keys, idx := hitKeys(1 << 10)
	ctx := context.Background()
	c, _ := New(Options{L1MaxEntries: 1 << 17, Entry: EntryOptions{Duration: 1 << 62}})
	defer c.Close()
	for i, k := range keys {
		Set(ctx, c, k, benchValue{ID: int64(i)})
	}
	var seed atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(1) * 7919)
		for pb.Next() {
			if _, ok, _ := TryGet[benchValue](ctx, c, keys[idx[i&(1<<20-1)]]); !ok {
				b.Error("miss")
				return
			}
			i++
		}
	})
}

// BenchmarkHitCounter is the L1 hit counter alone, from GOMAXPROCS
// goroutines: the striped hotCounter against one shared atomic.
func BenchmarkHitCounter(b *testing.B) {
	b.Run("impl=striped", func(b *testing.B) {
		var h hotCounter
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.add()
			}
		})
		if h.load() != uint64(b.N) {
			b.Fatalf("counted %d of %d", h.load(), b.N)
		}
	})
	b.Run("impl=atomic", func(b *testing.B) {
		var n atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n.Add(1)
			}
		})
	})
}
