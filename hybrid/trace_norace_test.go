//go:build !race

package hybrid_test

import (
	"context"
	"testing"

	"github.com/strata-cache/strata/hybrid"
)

// TestTracerHitAllocatesNothing: a tracer costs a memory hit nothing (the
// race detector allocates on its own: not under -race).
func TestTracerHitAllocatesNothing(t *testing.T) {
	var tt testTracer
	c := newCache(t, hybrid.Options{Tracer: &tt})
	ctx := context.Background()
	hybrid.Set(ctx, c, "k", 1)
	tt.take(t)
	n := testing.AllocsPerRun(1000, func() {
		if _, ok, _ := hybrid.TryGet[int](ctx, c, "k"); !ok {
			t.Fatal("miss")
		}
		hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[int]) (int, error) { return 0, nil })
	})
	if n != 0 {
		t.Fatalf("a memory hit allocates %v times with a tracer", n)
	}
	wantSpans(t, "hits", tt.take(t))
}
