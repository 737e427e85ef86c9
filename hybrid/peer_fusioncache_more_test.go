package hybrid_test

// More scenarios ported from FusionCache's test suite
// (github.com/ZiggyCreatures/FusionCache, tests/ZiggyCreatures.FusionCache.Tests:
// L1Tests, FailSafeTests, the timeout and eager refresh tests), memory
// only, in testing/synctest bubbles. Each test names the scenario it comes
// from; where Strata documents a deliberate difference, the test asserts
// Strata's documented behaviour and cites the doc. Helpers are those of
// peer_fusioncache_test.go.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// FailSafeTests.FailSafe_CanBeDisabled_OnFactoryFailure (and
// L1Tests.AdaptiveCachingCanWorkOnException): in FusionCache a factory
// that calls ctx.Options.SetFailSafe(false) before failing gets its error
// back. Strata documents the difference (docs/adaptive-caching.md:
// "SetFailSafe changes the new entry's physical lifetime. Whether this
// load may fall back on an error was decided before the factory ran, by
// the call's FailSafe"): the stale value answers. The way to refuse the
// fallback for some errors is FailSafeErrorFilter (docs/failsafe.md).
func TestFusionMoreFailSafeDisabledInsideFailingFactory(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{Duration: 5 * time.Minute, FailSafe: true})
	ctx := context.Background()
	fcWantGetOrSet(t, c, "foo", fusionValue("bar"), "bar")
	if err := c.Expire(ctx, "foo"); err != nil {
		t.Fatal(err)
	}
	failing := func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		fc.SetFailSafe(false)
		return "", errFcSloths
	}
	fcWantGetOrSet(t, c, "foo", failing, "bar") // the throttle starts

	c2 := fcMemCache(t, hybrid.EntryOptions{Duration: 5 * time.Minute, FailSafe: true})
	fcWantGetOrSet(t, c2, "foo", fusionValue("bar"), "bar")
	_ = c2.Expire(ctx, "foo")
	noFallback := hybrid.WithOptions(func(o *hybrid.EntryOptions) {
		o.FailSafeErrorFilter = func(err error) bool { return !errors.Is(err, errFcSloths) }
	})
	if v, err := hybrid.GetOrSet(ctx, c2, "foo", failing, noFallback); !errors.Is(err, errFcSloths) {
		t.Fatalf("GetOrSet with a filter refusing the error = %q, %v; want the factory's error", v, err)
	}
}

// L1Tests.CanConditionalRefresh + CanEagerRefresh: an eager refresh whose
// factory answers NotModified keeps the value and its ETag, fresh for a
// new Duration from the refresh (docs/eager-refresh.md: "fc.NotModified()
// works").
func TestFusionMoreEagerRefreshNotModified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5})
		ctx := context.Background()
		var full, notModified atomic.Int64
		f := func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			if fc.ETag() == "e1" {
				notModified.Add(1)
				return fc.NotModified()
			}
			full.Add(1)
			fc.SetETag("e1")
			return "a", nil
		}
		fcWantGetOrSet(t, c, "k", f, "a")
		time.Sleep(6 * time.Second)
		fcWantGetOrSet(t, c, "k", f, "a") // starts the refresh
		synctest.Wait()
		time.Sleep(6 * time.Second) // past the first entry's expiry
		v, info, ok, err := hybrid.TryGetInfo[string](ctx, c, "k")
		if err != nil || !ok || v != "a" || info.ETag != "e1" {
			t.Fatalf("TryGetInfo after the refresh = %q, %+v, %v, %v; want a, ETag e1", v, info, ok, err)
		}
		if full.Load() != 1 || notModified.Load() != 1 {
			t.Fatalf("full loads %d, not-modified refreshes %d; want 1 and 1", full.Load(), notModified.Load())
		}
	})
}

// L1Tests.CanEagerRefresh with a Remove while the refresh runs (the
// FusionCache #613 family): the refresh started before the Remove, so its
// result is older and does not bring the key back.
func TestFusionMoreEagerRefreshLosesToRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5})
		ctx := context.Background()
		fcWantGetOrSet(t, c, "k", fusionValue("a"), "a")
		time.Sleep(6 * time.Second)
		release := make(chan struct{})
		fcWantGetOrSet(t, c, "k", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			<-release
			return "b", nil
		}, "a")
		synctest.Wait()
		if err := c.Remove(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		close(release)
		synctest.Wait()
		fcWantMiss[string](t, c, "k")
		fcWantGetOrSet(t, c, "k", fusionValue("c"), "c")
	})
}

// L1Tests.CanEagerRefresh with a factory that panics: nobody waits for the
// refresh, so the panic is recovered and logged (docs/getorset.md, factory
// panics), the entry stays until its expiry, and the key is not poisoned.
func TestFusionMoreEagerRefreshPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5})
		fcWantGetOrSet(t, c, "k", fusionValue("a"), "a")
		time.Sleep(6 * time.Second)
		fcWantGetOrSet(t, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			panic("sloths")
		}, "a")
		synctest.Wait()
		fcWantGet(t, c, "k", "a")
		time.Sleep(5 * time.Second)
		fcWantGetOrSet(t, c, "k", fusionValue("b"), "b")
	})
}

// L1Tests.ReturnsStaleDataWhenFactorySoftTimeoutWithFailSafe with a factory
// that panics after the soft timeout, in the background: the caller had
// the stale value; the panic reaches nobody, and after the throttle the
// key loads again.
func TestFusionMoreBackgroundFactoryPanicsAfterSoftTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: time.Second,
			FactorySoftTimeout: 100 * time.Millisecond,
		})
		fcWantGetOrSet(t, c, "k", fusionValue("a"), "a")
		time.Sleep(2 * time.Second)
		fcWantGetOrSet(t, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			time.Sleep(500 * time.Millisecond)
			panic("sloths")
		}, "a")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		fcWantGetOrSet(t, c, "k", fusionValue("b"), "b")
	})
}

// L1Tests.CanHandleEagerRefreshWithTags, the other way round: an entry
// past its refresh point whose tag was invalidated is not a hit that
// refreshes in the background; the call loads at once.
func TestFusionMoreEagerRefreshAfterRemoveByTag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5})
		fcWantGetOrSet(t, c, "k", fusionValue("a"), "a", hybrid.WithTags("t"))
		time.Sleep(6 * time.Second)
		if err := c.RemoveByTag(context.Background(), "t"); err != nil {
			t.Fatal(err)
		}
		fcWantGetOrSet(t, c, "k", fusionValue("b"), "b")
	})
}

// L1Tests.CanClearWithFailSafe + ThrottleDurationWorksCorrectly: after a
// Clear(true) the factory fails and the throttled fallback is served; a
// later Clear(false) removes it too (docs/failsafe.md: "a later
// invalidation applies to it again").
func TestFusionMoreClearFalseAfterThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: time.Second, FailSafe: true})
		ctx := context.Background()
		fcWantGetOrSet(t, c, "k", fusionValue("a"), "a")
		if err := c.Clear(ctx, true); err != nil {
			t.Fatal(err)
		}
		fcWantGetOrSet(t, c, "k", fusionFail[string](errFcSloths), "a")
		fcWantGet(t, c, "k", "a") // the throttled copy
		time.Sleep(time.Millisecond)
		if err := c.Clear(ctx, false); err != nil {
			t.Fatal(err)
		}
		fcWantMiss[string](t, c, "k", fcAllowStale)
		if _, err := hybrid.GetOrSet(ctx, c, "k", fusionFail[string](errFcSloths)); !errors.Is(err, errFcSloths) {
			t.Fatalf("GetOrSet after Clear(false) = %v; want the factory's error", err)
		}
	})
}

// L1Tests.CanSoftFailWithSoftTimeout: the soft timeout serves the stale
// value, the factory then fails in the background; the throttle started
// at the timeout holds (no second call within it), and the next load after
// it calls the factory once more.
func TestFusionMoreSoftTimeoutThenBackgroundFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: 5 * time.Second,
			FactorySoftTimeout: 100 * time.Millisecond,
		})
		fcWantGetOrSet(t, c, "k", fusionValue("a"), "a")
		time.Sleep(2 * time.Second)
		var calls atomic.Int64
		slowFail := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			calls.Add(1)
			time.Sleep(time.Second)
			return "", errFcSloths
		}
		fcWantGetOrSet(t, c, "k", slowFail, "a")
		time.Sleep(2 * time.Second)
		fcWantGetOrSet(t, c, "k", slowFail, "a")
		if n := calls.Load(); n != 1 {
			t.Fatalf("factory calls within the throttle = %d; want 1", n)
		}
		time.Sleep(4 * time.Second)
		fcWantGetOrSet(t, c, "k", slowFail, "a")
		if n := calls.Load(); n != 2 {
			t.Fatalf("factory calls after the throttle = %d; want 2", n)
		}
	})
}

// L1Tests.DoesHardTimeoutEvenWithoutStaleData with failSafeDefaultValue
// (JitteringIsNotUsedWhenActivatingFailSafe's default): the hard timeout
// answers with the default, which is not cached; the factory completes in
// the background and its value is.
func TestFusionMoreHardTimeoutDefaultThenBackgroundValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{FailSafe: true, FactoryHardTimeout: 100 * time.Millisecond})
		v, err := hybrid.GetOrSet(context.Background(), c, "k", fusionSlow(time.Second, 1), hybrid.WithFailSafeDefault(-1))
		if err != nil || v != -1 {
			t.Fatalf("GetOrSet at the hard timeout = %d, %v; want the default -1", v, err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		fcWantGet(t, c, "k", 1)
	})
}

// L1Tests.CanExpire with sliding expiration (docs/getorset.md): an Expire
// ends the entry's freshness; a later hit does not slide it back.
func TestFusionMoreSlidingThenExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: time.Minute, SlidingDuration: 10 * time.Second})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "k", "a")
		time.Sleep(6 * time.Second)
		fcWantGet(t, c, "k", "a")
		if err := c.Expire(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		fcWantMiss[string](t, c, "k")
		time.Sleep(6 * time.Second)
		fcWantMiss[string](t, c, "k")
	})
}

// L1Tests.GetOrDefaultDoesNotReturnStaleDataWithoutFailSafe and
// FailSafeMaxDuration..., for a sliding entry: written without fail-safe,
// an entry left unread past its window has expired for good (docs/failsafe.md:
// "a value written with FailSafe off has physical expiry = logical
// expiry"). It was kept until its absolute limit (Duration) and served as
// a fallback: by TryGet with AllowStaleOnRead and by a load with fail-safe on.
func TestFusionMoreSlidingWithoutFailSafeIsNoFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: time.Minute, SlidingDuration: 10 * time.Second})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "k", "a")
		time.Sleep(15 * time.Second) // the window ran out unread
		fcWantMiss[string](t, c, "k")
		fcWantMiss[string](t, c, "k", fcAllowStale)
		if v, err := hybrid.GetOrSet(ctx, c, "k", fusionFail[string](errFcSloths), hybrid.WithFailSafe(true)); !errors.Is(err, errFcSloths) {
			t.Fatalf("GetOrSet with fail-safe after the window = %q, %v; want the factory's error (no fallback)", v, err)
		}

		// With fail-safe, the same entry is a fallback, as documented.
		_ = hybrid.Set(ctx, c, "f", "a", hybrid.WithFailSafe(true))
		time.Sleep(15 * time.Second)
		fcWantMiss[string](t, c, "f")
		fcWantGet(t, c, "f", "a", fcAllowStale)
	})
}

// L1Tests.CanExpire, for an entry written without fail-safe
// (FusionCache's Expire removes such an entry): once expired it is no
// fallback either (docs/failsafe.md, "Whether an entry can be a fallback
// was decided when it was written"). The expired copy used to keep the
// entry's physical expiry, its original logical one, and so served as a
// fallback until then.
func TestFusionMoreExpireWithoutFailSafeIsNoFallback(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{Duration: 10 * time.Minute})
	ctx := context.Background()
	_ = hybrid.Set(ctx, c, "foo", 42)
	if err := c.Expire(ctx, "foo"); err != nil {
		t.Fatal(err)
	}
	fcWantMiss[int](t, c, "foo")
	fcWantMiss[int](t, c, "foo", fcAllowStale)
	if v, err := hybrid.GetOrSet(ctx, c, "foo", fusionFail[int](errFcSloths), hybrid.WithFailSafe(true)); !errors.Is(err, errFcSloths) {
		t.Fatalf("GetOrSet with fail-safe after Expire = %d, %v; want the factory's error (no fallback)", v, err)
	}
	// A load that started before the Expire still cannot store its older
	// value afterwards: the removal is newer.
	fcWantGetOrSet(t, c, "foo", fusionValue(21), 21)

	// An entry written with fail-safe stays a fallback, whatever the
	// Expire call's options.
	_ = hybrid.Set(ctx, c, "bar", 42, hybrid.WithFailSafe(true))
	_ = c.Expire(ctx, "bar")
	fcWantGet(t, c, "bar", 42, fcAllowStale)
	fcWantGetOrSet(t, c, "bar", fusionFail[int](errFcSloths), 42, hybrid.WithFailSafe(true))
}

// An entry written with fail-safe whose FailSafeMaxDuration is shorter
// than its Duration (the entry lives for its Duration, docs/failsafe.md)
// is still an entry written with fail-safe: an Expire leaves it a fallback
// until its physical expiry. Its physical expiry equalled its logical one,
// which made it look written without fail-safe, and Expire removed it.
func TestExpireKeepsFailSafeEntryWithShortFailSafeMax(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{Duration: 3 * time.Hour, FailSafe: true, FailSafeMaxDuration: time.Hour})
	ctx := context.Background()
	_ = hybrid.Set(ctx, c, "k", 42)
	if err := c.Expire(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	fcWantMiss[int](t, c, "k")
	fcWantGet(t, c, "k", 42, fcAllowStale)
	fcWantGetOrSet(t, c, "k", fusionFail[int](errFcSloths), 42)
}

// RemoveByTag and Clear(true) expire entries, as Expire does: one written
// without fail-safe is then no fallback (docs/failsafe.md), one written
// with it is. Both used to stay fallbacks until their original expiry.
func TestInvalidatedWithoutFailSafeIsNoFallback(t *testing.T) {
	for _, tc := range []struct {
		name       string
		invalidate func(*hybrid.Cache) error
	}{
		{"RemoveByTag", func(c *hybrid.Cache) error { return c.RemoveByTag(context.Background(), "t") }},
		{"Clear(true)", func(c *hybrid.Cache) error { return c.Clear(context.Background(), true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fcMemCache(t, hybrid.EntryOptions{Duration: 10 * time.Minute})
			ctx := context.Background()
			_ = hybrid.Set(ctx, c, "plain", 1, hybrid.WithTags("t"))
			_ = hybrid.Set(ctx, c, "safe", 2, hybrid.WithTags("t"), hybrid.WithFailSafe(true))
			if err := tc.invalidate(c); err != nil {
				t.Fatal(err)
			}
			fcWantMiss[int](t, c, "plain")
			fcWantMiss[int](t, c, "plain", fcAllowStale)
			if v, err := hybrid.GetOrSet(ctx, c, "plain", fusionFail[int](errFcSloths), hybrid.WithFailSafe(true)); !errors.Is(err, errFcSloths) {
				t.Fatalf("GetOrSet with fail-safe after %s = %d, %v; want the factory's error (no fallback)", tc.name, v, err)
			}
			fcWantMiss[int](t, c, "safe")
			fcWantGet(t, c, "safe", 2, fcAllowStale)
			fcWantGetOrSet(t, c, "safe", fusionFail[int](errFcSloths), 2, hybrid.WithFailSafe(true))
		})
	}
}
