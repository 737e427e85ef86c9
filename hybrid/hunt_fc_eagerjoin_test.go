package hybrid_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntEagerRefreshFailureJoinerWithoutFailSafe: an eager refresh is
// still running when the entry (written without fail-safe) expires; a
// GetOrSet then joins the refresh (docs/eager-refresh.md: "once the entry
// expires every GetOrSet of it joins that refresh and waits for it"). The
// refresh fails. The joiner must not get the expired value with a nil
// error: without fail-safe an expired entry is no fallback
// (docs/failsafe.md), and a factory error is returned.
func TestHuntEagerRefreshFailureJoinerWithoutFailSafe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: 2 * time.Second, EagerRefreshThreshold: 0.5,
		}})
		ctx := context.Background()
		if _, err := hybrid.GetOrSet(ctx, c, "k", fusionValue("v1")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // past the refresh point
		release := make(chan struct{})
		slowFail := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			<-release
			return "", errDB
		}
		if v, err := hybrid.GetOrSet(ctx, c, "k", slowFail); err != nil || v != "v1" {
			t.Fatalf("hit at the refresh point = %q, %v", v, err)
		}
		time.Sleep(time.Second) // the entry has expired; the refresh still runs
		type res struct {
			v   string
			err error
		}
		got := make(chan res, 1)
		go func() {
			v, err := hybrid.GetOrSet(ctx, c, "k", fusionFail[string](errDB))
			got <- res{v, err}
		}()
		synctest.Wait() // the caller waits on the refresh
		close(release)
		r := <-got
		if r.err == nil && r.v == "v1" {
			t.Fatalf("GetOrSet after expiry, fail-safe off, the refresh and the factory failing = %q, nil: the expired value served as a fallback", r.v)
		}
	})
}
