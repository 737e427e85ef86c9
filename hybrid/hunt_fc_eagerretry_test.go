package hybrid_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntPanickingEagerRefreshIsNotRetriedOnEveryHit: an eager refresh
// whose factory panics failed; as for a factory error
// (docs/eager-refresh.md: "the entry is kept as it was, minus its refresh
// point, so the next hits do not retry"), the following hits must not
// start a refresh each, calling a panicking factory on every hit.
func TestHuntPanickingEagerRefreshIsNotRetriedOnEveryHit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5}})
		fcWantGetOrSet(t, c, "k", fusionValue("a"), "a")
		time.Sleep(6 * time.Second)
		var calls atomic.Int64
		panicky := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			calls.Add(1)
			panic("sloths")
		}
		for range 5 {
			fcWantGetOrSet(t, c, "k", panicky, "a")
			synctest.Wait()
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("a panicking eager refresh was retried: %d factory calls for 5 hits, want 1", n)
		}
	})
}

// TestHuntNotFoundEagerRefreshIsNotRetriedOnEveryHit: the same for an
// eager refresh whose factory answers NotFound (not cached:
// NotFoundDuration 0): the following hits must not each call the source.
func TestHuntNotFoundEagerRefreshIsNotRetriedOnEveryHit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5}})
		fcWantGetOrSet(t, c, "k", fusionValue("a"), "a")
		time.Sleep(6 * time.Second)
		var calls atomic.Int64
		nf := func(_ context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			calls.Add(1)
			return fc.NotFound()
		}
		for range 5 {
			v, err := hybrid.GetOrSet(context.Background(), c, "k", nf)
			if err != nil || v != "a" {
				t.Fatalf("hit = %q, %v", v, err)
			}
			synctest.Wait()
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("%d factory calls for 5 hits after the refresh point, want 1", n)
		}
	})
}
