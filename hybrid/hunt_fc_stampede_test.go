package hybrid_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntStampedeOnFailingSourceCallsItOnce: 20 callers of an expired
// fail-safe key while the source is down: one factory call, every caller
// gets the stale value with a nil error, and the throttle then answers
// without calling the source.
func TestHuntStampedeOnFailingSourceCallsItOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Second, FailSafe: true}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		release := make(chan struct{})
		var calls atomic.Int64
		slowFail := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			calls.Add(1)
			<-release
			return "", errDB
		}
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if v, err := hybrid.GetOrSet(ctx, c, "k", slowFail); err != nil || v != "old" {
					t.Errorf("GetOrSet = %q, %v; want the stale value", v, err)
				}
			})
		}
		synctest.Wait()
		close(release)
		wg.Wait()
		fcWantGetOrSet(t, c, "k", slowFail, "old") // throttled: a hit
		if n := calls.Load(); n != 1 {
			t.Fatalf("factory calls = %d, want 1", n)
		}
	})
}

// TestHuntLeaderCancelledJoinersSoftTimeout: the caller that started a
// slow load gives up (its ctx ends); the callers that joined it with a
// soft timeout still get the stale value at their soft timeout, and the
// factory, completing in the background, updates the cache.
func TestHuntLeaderCancelledJoinersSoftTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FactorySoftTimeout: 100 * time.Millisecond,
		}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		release := make(chan struct{})
		slow := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			<-release
			return "new", nil
		}
		lctx, cancel := context.WithCancel(ctx)
		leader := make(chan error, 1)
		go func() {
			_, err := hybrid.GetOrSet(lctx, c, "k", slow)
			leader <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-leader; !errors.Is(err, context.Canceled) {
			t.Fatalf("leader: %v", err)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				start := time.Now()
				v, err := hybrid.GetOrSet(ctx, c, "k", slow)
				if err != nil || v != "old" {
					t.Errorf("joiner = %q, %v; want the stale value", v, err)
				}
				if d := time.Since(start); d > 100*time.Millisecond {
					t.Errorf("joiner waited %v, want at most its soft timeout", d)
				}
			})
		}
		wg.Wait()
		close(release)
		synctest.Wait()
		fcWantGet(t, c, "k", "new")
	})
}
