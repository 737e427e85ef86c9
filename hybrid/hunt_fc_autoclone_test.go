package hybrid_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntAutoCloneFallbackIsACopy: with AutoClone, the stale value
// served by fail-safe (and then by the throttled copy) is a copy per
// reader: a reader that changes it changes nobody else's, nor the
// factory's fc.Stale().
func TestHuntAutoCloneFallbackIsACopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, AutoClone: true, FailSafeThrottleDuration: time.Second,
		}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", []int{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		mutateStale := func(_ context.Context, fc *hybrid.FactoryContext[[]int]) ([]int, error) {
			if s, ok := fc.Stale(); ok {
				s[0] = 100
			}
			return nil, errDB
		}
		v, err := hybrid.GetOrSet(ctx, c, "k", mutateStale)
		if err != nil || len(v) != 3 || v[0] != 1 {
			t.Fatalf("fallback = %v, %v; want [1 2 3] (the factory changed its own copy)", v, err)
		}
		v[1] = 200
		w, err := hybrid.GetOrSet(ctx, c, "k", fusionFail[[]int](errDB)) // the throttled copy
		if err != nil || len(w) != 3 || w[0] != 1 || w[1] != 2 {
			t.Fatalf("second reader = %v, %v; want [1 2 3]", w, err)
		}
		time.Sleep(2 * time.Second) // the throttle ended: stale again
		x, _ := mustGet[[]int](t, c, "k", fcAllowStale)
		if len(x) != 3 || x[0] != 1 || x[1] != 2 {
			t.Fatalf("stale read = %v; want [1 2 3]", x)
		}
	})
}

// TestHuntAutoCloneSharedLoadCopies: callers of one shared load each get
// their own copy with AutoClone (docs/getorset.md, "the callers of one
// shared load included"), also when the load ends in a fail-safe
// fallback.
func TestHuntAutoCloneSharedLoadCopies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, AutoClone: true,
		}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", map[string]int{"a": 1}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		release := make(chan struct{})
		slowFail := func(context.Context, *hybrid.FactoryContext[map[string]int]) (map[string]int, error) {
			<-release
			return nil, errDB
		}
		got := make(chan map[string]int, 4)
		for range 4 {
			go func() {
				v, err := hybrid.GetOrSet(ctx, c, "k", slowFail)
				if err != nil {
					t.Errorf("GetOrSet: %v", err)
				}
				got <- v
			}()
		}
		synctest.Wait()
		close(release)
		var maps []map[string]int
		for range 4 {
			maps = append(maps, <-got)
		}
		maps[0]["a"] = 99
		for i, m := range maps[1:] {
			if m["a"] != 1 {
				t.Fatalf("caller %d sees %v after caller 0 changed its copy", i+1, m)
			}
		}
	})
}
