package hybrid_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntSlidingThrottleHoldsPastAbsoluteLimit: an entry with sliding
// expiration and fail-safe, read past its absolute limit while the source
// is down, is served as a fallback and throttled (docs/failsafe.md: "a
// failing database is called at most once per key per throttle window").
// The hits in the throttle window must not cut the window short: the
// factory runs once in the window.
func TestHuntSlidingThrottleHoldsPastAbsoluteLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: 10 * time.Second, SlidingDuration: 2 * time.Second,
			FailSafe: true, FailSafeThrottleDuration: 30 * time.Second,
		}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "v1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(11 * time.Second) // past the window and the absolute limit
		var calls atomic.Int64
		failing := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			calls.Add(1)
			return "", errDB
		}
		for i := range 10 { // one read a second, all inside the 30s throttle
			v, err := hybrid.GetOrSet(ctx, c, "k", failing)
			if err != nil || v != "v1" {
				t.Fatalf("read %d: GetOrSet = %q, %v; want the fallback v1", i, v, err)
			}
			time.Sleep(time.Second)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("failing factory called %d times in one 30s throttle window, want 1", n)
		}
	})
}

// TestHuntSlidingThrottleHoldsWithinAbsoluteLimit: the same before the
// absolute limit: an entry that was not read for a window expires (its
// sliding window ended), the factory fails, the fallback is throttled for
// 30s; reads every 3s (longer than the 2s window) must not call the
// failing source again within the throttle.
func TestHuntSlidingThrottleHoldsWithinAbsoluteLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Hour, SlidingDuration: 2 * time.Second,
			FailSafe: true, FailSafeThrottleDuration: 30 * time.Second,
		}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "v1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // the window ended: stale
		var calls atomic.Int64
		failing := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			calls.Add(1)
			return "", errDB
		}
		for i := range 8 { // 24s of reads, 3s apart, inside the 30s throttle
			v, err := hybrid.GetOrSet(ctx, c, "k", failing)
			if err != nil || v != "v1" {
				t.Fatalf("read %d: GetOrSet = %q, %v; want the fallback v1", i, v, err)
			}
			time.Sleep(3 * time.Second)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("failing factory called %d times in one 30s throttle window, want 1", n)
		}
	})
}
