package hybrid_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntDisableBackgroundCompletionJoinerGetsStale: fail-safe on, a
// stale value in memory, a soft timeout and DisableBackgroundCompletion.
// The leader gets the stale value at its soft timeout and the factory is
// cancelled. A caller that joined the load 50ms later waits with its own
// timers (docs/timeouts.md: "Each waiting caller has its own timers") and
// also has fail-safe and a stale value: it must get the stale value (nil
// error), not ErrFactoryTimeout.
func TestHuntDisableBackgroundCompletionJoinerGetsStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FactorySoftTimeout: 100 * time.Millisecond,
			DisableBackgroundCompletion: true,
		}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // stale
		honours := func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
			<-ctx.Done() // a slow source that honours its context
			return "", ctx.Err()
		}
		type res struct {
			v   string
			err error
		}
		leader, joiner := make(chan res, 1), make(chan res, 1)
		go func() {
			v, err := hybrid.GetOrSet(ctx, c, "k", honours)
			leader <- res{v, err}
		}()
		time.Sleep(50 * time.Millisecond)
		go func() {
			v, err := hybrid.GetOrSet(ctx, c, "k", honours)
			joiner <- res{v, err}
		}()
		if r := <-leader; r.err != nil || r.v != "old" {
			t.Fatalf("leader = %q, %v; want the stale value at its soft timeout", r.v, r.err)
		}
		if r := <-joiner; r.err != nil || r.v != "old" {
			t.Fatalf("joiner = %q, %v; want the stale value (fail-safe, a stale value in memory)", r.v, r.err)
		}
	})
}
