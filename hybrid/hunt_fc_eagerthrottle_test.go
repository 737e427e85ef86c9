package hybrid_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntFailedEagerRefreshKeepsThrottle: an eager refresh hangs; the
// entry (fail-safe) expires; a caller with a soft timeout joins and gets the
// stale value at its soft timeout, which starts the fail-safe throttle
// (docs/timeouts.md: "serve the stale value, nil error, throttled as in
// fail-safe"). The refresh then fails. Its failure must not end the
// throttle: within the throttle window the failing source is not called
// again (docs/failsafe.md: "a failing database is called at most once per
// key per throttle window").
func TestHuntFailedEagerRefreshKeepsThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: 2 * time.Second, EagerRefreshThreshold: 0.5,
			FailSafe: true, FailSafeThrottleDuration: 30 * time.Second,
			FactorySoftTimeout: 100 * time.Millisecond,
		}})
		ctx := context.Background()
		fcWantGetOrSet(t, c, "k", fusionValue("v1"), "v1")
		time.Sleep(1100 * time.Millisecond)
		release := make(chan struct{})
		var calls atomic.Int64
		failing := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			calls.Add(1)
			<-release
			return "", errDB
		}
		fcWantGetOrSet(t, c, "k", failing, "v1") // a hit: starts the refresh
		synctest.Wait()
		time.Sleep(time.Second)                  // 2.1s: expired, the refresh still runs
		fcWantGetOrSet(t, c, "k", failing, "v1") // stale at the soft timeout, throttled
		close(release)                           // the refresh fails
		synctest.Wait()
		for i := range 5 {
			time.Sleep(time.Second)
			v, err := hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
				calls.Add(1)
				return "", errDB
			})
			if err != nil || v != "v1" {
				t.Fatalf("read %d in the throttle: %q, %v", i, v, err)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("failing source called %d times within one throttle window, want 1 (the refresh)", n)
		}
	})
}

// TestHuntFailedEagerRefreshKeepsSlidingExtension: an entry with sliding
// expiration is read every second (so it stays fresh: docs/getorset.md,
// sliding expiration); one of the hits starts an eager refresh that fails
// a few seconds later. The entry must be "kept as it was, minus its
// refresh point" (docs/eager-refresh.md): the failure must not bring back
// the copy from before the later hits' extensions, expiring an entry that
// is read within every window.
func TestHuntFailedEagerRefreshKeepsSlidingExtension(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Minute, SlidingDuration: 2 * time.Second, EagerRefreshThreshold: 0.1,
		}})
		fcWantGetOrSet(t, c, "k", fusionValue("v1"), "v1")
		release := make(chan struct{})
		var started atomic.Bool
		failing := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			started.Store(true)
			<-release
			return "", errDB
		}
		for range 7 { // read every second, 7s: past the refresh point at 6s
			time.Sleep(time.Second)
			fcWantGetOrSet(t, c, "k", failing, "v1")
		}
		synctest.Wait()
		if !started.Load() {
			t.Fatal("no eager refresh started")
		}
		for range 3 { // the entry keeps sliding while the refresh runs
			time.Sleep(time.Second)
			fcWantGet(t, c, "k", "v1")
		}
		close(release) // the refresh fails
		synctest.Wait()
		time.Sleep(time.Second) // within the window of the last read
		fcWantGet(t, c, "k", "v1")
	})
}
