package hybrid_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// With DisableBackgroundCompletion, a GetOrSet that joined a load and is
// still waiting when the load gives up (its callers' timeout came first)
// answers as it would at its own timeout: with the fail-safe fallback. The
// single-key load does so; a batch load leading the key must too.
func TestHuntBatchDBCJoinerGetsFallback(t *testing.T) {
	for _, tc := range []struct{ leader, timeouts string }{
		{"single", "soft"}, {"batch", "soft"}, {"single", "hard-only"}, {"batch", "hard-only"},
	} {
		leader := tc.leader
		soft := 100 * time.Millisecond
		if tc.timeouts == "hard-only" {
			soft = 0
		}
		t.Run(leader+"/"+tc.timeouts, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
					Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: time.Minute,
					FactorySoftTimeout: soft, FactoryHardTimeout: time.Second,
					DisableBackgroundCompletion: true}})
				ctx := context.Background()
				if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Second)
				var calls atomic.Int64
				slow := func(ctx context.Context) error {
					calls.Add(1)
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(5 * time.Second):
						return nil
					}
				}
				leaderDone := make(chan string, 1)
				go func() {
					if leader == "single" {
						v, err := hybrid.GetOrSet(ctx, c, "k", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
							return "new", slow(ctx)
						})
						if err != nil {
							v = "error: " + err.Error()
						}
						leaderDone <- v
						return
					}
					res, err := hybrid.GetOrSetMany(ctx, c, []string{"k"}, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
						return map[string]string{"k": "new"}, slow(ctx)
					})
					switch {
					case err != nil:
						leaderDone <- "error: " + err.Error()
					case res[0].Err != nil:
						leaderDone <- "error: " + res[0].Err.Error()
					default:
						leaderDone <- res[0].Value
					}
				}()
				time.Sleep(50 * time.Millisecond) // the leader's load runs, nothing has timed out yet
				v, err := hybrid.GetOrSet(ctx, c, "k", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
					calls.Add(100)
					return "joiner's", nil
				})
				if got := <-leaderDone; got != "old" {
					t.Fatalf("leader: %q, want the stale value at its timeout", got)
				}
				if err != nil || v != "old" {
					t.Fatalf("joiner: %q, %v; want the stale value \"old\" (its fallback), as a joiner of a single-key load gets", v, err)
				}
				if n := calls.Load(); n != 1 {
					t.Fatalf("factory calls: %d, want 1 (the joiner joined)", n)
				}
			})
		})
	}
}
