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
