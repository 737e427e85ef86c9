package hybrid

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkHitPathEvents is the strata case of BenchmarkHitPath with a Hit
// callback that counts hits (an atomic add): what a hook costs on a hit,
// to compare with BenchmarkHitPath (no Events).
//
//	go test -run '^$' -bench 'HitPath' -count 8 ./hybrid | benchstat -
func BenchmarkHitPathEvents(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 16} {
		b.Run(fmt.Sprint("keys=", n), func(b *testing.B) {
			keys, idx := hitKeys(n)
			ctx := context.Background()
			var hits atomic.Int64
			c, _ := New(Options{L1MaxEntries: 1 << 17, Entry: EntryOptions{Duration: 1 << 62},
				Events: &Events{Hit: func(HitEvent) { hits.Add(1) }}})
			defer c.Close()
			for i, k := range keys {
				Set(ctx, c, k, benchValue{ID: int64(i)})
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok, _ := TryGet[benchValue](ctx, c, keys[idx[i&(1<<20-1)]]); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
	}
}
