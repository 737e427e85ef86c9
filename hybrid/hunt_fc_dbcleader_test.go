package hybrid_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntDisableBackgroundCompletionLeaderGetsStale: fail-safe on, a
// stale value, a soft timeout and DisableBackgroundCompletion, a factory
// that honours its context (cancelled at the timeout). The caller must get
// the stale value at the soft timeout, every time: the factory's
// cancellation at the same instant must not turn into ErrFactoryTimeout.
func TestHuntDisableBackgroundCompletionLeaderGetsStale(t *testing.T) {
	for i := range 30 {
		synctest.Test(t, func(t *testing.T) {
			c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
				Duration: time.Second, FailSafe: true, FactorySoftTimeout: 100 * time.Millisecond,
				DisableBackgroundCompletion: true,
			}})
			ctx := context.Background()
			if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			honours := func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
				<-ctx.Done()
				return "", ctx.Err()
			}
			if v, err := hybrid.GetOrSet(ctx, c, "k", honours); err != nil || v != "old" {
				t.Fatalf("run %d: GetOrSet = %q, %v; want the stale value", i, v, err)
			}
		})
	}
}
