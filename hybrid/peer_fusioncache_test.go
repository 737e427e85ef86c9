package hybrid_test

// Scenarios ported from FusionCache's own test suite
// (github.com/ZiggyCreatures/FusionCache, tests/ZiggyCreatures.FusionCache.Tests),
// mostly MemoryLevelTests.cs (memory only) and L1L2Tests.cs (memory +
// distributed). Each test names the FusionCache test it comes from. Where
// Strata documents a deliberate difference, the test asserts Strata's
// documented behaviour and says so, with the doc line.
//
// Memory-only scenarios run in a testing/synctest bubble (virtual time);
// the Redis ones use a real redis-server started by internal/redistest.

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

var errFcSloths = errors.New("sloths are cool")

// fusionValue is a factory that returns v.
func fusionValue[T any](v T) hybrid.Factory[T] {
	return func(context.Context, *hybrid.FactoryContext[T]) (T, error) { return v, nil }
}

// fusionFail is a factory that fails with err.
func fusionFail[T any](err error) hybrid.Factory[T] {
	return func(context.Context, *hybrid.FactoryContext[T]) (T, error) {
		var zero T
		return zero, err
	}
}

// fusionSlow is a factory that sleeps d (ignoring its ctx, as FusionCache's
// Task.Delay without a token does) and returns v.
func fusionSlow[T any](d time.Duration, v T) hybrid.Factory[T] {
	return func(context.Context, *hybrid.FactoryContext[T]) (T, error) {
		time.Sleep(d)
		return v, nil
	}
}

func fcTimeouts(soft, hard time.Duration) hybrid.Option {
	return hybrid.WithOptions(func(o *hybrid.EntryOptions) {
		o.FactorySoftTimeout = soft
		o.FactoryHardTimeout = hard
	})
}

var (
	fcAllowStale  = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })
	fcSkipL1Read  = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true })
	fcSkipL1Write = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Write = true })
	fcSkipL1      = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read, o.SkipL1Write = true, true })
	fcSkipL2      = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read, o.SkipL2Write = true, true })
)

func fcMemCache(t *testing.T, e hybrid.EntryOptions) *hybrid.Cache {
	t.Helper()
	return newCache(t, hybrid.Options{Entry: e, Logger: quietLogger()})
}

func fcWantGet[T comparable](t *testing.T, c *hybrid.Cache, key string, want T, opts ...hybrid.Option) {
	t.Helper()
	v, ok := mustGet[T](t, c, key, opts...)
	if !ok || v != want {
		t.Fatalf("TryGet(%q) = %v, %v; want %v, true", key, v, ok, want)
	}
}

func fcWantMiss[T any](t *testing.T, c *hybrid.Cache, key string, opts ...hybrid.Option) {
	t.Helper()
	if v, ok := mustGet[T](t, c, key, opts...); ok {
		t.Fatalf("TryGet(%q) = %v, true; want a miss", key, v)
	}
}

func fcWantGetOrSet[T comparable](t *testing.T, c *hybrid.Cache, key string, f hybrid.Factory[T], want T, opts ...hybrid.Option) {
	t.Helper()
	v, err := hybrid.GetOrSet(context.Background(), c, key, f, opts...)
	if err != nil || v != want {
		t.Fatalf("GetOrSet(%q) = %v, %v; want %v, nil", key, v, err, want)
	}
}

// ---------------------------------------------------------------------------
// Memory only (MemoryLevelTests.cs)

// MemoryLevelTests.CanRemove
func TestFusionCanRemove(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx := context.Background()
	if err := hybrid.Set(ctx, c, "foo", 42); err != nil {
		t.Fatal(err)
	}
	fcWantGet(t, c, "foo", 42)
	if err := c.Remove(ctx, "foo"); err != nil {
		t.Fatal(err)
	}
	fcWantMiss[int](t, c, "foo")
}

// MemoryLevelTests.TryGetReturnsCorrectly and GetOrDefaultDoesNotSet: a
// miss reports ok=false (and reading does not store anything).
func TestFusionTryGetReturnsCorrectly(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	fcWantMiss[int](t, c, "foo")
	fcWantMiss[int](t, c, "foo") // the first miss stored nothing
	if err := hybrid.Set(context.Background(), c, "foo", 42); err != nil {
		t.Fatal(err)
	}
	fcWantGet(t, c, "foo", 42)
}

// MemoryLevelTests.ReturnsStaleDataWhenFactoryFailsWithoutException (and
// ReturnsStaleDataWhenFactoryFails): a failing factory gets the stale value
// while fail-safe is on; after the throttle, fail-safe off returns the error.
func TestFusionReturnsStaleDataWhenFactoryFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{
			Duration: 100 * time.Millisecond, FailSafe: true,
			FailSafeThrottleDuration: time.Second, FailSafeMaxDuration: 10 * time.Minute,
		})
		fcWantGetOrSet(t, c, "foo", fusionValue(42), 42)
		time.Sleep(500 * time.Millisecond)
		fcWantGetOrSet(t, c, "foo", fusionFail[int](errFcSloths), 42)
		time.Sleep(time.Second + time.Millisecond)
		_, err := hybrid.GetOrSet(context.Background(), c, "foo", fusionFail[int](errFcSloths), hybrid.WithFailSafe(false))
		if !errors.Is(err, errFcSloths) {
			t.Fatalf("fail-safe off after the throttle: err = %v, want the factory's error", err)
		}
	})
}

// MemoryLevelTests.ThrowsWhenFactoryThrowsWithoutFailSafe
func TestFusionThrowsWhenFactoryThrowsWithoutFailSafe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		fcWantGetOrSet(t, c, "foo", fusionValue(42), 42, hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true))
		time.Sleep(1100 * time.Millisecond)
		_, err := hybrid.GetOrSet(context.Background(), c, "foo", fusionFail[int](errFcSloths), hybrid.WithDuration(time.Second), hybrid.WithFailSafe(false))
		if !errors.Is(err, errFcSloths) {
			t.Fatalf("err = %v, want the factory's error", err)
		}
	})
}

// MemoryLevelTests.ThrowsOnFactoryHardTimeoutWithoutStaleData: soft 2s,
// hard 100ms, fail-safe on, cold key: ErrFactoryTimeout at the hard timeout.
func TestFusionThrowsOnFactoryHardTimeoutWithoutStaleData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		start := time.Now()
		_, err := hybrid.GetOrSet(context.Background(), c, "foo", fusionSlow(time.Second, 21),
			hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true), fcTimeouts(2*time.Second, 100*time.Millisecond))
		if !errors.Is(err, hybrid.ErrFactoryTimeout) {
			t.Fatalf("err = %v, want ErrFactoryTimeout", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("returned after %v, want the hard timeout (100ms)", d)
		}
		synctest.Wait()
	})
}

// MemoryLevelTests.ReturnsStaleDataWhenFactorySoftTimeoutWithFailSafe
func TestFusionReturnsStaleDataWhenFactorySoftTimeoutWithFailSafe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		opts := []hybrid.Option{hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true)}
		fcWantGetOrSet(t, c, "foo", fusionValue(42), 42, opts...)
		time.Sleep(1100 * time.Millisecond)
		start := time.Now()
		fcWantGetOrSet(t, c, "foo", fusionSlow(time.Second, 21), 42, append(opts, fcTimeouts(100*time.Millisecond, 0))...)
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("returned after %v, want the soft timeout (100ms)", d)
		}
	})
}

// MemoryLevelTests.DoesNotSoftTimeoutWithoutStaleData
func TestFusionDoesNotSoftTimeoutWithoutStaleData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		fcWantGetOrSet(t, c, "foo", fusionSlow(time.Second, 21), 21,
			hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true), fcTimeouts(100*time.Millisecond, 0))
	})
}

// MemoryLevelTests.DoesHardTimeoutEvenWithoutStaleData
func TestFusionDoesHardTimeoutEvenWithoutStaleData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		start := time.Now()
		_, err := hybrid.GetOrSet(context.Background(), c, "foo", fusionSlow(time.Second, 21),
			hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true), fcTimeouts(100*time.Millisecond, 500*time.Millisecond))
		if !errors.Is(err, hybrid.ErrFactoryTimeout) {
			t.Fatalf("err = %v, want ErrFactoryTimeout", err)
		}
		if d := time.Since(start); d != 500*time.Millisecond {
			t.Fatalf("returned after %v, want the hard timeout (500ms)", d)
		}
		synctest.Wait()
	})
}

// MemoryLevelTests.ReturnsStaleDataWhenFactoryHitHardTimeoutWithFailSafe
func TestFusionReturnsStaleDataWhenFactoryHitHardTimeoutWithFailSafe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		if err := hybrid.Set(context.Background(), c, "foo", 42, hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		fcWantGetOrSet(t, c, "foo", fusionSlow(time.Second, 21), 42,
			hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true), fcTimeouts(100*time.Millisecond, 500*time.Millisecond))
	})
}

// MemoryLevelTests.SetOverwritesAnExistingValue
func TestFusionSetOverwritesAnExistingValue(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx := context.Background()
	_ = hybrid.Set(ctx, c, "foo", 42, hybrid.WithDuration(10*time.Second))
	_ = hybrid.Set(ctx, c, "foo", 21, hybrid.WithDuration(10*time.Second))
	fcWantGet(t, c, "foo", 21)
}

// MemoryLevelTests.GetOrSetDoesNotOverwriteANonExpiredValue
func TestFusionGetOrSetDoesNotOverwriteANonExpiredValue(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	fcWantGetOrSet(t, c, "foo", fusionValue(42), 42, hybrid.WithDuration(10*time.Second))
	fcWantGetOrSet(t, c, "foo", fusionValue(21), 42, hybrid.WithDuration(10*time.Second))
}

// MemoryLevelTests.DoesNotReturnStaleDataIfFactorySucceeds
func TestFusionDoesNotReturnStaleDataIfFactorySucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		opts := []hybrid.Option{hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true)}
		fcWantGetOrSet(t, c, "foo", fusionValue(42), 42, opts...)
		time.Sleep(1500 * time.Millisecond)
		fcWantGetOrSet(t, c, "foo", fusionValue(21), 21, opts...)
	})
}

// MemoryLevelTests.GetOrDefaultDoesReturnStaleDataWithFailSafe and
// GetOrDefaultDoesNotReturnStaleDataWithoutFailSafe. Deliberate difference:
// FusionCache's GetOrDefault returns a stale value when the *call* has
// fail-safe on; Strata's TryGet needs AllowStaleOnRead (docs/failsafe.md,
// "Reads of stale values": "TryGet misses stale entries unless
// AllowStaleOnRead is set; then it returns any physically alive, non-removed
// entry, whatever the call's FailSafe").
func TestFusionTryGetReturnsStaleDataOnlyWhenAllowed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		if err := hybrid.Set(context.Background(), c, "foo", 42, hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		fcWantMiss[int](t, c, "foo", hybrid.WithFailSafe(true))
		fcWantGet(t, c, "foo", 42, fcAllowStale)
		fcWantGet(t, c, "foo", 42, fcAllowStale, hybrid.WithFailSafe(false))
	})
}

// MemoryLevelTests.FactoryTimedOutButSuccessfulDoesUpdateCachedValue
func TestFusionFactoryTimedOutButSuccessfulDoesUpdateCachedValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "foo", 42, hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true),
			hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.FailSafeMaxDuration = time.Minute })); err != nil {
			t.Fatal(err)
		}
		fcWantGet(t, c, "foo", 42)
		time.Sleep(1500 * time.Millisecond)
		factory := func(ctx context.Context, _ *hybrid.FactoryContext[int]) (int, error) {
			time.Sleep(2 * time.Second)
			if err := ctx.Err(); err != nil { // ct.ThrowIfCancellationRequested()
				return 0, err
			}
			return 21, nil
		}
		fcWantGetOrSet(t, c, "foo", factory, 42, hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true), fcTimeouts(500*time.Millisecond, 0))
		fcWantGet(t, c, "foo", 42) // the throttled fallback
		time.Sleep(3 * time.Second)
		synctest.Wait()
		// FusionCache reads with GetOrDefault and fail-safe on: by now (5s)
		// the background result (stored at 3.5s for 1s) is stale, so the
		// stale read needs AllowStaleOnRead here (see
		// TestFusionTryGetReturnsStaleDataOnlyWhenAllowed).
		fcWantGet(t, c, "foo", 21, fcAllowStale)
		fcWantGetOrSet(t, c, "foo", fusionFail[int](errDB), 21, hybrid.WithFailSafe(true))
	})
}

// MemoryLevelTests.CanCancelAnOperation: the caller's ctx ends at 200ms, the
// factory takes 5s: the caller gets ctx.Err() at 200ms. Strata also
// promises (SPEC §3) that the load goes on and still fills the cache.
func TestFusionCanCancelAnOperation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		res, err := hybrid.GetOrSet(ctx, c, "foo", fusionSlow(5*time.Second, 42), hybrid.WithDuration(time.Minute))
		if !errors.Is(err, context.DeadlineExceeded) || res != 0 {
			t.Fatalf("GetOrSet = %d, %v; want 0, context.DeadlineExceeded", res, err)
		}
		if d := time.Since(start); d != 200*time.Millisecond {
			t.Fatalf("returned after %v, want 200ms", d)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		fcWantGet(t, c, "foo", 42)
	})
}

// MemoryLevelTests.ThrottleDurationWorksCorrectly. Deliberate difference:
// in FusionCache a GetOrDefault with fail-safe on activates fail-safe and
// stores the throttled copy; Strata's TryGet "never throttles, logs or calls
// anything" (docs/failsafe.md, "Reads of stale values"), so the throttle is
// activated by a failing GetOrSet here, and then checked the same way.
func TestFusionThrottleDurationWorksCorrectly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		ctx := context.Background()
		duration, throttle := time.Second, 3*time.Second
		withThrottle := hybrid.WithOptions(func(o *hybrid.EntryOptions) {
			o.Duration, o.FailSafe, o.FailSafeThrottleDuration = duration, true, throttle
		})
		if err := hybrid.Set(ctx, c, "foo", 42, withThrottle); err != nil {
			t.Fatal(err)
		}
		time.Sleep(duration + time.Millisecond)
		fcWantMiss[int](t, c, "foo", hybrid.WithFailSafe(false)) // nope
		fcWantGet(t, c, "foo", 42, fcAllowStale)                 // a stale read does not throttle...
		fcWantMiss[int](t, c, "foo")                             // ...(still a miss)
		var k counter
		f := func(context.Context, *hybrid.FactoryContext[int]) (int, error) { k.calls.Add(1); return 0, errDB }
		fcWantGetOrSet(t, c, "foo", f, 42, withThrottle) // throttled1
		time.Sleep(100 * time.Millisecond)
		fcWantGet(t, c, "foo", 42)                       // throttled2: fresh in the window
		fcWantGetOrSet(t, c, "foo", f, 42, withThrottle) // no factory call in the window
		if n := k.calls.Load(); n != 1 {
			t.Fatalf("factory calls in the throttle window = %d, want 1", n)
		}
		time.Sleep(throttle)
		fcWantMiss[int](t, c, "foo") // default3
	})
}

// MemoryLevelTests.AdaptiveCaching and AdaptiveCachingDoesNotChangeOptions:
// the factory shortens its entry's duration; the cache's defaults and the
// caller's options are untouched.
func TestFusionAdaptiveCaching(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := hybrid.EntryOptions{Duration: 5 * time.Minute}
		c := fcMemCache(t, o)
		ctx := context.Background()
		var inner time.Duration
		v, err := hybrid.GetOrSet(ctx, c, "foo", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
			fc.SetDuration(time.Second)
			inner = time.Second
			return 3, nil
		}, hybrid.WithFailSafe(false))
		if err != nil || v != 3 {
			t.Fatalf("GetOrSet = %d, %v", v, err)
		}
		fcWantGetOrSet(t, c, "bar", fusionValue(4), 4) // the cache's default duration
		time.Sleep(2 * time.Second)
		fcWantMiss[int](t, c, "foo")
		fcWantGet(t, c, "bar", 4)
		if inner != time.Second || o.Duration != 5*time.Minute {
			t.Fatalf("options changed")
		}
	})
}

// MemoryLevelTests.AdaptiveCachingWithBackgroundFactoryCompletion: a factory
// that times out (soft) changes its duration and disables fail-safe; its
// background completion stores the value with those options.
func TestFusionAdaptiveCachingWithBackgroundFactoryCompletion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: 5 * time.Minute})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "foo", 21, hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		fcWantGetOrSet(t, c, "foo", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
			time.Sleep(3 * time.Second)
			fc.SetDuration(5 * time.Second)
			fc.SetFailSafe(false)
			return 42, nil
		}, 21, fcTimeouts(time.Second, 0), hybrid.WithFailSafe(true))
		time.Sleep(3*time.Second + time.Second)
		synctest.Wait()
		fcWantGet(t, c, "foo", 42, hybrid.WithFailSafe(false))
		time.Sleep(5 * time.Second)
		fcWantMiss[int](t, c, "foo", fcAllowStale) // fail-safe was disabled in the factory
	})
}

// MemoryLevelTests.AdaptiveCachingCanWorkOnException. Deliberate
// difference: FusionCache lets a failing factory turn fail-safe off for
// *this* call (ctx.Options.SetFailSafe(false) in a finally) and throws;
// Strata: "SetFailSafe changes the new entry's physical lifetime. Whether
// *this* load may fall back on an error was decided before the factory ran,
// by the call's FailSafe" (docs/adaptive-caching.md, Semantics). So the
// stale value is served; the second call of the scenario (FusionCache
// expects no exception) gets it too.
func TestFusionAdaptiveCachingCanWorkOnException(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: 5 * time.Minute, FailSafe: true})
		ctx := context.Background()
		fcWantGetOrSet(t, c, "foo", fusionValue("bar"), "bar")
		if err := c.Expire(ctx, "foo"); err != nil {
			t.Fatal(err)
		}
		fcWantGetOrSet(t, c, "foo", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			fc.SetFailSafe(false)
			return "", errors.New("Factory failed")
		}, "bar")
		fcWantGetOrSet(t, c, "foo", fusionFail[string](errors.New("Factory failed")), "bar")
	})
}

// MemoryLevelTests.FailSafeMaxDurationNormalizationOccurs: a fail-safe max
// duration shorter than Duration is raised to Duration.
func TestFusionFailSafeMaxDurationNormalizationOccurs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		if err := hybrid.Set(context.Background(), c, "foo", 21, hybrid.WithDuration(5*time.Second), hybrid.WithFailSafe(true),
			hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.FailSafeMaxDuration = time.Second })); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second + time.Millisecond)
		fcWantGet(t, c, "foo", 21)
		time.Sleep(4*time.Second - 2*time.Millisecond)
		fcWantGet(t, c, "foo", 21)
	})
}

// MemoryLevelTests.ReturnsStaleDataWithoutSavingItWhenNoFactory: reading a
// stale value (AllowStaleOnRead, Strata's equivalent of GetOrDefault with
// fail-safe, see TestFusionTryGetReturnsStaleDataOnlyWhenAllowed) does not
// store it back as fresh.
func TestFusionReturnsStaleDataWithoutSavingItWhenNoFactory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		fcWantGetOrSet(t, c, "foo", fusionValue(42), 42, hybrid.WithDuration(time.Second), hybrid.WithOptions(func(o *hybrid.EntryOptions) {
			o.FailSafe, o.FailSafeMaxDuration, o.FailSafeThrottleDuration = true, 10*time.Second, 30*time.Second
		}))
		time.Sleep(1500 * time.Millisecond)
		fcWantGet(t, c, "foo", 42, fcAllowStale, hybrid.WithFailSafe(true))
		fcWantMiss[int](t, c, "foo")
		fcWantGet(t, c, "foo", 42, fcAllowStale)
		fcWantMiss[int](t, c, "foo")
	})
}

// MemoryLevelTests.CanHandleInfiniteOrSimilarDurations: a duration near
// the maximum, plus jitter, does not overflow into the past.
func TestFusionCanHandleInfiniteOrSimilarDurations(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	err := hybrid.Set(context.Background(), c, "foo", 42, hybrid.WithDuration(math.MaxInt64-time.Millisecond),
		hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.JitterMaxDuration = 10 * time.Minute; o.FailSafe = true }))
	if err != nil {
		t.Fatal(err)
	}
	fcWantGet(t, c, "foo", 42)
}

// MemoryLevelTests.CanHandleZeroDurations. Deliberate difference: in
// FusionCache a zero duration expires the entry at once; in Strata
// "WithDuration(0) / Duration: 0 means the *library* default (30s), not 'do
// not cache'" (docs/getorset.md, Traps).
func TestFusionCanHandleZeroDurations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "foo", 10, hybrid.WithDuration(0))
		fcWantGet(t, c, "foo", 10)
		_ = hybrid.Set(ctx, c, "foo", 20, hybrid.WithDuration(10*time.Minute))
		fcWantGet(t, c, "foo", 20)
		_ = hybrid.Set(ctx, c, "foo", 30, hybrid.WithDuration(0))
		fcWantGet(t, c, "foo", 30)
		time.Sleep(hybrid.DefaultDuration)
		fcWantMiss[int](t, c, "foo")
	})
}

// MemoryLevelTests.CanHandleNegativeDurations. Deliberate difference: in
// FusionCache a negative duration expires the entry at once; in Strata
// negative durations are invalid ("Negative durations are invalid",
// EntryOptions godoc; "Bad input gets a clear error and changes nothing",
// SPEC §3 Errors): the Set fails with ErrInvalidOptions and the stored
// value stays.
func TestFusionCanHandleNegativeDurations(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx := context.Background()
	if err := hybrid.Set(ctx, c, "foo", 10, hybrid.WithDuration(-100*time.Second)); !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Fatalf("negative duration: err = %v, want ErrInvalidOptions", err)
	}
	fcWantMiss[int](t, c, "foo")
	_ = hybrid.Set(ctx, c, "foo", 20, hybrid.WithDuration(10*time.Minute))
	fcWantGet(t, c, "foo", 20)
	if err := hybrid.Set(ctx, c, "foo", 30, hybrid.WithDuration(-100*24*time.Hour)); !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Fatalf("negative duration: err = %v, want ErrInvalidOptions", err)
	}
	fcWantGet(t, c, "foo", 20)
}

// fcFakeEndpoint is FusionCache's FakeHttpEndpoint: a value with an ETag,
// counting full and conditional requests.
type fcFakeEndpoint struct {
	value, version                       int
	total, conditional, full, notModResp int
}

func (e *fcFakeEndpoint) etag() string { return "v" + string(rune('0'+e.version)) }

func (e *fcFakeEndpoint) get(fc *hybrid.FactoryContext[int]) (int, error) {
	e.total++
	if _, ok := fc.Stale(); ok && fc.ETag() != "" {
		e.conditional++
		if fc.ETag() == e.etag() {
			e.notModResp++
			return fc.NotModified()
		}
	}
	e.full++
	fc.SetETag(e.etag())
	return e.value, nil
}

// MemoryLevelTests.CanHandleConditionalRefresh (and L1L2Tests'): ETag and
// NotModified.
func TestFusionCanHandleConditionalRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		ep := &fcFakeEndpoint{value: 1, version: 1}
		f := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) { return ep.get(fc) }
		opts := []hybrid.Option{hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true)}
		const little = 10 * time.Millisecond
		fcWantGetOrSet(t, c, "foo", f, 1, opts...)
		fcWantGetOrSet(t, c, "foo", f, 1, opts...)
		time.Sleep(time.Second + little)
		fcWantGetOrSet(t, c, "foo", f, 1, opts...)
		time.Sleep(time.Second + little)
		fcWantGetOrSet(t, c, "foo", f, 1, opts...)
		ep.value, ep.version = 42, 2
		time.Sleep(time.Second + little)
		fcWantGetOrSet(t, c, "foo", f, 42, opts...)
		if ep.total != 4 || ep.conditional != 3 || ep.full != 2 || ep.notModResp != 2 {
			t.Fatalf("requests: total %d, conditional %d, full %d, not modified %d; want 4, 3, 2, 2",
				ep.total, ep.conditional, ep.full, ep.notModResp)
		}
	})
}

// MemoryLevelTests.CanHandleEagerRefresh
func TestFusionCanHandleEagerRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		duration, threshold := 2*time.Second, 0.2
		c := fcMemCache(t, hybrid.EntryOptions{Duration: duration, EagerRefreshThreshold: threshold})
		ctx := context.Background()
		now := func(context.Context, *hybrid.FactoryContext[int64]) (int64, error) { return time.Now().UnixNano(), nil }
		get := func() int64 {
			t.Helper()
			v, err := hybrid.GetOrSet(ctx, c, "foo", now)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		v1 := get()
		v2 := get()
		time.Sleep(time.Duration(float64(duration)*threshold) + 10*time.Millisecond)
		v3 := get() // eager refresh kicks in
		synctest.Wait()
		v4 := get()
		time.Sleep(duration + 10*time.Millisecond)
		v5 := get()
		v6 := get()
		if v1 != v2 || v2 != v3 || !(v4 > v3) || !(v5 > v4) || v5 != v6 {
			t.Fatalf("v1..v6 = %d %d %d %d %d %d; want v1=v2=v3 < v4 < v5=v6", v1, v2, v3, v4, v5, v6)
		}
	})
}

// MemoryLevelTests.CanHandleEagerRefreshWithInfiniteDuration
func TestFusionCanHandleEagerRefreshWithInfiniteDuration(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{Duration: math.MaxInt64, EagerRefreshThreshold: 0.5})
	v, err := hybrid.GetOrSet(context.Background(), c, "foo", func(context.Context, *hybrid.FactoryContext[int64]) (int64, error) {
		return time.Now().UnixNano(), nil
	})
	if err != nil || v <= 0 {
		t.Fatalf("GetOrSet = %d, %v", v, err)
	}
	// And a hit does not start a refresh (the threshold is centuries away).
	var calls atomic.Int64
	w, err := hybrid.GetOrSet(context.Background(), c, "foo", func(context.Context, *hybrid.FactoryContext[int64]) (int64, error) {
		calls.Add(1)
		return 0, nil
	})
	if err != nil || w != v {
		t.Fatalf("hit = %d, %v; want %d", w, err, v)
	}
}

// MemoryLevelTests.CanHandleEagerRefreshNoCancellation: cancelling the
// hitting caller's ctx does not cancel the eager refresh, and its result is
// used by the next caller (no second factory call).
func TestFusionCanHandleEagerRefreshNoCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		duration, threshold, delay := 2*time.Second, 0.1, 5*time.Second
		c := fcMemCache(t, hybrid.EntryOptions{Duration: duration, EagerRefreshThreshold: threshold})
		now := func(context.Context, *hybrid.FactoryContext[int64]) (int64, error) { return time.Now().UnixNano(), nil }
		v1, _ := hybrid.GetOrSet(context.Background(), c, "foo", now)
		v2, _ := hybrid.GetOrSet(context.Background(), c, "foo", now)
		time.Sleep(time.Duration(float64(duration)*threshold) + 10*time.Millisecond)

		var started, ended atomic.Bool
		var eagerResult atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		v3, err := hybrid.GetOrSet(ctx, c, "foo", func(ctx context.Context, _ *hybrid.FactoryContext[int64]) (int64, error) {
			started.Store(true)
			time.Sleep(delay)
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			ended.Store(true)
			v := time.Now().UnixNano()
			eagerResult.Store(v)
			return v, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		cancel()
		time.Sleep(delay)
		synctest.Wait()
		notThis := time.Now().UnixNano()
		v4, err := hybrid.GetOrSet(context.Background(), c, "foo", fusionValue(notThis))
		if err != nil {
			t.Fatal(err)
		}
		if v1 != v2 || v2 != v3 || !started.Load() || !ended.Load() || v4 <= v3 || v4 != eagerResult.Load() || v4 == notThis {
			t.Fatalf("v1 %d v2 %d v3 %d v4 %d, eager %d, started %v ended %v; want v4 = the eager refresh's result",
				v1, v2, v3, v4, eagerResult.Load(), started.Load(), ended.Load())
		}
	})
}

// MemoryLevelTests.NormalFactoryExecutionWaitsForInFlightEagerRefresh
func TestFusionNormalFactoryExecutionWaitsForInFlightEagerRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		duration, threshold := 2*time.Second, 0.2
		c := fcMemCache(t, hybrid.EntryOptions{Duration: duration, EagerRefreshThreshold: threshold})
		var value atomic.Int64
		inc := func(context.Context, *hybrid.FactoryContext[int64]) (int64, error) { return value.Add(1), nil }
		slowInc := func(context.Context, *hybrid.FactoryContext[int64]) (int64, error) {
			time.Sleep(4 * time.Second)
			return value.Add(1), nil
		}
		fcWantGetOrSet(t, c, "foo", inc, 1)
		fcWantGetOrSet(t, c, "foo", inc, 1)
		time.Sleep(time.Duration(float64(duration)*threshold) + 10*time.Millisecond)
		fcWantGetOrSet(t, c, "foo", slowInc, 1) // eager refresh starts, 4s
		time.Sleep(duration + 10*time.Millisecond)
		fcWantGetOrSet(t, c, "foo", inc, 2) // joins the refresh
		fcWantGetOrSet(t, c, "foo", inc, 2)
		if n := value.Load(); n != 2 {
			t.Fatalf("factory calls = %d, want 2", n)
		}
	})
}

// MemoryLevelTests.CanExpire
func TestFusionCanExpire(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{FailSafe: true, Duration: 10 * time.Minute})
	ctx := context.Background()
	_ = hybrid.Set(ctx, c, "foo", 42)
	fcWantGet(t, c, "foo", 42, hybrid.WithFailSafe(false))
	if err := c.Expire(ctx, "foo"); err != nil {
		t.Fatal(err)
	}
	fcWantMiss[int](t, c, "foo", hybrid.WithFailSafe(false))
	// FusionCache: TryGet with fail-safe on returns the expired value. Strata
	// needs AllowStaleOnRead (see TestFusionTryGetReturnsStaleDataOnlyWhenAllowed).
	fcWantGet(t, c, "foo", 42, fcAllowStale)
	// And it is a fallback for a failing factory (docs/getorset.md, Expire).
	fcWantGetOrSet(t, c, "foo", fusionFail[int](errDB), 42)
}

// MemoryLevelTests.CanSkipMemoryCache (memory-only cache: skipping memory
// means nothing is stored or read; docs/getorset.md: "SkipL1Write on Set
// stores the value in L2 only; on a memory-only cache it stores nothing",
// "With SkipL1Read it reads L2 only (a miss on a memory-only cache)",
// Remove "With SkipL1Write the memory tier is left as it is").
func TestFusionCanSkipMemoryCache(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx := context.Background()
	_ = hybrid.Set(ctx, c, "foo", 42, fcSkipL1)
	fcWantMiss[int](t, c, "foo")
	_ = hybrid.Set(ctx, c, "foo", 42)
	fcWantMiss[int](t, c, "foo", fcSkipL1)
	fcWantGet(t, c, "foo", 42)
	_ = c.Remove(ctx, "foo", fcSkipL1)
	fcWantGet(t, c, "foo", 42)
	_ = c.Remove(ctx, "foo")
	fcWantMiss[int](t, c, "foo")

	fcWantGetOrSet(t, c, "bar", fusionValue(42), 42, fcSkipL1)
	fcWantMiss[int](t, c, "bar")
}

// MemoryLevelTests.CanSkipMemoryCacheRead
func TestFusionCanSkipMemoryCacheRead(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx := context.Background()
	_ = hybrid.Set(ctx, c, "foo", 42, fcSkipL1Write)
	fcWantMiss[int](t, c, "foo")
	_ = hybrid.Set(ctx, c, "foo", 42)
	fcWantMiss[int](t, c, "foo", fcSkipL1Read)
	fcWantGet(t, c, "foo", 42)
	_ = c.Remove(ctx, "foo", fcSkipL1Write)
	fcWantMiss[int](t, c, "foo", fcSkipL1Read)
	fcWantGet(t, c, "foo", 42, fcSkipL1Write)
	_ = c.Remove(ctx, "foo", fcSkipL1Read)
	fcWantMiss[int](t, c, "foo")

	fcWantGetOrSet(t, c, "bar", fusionValue(42), 42, fcSkipL1)
	fcWantMiss[int](t, c, "bar")
}

// MemoryLevelTests.FailSafeMaxDurationIsRespected: a source that keeps
// failing gets the fallback until the entry's physical expiry
// (FailSafeMaxDuration), then the error.
func TestFusionFailSafeMaxDurationIsRespected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		duration, throttle, maxDuration := 2*time.Second, time.Second, 5*time.Second
		c := fcMemCache(t, hybrid.EntryOptions{
			Duration: duration, FailSafe: true, FailSafeThrottleDuration: throttle, FailSafeMaxDuration: maxDuration,
		})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "foo", 21)
		start := time.Now()
		var failedAt time.Duration
		for time.Since(start) < maxDuration+throttle {
			time.Sleep(throttle + 10*time.Millisecond)
			v, err := hybrid.GetOrSet(ctx, c, "foo", fusionFail[int](errFcSloths))
			if err != nil {
				if !errors.Is(err, errFcSloths) {
					t.Fatalf("err = %v, want the factory's", err)
				}
				failedAt = time.Since(start)
				break
			}
			if v != 21 {
				t.Fatalf("fallback = %d, want 21", v)
			}
		}
		if failedAt == 0 {
			t.Fatalf("the fallback was still served after %v (FailSafeMaxDuration %v)", time.Since(start), maxDuration)
		}
		if failedAt < maxDuration {
			t.Fatalf("the fallback ended at %v, before FailSafeMaxDuration %v", failedAt, maxDuration)
		}
	})
}

// MemoryLevelTests.CanRemoveByTag
func TestFusionCanRemoveByTag(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx := context.Background()
	xy, yz, xz := hybrid.WithTags("x", "y"), hybrid.WithTags("y", "z"), hybrid.WithTags("x", "z")
	_ = hybrid.Set(ctx, c, "foo", 1, xy)
	_ = hybrid.Set(ctx, c, "bar", 2, yz)
	fcWantGetOrSet(t, c, "baz", fusionValue(3), 3, xz)

	fcWantGetOrSet(t, c, "foo", fusionValue(11), 1, xy)
	fcWantGetOrSet(t, c, "bar", fusionValue(22), 2, yz)
	fcWantGetOrSet(t, c, "baz", fusionValue(33), 3, xz)

	if err := c.RemoveByTag(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	fcWantMiss[int](t, c, "foo")
	fcWantGetOrSet(t, c, "bar", fusionValue(222), 2, yz)
	fcWantGetOrSet(t, c, "baz", fusionValue(333), 333, xz)

	if err := c.RemoveByTag(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	fcWantGetOrSet(t, c, "foo", fusionValue(1111), 1111, xy)
	fcWantGetOrSet(t, c, "bar", fusionValue(2222), 2222, yz)
	fcWantGetOrSet(t, c, "baz", fusionValue(3333), 333, xz)
}

// MemoryLevelTests.CanClear: FusionCache's Clear() defaults to
// allowFailSafe = true; both kinds are checked here, with the fallback
// difference between them (docs/clear.md).
func TestFusionCanClear(t *testing.T) {
	for _, allowFailSafe := range []bool{true, false} {
		c := fcMemCache(t, hybrid.EntryOptions{FailSafe: true})
		ctx := context.Background()
		for i, k := range []string{"foo", "bar", "baz"} {
			_ = hybrid.Set(ctx, c, k, i+1, hybrid.WithDuration(10*time.Second))
			fcWantGet(t, c, k, i+1)
		}
		if err := c.Clear(ctx, allowFailSafe); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"foo", "bar", "baz"} {
			fcWantMiss[int](t, c, k)
		}
		v, err := hybrid.GetOrSet(ctx, c, "foo", fusionFail[int](errDB))
		if allowFailSafe && (err != nil || v != 1) {
			t.Fatalf("Clear(true): a failing factory got %d, %v; want the fallback 1", v, err)
		}
		if !allowFailSafe && !errors.Is(err, errDB) {
			t.Fatalf("Clear(false): a failing factory got %d, %v; want the error", v, err)
		}
		// An entry written after the Clear survives.
		_ = hybrid.Set(ctx, c, "qux", 4)
		fcWantGet(t, c, "qux", 4)
	}
}

// ---------------------------------------------------------------------------
// Memory + distributed (L1L2Tests.cs, L1L2BackplaneTests.cs), real Redis.

// fusionNode is one process's view of a cache named "app" on srv, with a
// backplane if bp is set.
func fusionNode(t *testing.T, client redis.UniversalClient, entry hybrid.EntryOptions, bp bool) *hybrid.Cache {
	t.Helper()
	return node(t, client, entry, func(o *hybrid.Options) {
		if !bp {
			return
		}
		b, err := backplane.NewRedis(client, backplane.RedisOptions{Channel: backplane.ChannelName("", "app"), Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		o.Backplane = b
		o.WaitForInitialBackplaneSubscribe = 5 * time.Second
	})
}

// L1L2Tests.ReturnsDataFromDistributedCacheIfNoDataInMemoryCache
func TestFusionL2ReturnsDataFromDistributedCacheIfNoDataInMemoryCache(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	n1 := fusionNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, false)
	fcWantGetOrSet(t, n1, "foo", fusionValue(42), 42, hybrid.WithDuration(10*time.Second))
	fcWantGetOrSet(t, n1, "foo", fusionValue(21), 42, hybrid.WithDuration(10*time.Second), fcSkipL1Read)
	fcWantGetOrSet(t, n2, "foo", fusionValue(21), 42, hybrid.WithDuration(10*time.Second))
}

// L1L2Tests.CanSkipDistributedCache
func TestFusionL2CanSkipDistributedCache(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	n1 := fusionNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, false)
	fs := []hybrid.Option{hybrid.WithDuration(10 * time.Second), hybrid.WithFailSafe(true)}
	fcWantGetOrSet(t, n1, "foo", fusionValue(1), 1, append(fs, fcSkipL2)...)
	fcWantGetOrSet(t, n2, "foo", fusionValue(2), 2, fs...)
	fcWantGetOrSet(t, n1, "bar", fusionValue(3), 3, fs...)
	fcWantGetOrSet(t, n2, "bar", fusionValue(4), 4, append(fs, fcSkipL2)...)
}

// L1L2Tests.MemoryExpirationAlignedWithDistributed: a node that takes an
// entry from L2 keeps it only until L2's expiration, whatever its own
// call's duration.
func TestFusionL2MemoryExpirationAlignedWithDistributed(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	n1 := fusionNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, false)
	first := time.Second
	ctx := context.Background()
	if err := hybrid.Set(ctx, n1, "foo", 21, hybrid.WithDuration(first)); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	fcWantGetOrSet(t, n2, "foo", fusionValue(42), 21, hybrid.WithDuration(10*time.Second))
	time.Sleep(time.Until(written.Add(first + 100*time.Millisecond))) // let L2's copy expire (time, not a condition)
	fcWantGetOrSet(t, n2, "foo", fusionValue(42), 42, hybrid.WithDuration(10*time.Second))
}

// L1L2Tests.HandlesDistributedCacheFailures: with L2 down, a failing
// factory still gets the stale value from memory.
func TestFusionL2HandlesDistributedCacheFailures(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	n1 := fusionNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, false)
	opts := []hybrid.Option{hybrid.WithDuration(300 * time.Millisecond), hybrid.WithFailSafe(true)}
	fcWantGetOrSet(t, n1, "foo", fusionValue(42), 42, opts...)
	redistest.Eventually(t, "the entry to expire", func() bool { _, ok := mustGet[int](t, n1, "foo"); return !ok })
	srv.Kill(t)
	fcWantGetOrSet(t, n1, "foo", fusionFail[int](errFcSloths), 42, opts...)
}

// L1L2Tests.AppliesDistributedCacheSoftTimeout: L2 slow (2s), a stale value
// in memory, L2 soft timeout 100ms: the stale value well before 2s.
func TestFusionL2AppliesDistributedCacheSoftTimeout(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	proxy := srv.Proxy(t)
	n1 := fusionNode(t, srv.FastClient(t, proxy.Addr()), hybrid.EntryOptions{}, false)
	ctx := context.Background()
	if err := hybrid.Set(ctx, n1, "foo", 42, hybrid.WithDuration(300*time.Millisecond), hybrid.WithFailSafe(true)); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "the entry to expire", func() bool { _, ok := mustGet[int](t, n1, "foo"); return !ok })
	proxy.SetLatency(2 * time.Second)
	defer proxy.SetLatency(0)
	start := time.Now()
	fcWantGetOrSet(t, n1, "foo", fusionFail[int](errFcSloths), 42, hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true),
		hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.L2SoftTimeout, o.L2HardTimeout = 100*time.Millisecond, time.Second }))
	if d := time.Since(start); d >= 2*time.Second {
		t.Fatalf("took %v: the L2 soft timeout was not applied", d)
	}
}

// L1L2Tests.AppliesDistributedCacheHardTimeout: L2 slow (2s), nothing in
// memory (a node that never held the key), hard timeout 1s: the L2 read is a
// miss at 1s and the failing factory's error is returned, before 2s.
func TestFusionL2AppliesDistributedCacheHardTimeout(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	proxy := srv.Proxy(t)
	n1 := fusionNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, false)
	n2 := fusionNode(t, srv.FastClient(t, proxy.Addr()), hybrid.EntryOptions{}, false)
	ctx := context.Background()
	if err := hybrid.Set(ctx, n1, "foo", 42, hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true)); err != nil {
		t.Fatal(err)
	}
	proxy.SetLatency(2 * time.Second)
	defer proxy.SetLatency(0)
	start := time.Now()
	_, err := hybrid.GetOrSet(ctx, n2, "foo", fusionFail[int](errFcSloths), hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true),
		hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.L2SoftTimeout, o.L2HardTimeout = 100*time.Millisecond, time.Second }))
	if !errors.Is(err, errFcSloths) {
		t.Fatalf("err = %v, want the factory's error", err)
	}
	if d := time.Since(start); d >= 2*time.Second {
		t.Fatalf("took %v: the L2 hard timeout was not applied", d)
	}
}

// L1L2Tests.FailSafeMaxDurationIsRespected (shortened), plus SPEC §3
// Fail-safe: the throttled fallback stays in L1 only and a node that never
// held the key falls back on L2's stale entry.
func TestFusionL2FailSafeFallbackAcrossNodes(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 300 * time.Millisecond, FailSafe: true, FailSafeThrottleDuration: time.Minute, FailSafeMaxDuration: time.Minute}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, false)
	n3 := fusionNode(t, srv.FastClient(t, ""), e, false)
	ctx := context.Background()
	if err := hybrid.Set(ctx, n1, "foo", 21); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "the entry to expire", func() bool { _, ok := mustGet[int](t, n1, "foo"); return !ok })
	fcWantGetOrSet(t, n1, "foo", fusionFail[int](errFcSloths), 21) // fallback, throttled in n1's memory
	fcWantGet(t, n1, "foo", 21)
	fcWantMiss[int](t, n2, "foo") // the throttled copy was not written to L2
	fcWantGet(t, n2, "foo", 21, fcAllowStale)
	fcWantGetOrSet(t, n3, "foo", fusionFail[int](errFcSloths), 21) // n3 never held it: L2's stale entry
}

// L1L2Tests.CanHandleEagerRefresh: the refreshed value reaches L2, so
// another node reading from L2 gets it.
func TestFusionL2CanHandleEagerRefresh(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 2 * time.Second, EagerRefreshThreshold: 0.2}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, false)
	var calls atomic.Int64
	f := func(context.Context, *hybrid.FactoryContext[int64]) (int64, error) { return calls.Add(1), nil }
	fcWantGetOrSet(t, n1, "foo", f, 1)
	time.Sleep(400*time.Millisecond + 10*time.Millisecond) // past the refresh point (time, not a condition)
	fcWantGetOrSet(t, n1, "foo", f, 1)                     // starts the refresh
	redistest.Eventually(t, "the eager refresh to store its value", func() bool {
		v, ok := mustGet[int64](t, n1, "foo")
		return ok && v == 2
	})
	fcWantGetOrSet(t, n2, "foo", f, 2)
	if n := calls.Load(); n != 2 {
		t.Fatalf("factory calls = %d, want 2", n)
	}
}

// L1L2Tests.CanRemoveByTag, with a backplane (L1L2BackplaneTests): without
// one, Strata documents that a running node keeps serving its fresh L1 copy
// (docs/tags.md, "Without a backplane, running nodes are not told"), which
// is where FusionCache's test waits for TagsMemoryCacheDurationOverride.
func TestFusionL2CanRemoveByTag(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Second}
	c1 := fusionNode(t, srv.FastClient(t, ""), e, true)
	c2 := fusionNode(t, srv.FastClient(t, ""), e, true)
	ctx := context.Background()
	xy, yz, xz := hybrid.WithTags("x", "y"), hybrid.WithTags("y", "z"), hybrid.WithTags("x", "z")

	_ = hybrid.Set(ctx, c1, "foo", 1, xy)
	_ = hybrid.Set(ctx, c1, "bar", 2, yz)
	fcWantGetOrSet(t, c2, "baz", fusionValue(3), 3, xz)

	fcWantGetOrSet(t, c2, "foo", fusionValue(11), 1, xy)
	fcWantGetOrSet(t, c2, "bar", fusionValue(22), 2, yz)
	fcWantGetOrSet(t, c1, "baz", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
		fc.SetTags("x", "z")
		return 33, nil
	}, 3)

	if err := c1.RemoveByTag(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	fcWantMiss[int](t, c1, "foo")
	fcWantGetOrSet(t, c1, "bar", fusionValue(222), 2, yz)
	redistest.Eventually(t, "c2 to learn tag x", func() bool {
		v, err := hybrid.GetOrSet(ctx, c2, "baz", fusionValue(333), xz)
		return err == nil && v == 333
	})

	if err := c2.RemoveByTag(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	fcWantGetOrSet(t, c2, "foo", fusionValue(1111), 1111, xy)
	fcWantGetOrSet(t, c2, "bar", fusionValue(2222), 2222, yz)
	fcWantGetOrSet(t, c1, "baz", fusionValue(3333), 333, xz)

	// A node that starts later honours both invalidations (SPEC §3, Tags).
	c3 := fusionNode(t, srv.FastClient(t, ""), e, false)
	fcWantGet(t, c3, "foo", 1111)
	fcWantGet(t, c3, "baz", 333)
}

// L1L2Tests.CanClear, with a backplane (see TestFusionL2CanRemoveByTag),
// plus a node that starts after the Clear.
func TestFusionL2CanClear(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute}
	c1 := fusionNode(t, srv.FastClient(t, ""), e, true)
	c2 := fusionNode(t, srv.FastClient(t, ""), e, true)
	ctx := context.Background()
	keys := []string{"foo", "bar", "baz"}
	for i, k := range keys {
		_ = hybrid.Set(ctx, c1, k, i+1)
	}
	for i, k := range keys {
		fcWantGet(t, c2, k, i+1)
	}
	if err := c1.Clear(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		fcWantMiss[int](t, c1, k)
	}
	redistest.Eventually(t, "c2 to learn the Clear", func() bool {
		for _, k := range keys {
			if _, ok := mustGet[int](t, c2, k); ok {
				return false
			}
		}
		return true
	})
	c3 := fusionNode(t, srv.FastClient(t, ""), e, false)
	for _, k := range keys {
		fcWantMiss[int](t, c3, k)
	}
	_ = hybrid.Set(ctx, c1, "foo", 4)
	fcWantGet(t, c3, "foo", 4)
}

// L1L2Tests / MemoryLevelTests.CanExpire and CanRemove across nodes: Expire
// leaves a stale fallback in L2; Remove leaves nothing.
func TestFusionL2ExpireAndRemove(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, FailSafe: true}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, false)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 42)
	_ = hybrid.Set(ctx, n1, "bar", 43)
	if err := n1.Expire(ctx, "foo"); err != nil {
		t.Fatal(err)
	}
	if err := n1.Remove(ctx, "bar"); err != nil {
		t.Fatal(err)
	}
	n2 := fusionNode(t, srv.FastClient(t, ""), e, false)
	fcWantMiss[int](t, n2, "foo")
	fcWantGet(t, n2, "foo", 42, fcAllowStale)
	fcWantGetOrSet(t, n2, "foo", fusionFail[int](errDB), 42)
	fcWantMiss[int](t, n2, "bar", fcAllowStale)
	if _, err := hybrid.GetOrSet(ctx, n2, "bar", fusionFail[int](errDB)); !errors.Is(err, errDB) {
		t.Fatalf("removed key: err = %v, want the factory's error (no fallback)", err)
	}
}

// ---------------------------------------------------------------------------
// Memory only, newer FusionCache scenarios (L1Tests_Async.cs)

// L1Tests.CanRemoveByTagMulti: several tags at once; an empty call changes
// nothing; a tag no entry carries is fine.
func TestFusionCanRemoveByTagMulti(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx := context.Background()
	_ = hybrid.Set(ctx, c, "foo", 1, hybrid.WithTags("x", "y"))
	_ = hybrid.Set(ctx, c, "bar", 2, hybrid.WithTags("y"))
	fcWantGetOrSet(t, c, "baz", fusionValue(3), 3, hybrid.WithTags("z"))
	fcWantGet(t, c, "foo", 1)
	fcWantGet(t, c, "bar", 2)
	fcWantGet(t, c, "baz", 3)
	if err := c.RemoveByTag(ctx, "x", "z"); err != nil {
		t.Fatal(err)
	}
	fcWantMiss[int](t, c, "foo")
	fcWantGet(t, c, "bar", 2)
	fcWantMiss[int](t, c, "baz")
	if err := c.RemoveByTag(ctx); err != nil {
		t.Fatalf("RemoveByTag with no tags: %v", err)
	}
	if err := c.RemoveByTag(ctx, []string{}...); err != nil {
		t.Fatalf("RemoveByTag with an empty slice: %v", err)
	}
	fcWantGet(t, c, "bar", 2)
	if err := c.RemoveByTag(ctx, "y", "non-existing"); err != nil {
		t.Fatal(err)
	}
	fcWantMiss[int](t, c, "foo")
	fcWantMiss[int](t, c, "bar")
	fcWantMiss[int](t, c, "baz")
}

// L1Tests.CanRemoveByTagWithChangingTags: an entry's tags are those of its
// latest write.
func TestFusionCanRemoveByTagWithChangingTags(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx := context.Background()
	fcWantGetOrSet(t, c, "foo", fusionValue(1), 1, hybrid.WithTags("t1", "t2"))
	_ = c.RemoveByTag(ctx, "t1")
	fcWantGetOrSet(t, c, "foo", fusionValue(2), 2, hybrid.WithTags("t1", "t2", "t3"))
	_ = c.RemoveByTag(ctx, "t3")
	fcWantGetOrSet(t, c, "foo", fusionValue(3), 3, hybrid.WithTags("t1"))
	_ = c.RemoveByTag(ctx, "t2")
	fcWantGetOrSet(t, c, "foo", fusionValue(4), 3)
	_ = c.RemoveByTag(ctx, "t1", "t2", "t3", "t4")
	fcWantGetOrSet(t, c, "foo", fusionValue(5), 5)
	_ = c.RemoveByTag(ctx, "t1", "t2", "t3", "t4")
	fcWantGet(t, c, "foo", 5)
}

// L1Tests.CanClearWithFailSafe: after Clear(true) the entry is a stale
// fallback (AllowStaleOnRead reads it); after Clear(false) it is gone.
func TestFusionCanClearWithFailSafe(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx := context.Background()
	_ = hybrid.Set(ctx, c, "foo", 1, hybrid.WithDuration(10*time.Second), hybrid.WithFailSafe(true))
	fcWantGet(t, c, "foo", 1, hybrid.WithFailSafe(true))
	if err := c.Clear(ctx, true); err != nil {
		t.Fatal(err)
	}
	fcWantMiss[int](t, c, "foo")
	fcWantGet(t, c, "foo", 1, fcAllowStale)
	if err := c.Clear(ctx, false); err != nil {
		t.Fatal(err)
	}
	fcWantMiss[int](t, c, "foo", fcAllowStale)
}

// L1Tests.CanSoftFailWithSoftTimeout: a factory that fails after the soft
// timeout: the caller got the stale value at the soft timeout, and the
// throttle keeps serving it.
func TestFusionCanSoftFailWithSoftTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		opts := []hybrid.Option{hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true)}
		fcWantGetOrSet(t, c, "foo", fusionValue(42), 42, opts...)
		time.Sleep(1100 * time.Millisecond)
		fcWantGetOrSet(t, c, "foo", func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
			time.Sleep(time.Second)
			return 0, errors.New("Some error")
		}, 42, append(opts, fcTimeouts(100*time.Millisecond, 0))...)
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		fcWantGet(t, c, "foo", 42) // throttled (30s by default)
	})
}

// L1Tests.CanHandleEagerRefreshWithTags: the eager refresh stores the
// entry with the hitting call's tags.
func TestFusionCanHandleEagerRefreshWithTags(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		duration, threshold := 4*time.Second, 0.2
		c := fcMemCache(t, hybrid.EntryOptions{Duration: duration, EagerRefreshThreshold: threshold})
		ctx := context.Background()
		fcWantGetOrSet(t, c, "foo", fusionValue[int64](1), 1)
		fcWantGetOrSet(t, c, "foo", fusionValue[int64](2), 1)
		time.Sleep(time.Duration(float64(duration)*threshold) + 10*time.Millisecond)
		fcWantGetOrSet(t, c, "foo", fusionValue[int64](3), 1, hybrid.WithTags("c", "d"))
		synctest.Wait()
		fcWantGetOrSet(t, c, "foo", fusionValue[int64](4), 3)
		if err := c.RemoveByTag(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		fcWantMiss[int64](t, c, "foo")
	})
}

// L1Tests.JitteringIsNotUsedWhenActivatingFailSafe: a fail-safe default
// value is returned, not cached; the next call runs the factory.
func TestFusionFailSafeDefaultValueIsNotCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: 180 * time.Minute, JitterMaxDuration: 30 * time.Minute, FailSafe: true})
		def := hybrid.WithFailSafeDefault(-1)
		fcWantGetOrSet(t, c, "foo", fusionFail[int](errors.New("test")), -1, def)
		time.Sleep(250 * time.Millisecond)
		fcWantGetOrSet(t, c, "foo", fusionValue(1), 1, def)
	})
}

// L1Tests.CanAccessCacheKeyInsideFactory
func TestFusionCanAccessCacheKeyInsideFactory(t *testing.T) {
	c := newCache(t, hybrid.Options{Name: "MyPrefix", Logger: quietLogger()})
	var key string
	fcWantGetOrSet(t, c, "foo", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
		key = fc.Key()
		return 42, nil
	}, 42)
	if key != "foo" {
		t.Fatalf("fc.Key() = %q, want foo", key)
	}
}

// L1Tests.SoftTimeoutDoesNotBreakStampedeProtection: a factory that timed
// out (soft) keeps the key: callers after the throttle window join it, no
// second factory starts.
func TestFusionSoftTimeoutDoesNotBreakStampedeProtection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: time.Second,
			FailSafeMaxDuration: time.Minute, FactorySoftTimeout: time.Second,
		})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "foo", 42)
		time.Sleep(time.Second)
		var calls atomic.Int64
		f := func(ctx context.Context, _ *hybrid.FactoryContext[int]) (int, error) {
			calls.Add(1)
			select {
			case <-time.After(10 * time.Second):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			return 42, nil
		}
		batch := func() {
			done := make(chan struct{})
			for range 10 {
				go func() {
					defer func() { done <- struct{}{} }()
					if v, err := hybrid.GetOrSet(ctx, c, "foo", f); err != nil || v != 42 {
						t.Errorf("GetOrSet = %d, %v", v, err)
					}
				}()
			}
			for range 10 {
				<-done
			}
		}
		batch()
		time.Sleep(time.Second)
		batch()
		if n := calls.Load(); n != 1 {
			t.Fatalf("factory calls = %d, want 1", n)
		}
	})
}

// L1Tests.EagerRefreshDoesNotBreakStampedeProtection: hits during a slow
// eager refresh start no second one.
func TestFusionEagerRefreshDoesNotBreakStampedeProtection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.1})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "foo", 42)
		time.Sleep(time.Second)
		var calls atomic.Int64
		f := func(ctx context.Context, _ *hybrid.FactoryContext[int]) (int, error) {
			calls.Add(1)
			time.Sleep(5 * time.Second)
			return 42, nil
		}
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) {
			fcWantGetOrSet(t, c, "foo", f, 42)
			time.Sleep(time.Millisecond) // let virtual time move between hits
		}
		synctest.Wait()
		if n := calls.Load(); n != 1 {
			t.Fatalf("factory calls = %d, want 1", n)
		}
	})
}

// L1Tests (jitter): each entry's duration is extended by a uniform amount
// in [0, Jitter) (SPEC §3 Jitter): never before Duration, never at or after
// Duration + Jitter, and the throttle window is not jittered.
func TestFusionJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		duration, jitter := 10*time.Second, 5*time.Second
		c := fcMemCache(t, hybrid.EntryOptions{Duration: duration, JitterMaxDuration: jitter, FailSafe: true, FailSafeThrottleDuration: 3 * time.Second})
		ctx := context.Background()
		const n = 100
		keys := make([]string, n)
		for i := range keys {
			keys[i] = "k" + string(rune('A'+i%26)) + string(rune('a'+i/26))
			_ = hybrid.Set(ctx, c, keys[i], i)
		}
		count := func() int {
			h := 0
			for _, k := range keys {
				if _, ok := mustGet[int](t, c, k); ok {
					h++
				}
			}
			return h
		}
		time.Sleep(duration - time.Nanosecond)
		if h := count(); h != n {
			t.Fatalf("just before Duration: %d of %d fresh", h, n)
		}
		time.Sleep(jitter + time.Nanosecond)
		if h := count(); h != 0 {
			t.Fatalf("at Duration+Jitter: %d of %d still fresh", h, n)
		}
		// Fallbacks: each throttled copy is fresh for exactly 3s.
		for _, k := range keys {
			fcWantGetOrSet(t, c, k, fusionFail[int](errDB), 0+fcIndexOf(keys, k))
		}
		time.Sleep(3*time.Second - time.Nanosecond)
		if h := count(); h != n {
			t.Fatalf("just before the throttle's end: %d of %d fresh", h, n)
		}
		time.Sleep(time.Nanosecond)
		if h := count(); h != 0 {
			t.Fatalf("at the throttle's end: %d of %d still fresh (jitter applied to the throttle?)", h, n)
		}
	})
}

func fcIndexOf(s []string, k string) int {
	for i, x := range s {
		if x == k {
			return i
		}
	}
	return -1
}

// FusionCache's "not found" has no direct test, but FusionCache users cache
// nulls. Strata's documented equivalent (docs/getorset.md, Caching "not
// found"): fc.NotFound() with NotFoundDuration caches ErrNotFound.
func TestFusionNotFoundIsCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{NotFoundDuration: time.Minute})
		ctx := context.Background()
		var calls atomic.Int64
		f := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
			calls.Add(1)
			return fc.NotFound()
		}
		for range 3 {
			if _, err := hybrid.GetOrSet(ctx, c, "foo", f); !errors.Is(err, hybrid.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("factory calls = %d, want 1", n)
		}
		fcWantMiss[int](t, c, "foo")
		time.Sleep(time.Minute)
		_, _ = hybrid.GetOrSet(ctx, c, "foo", f)
		if n := calls.Load(); n != 2 {
			t.Fatalf("factory calls after NotFoundDuration = %d, want 2", n)
		}
		_ = hybrid.Set(ctx, c, "foo", 7)
		fcWantGetOrSet(t, c, "foo", f, 7)
	})
}

// ---------------------------------------------------------------------------
// More ported scenarios (peer_probe_test.go)

// L1Tests.CanRemoveByTag (a write right after the invalidation, at the same clock reading, survives: docs/tags.md "An entry written after the call is not affected")
func TestFusionSetAfterRemoveByTagSameInstant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "foo", 1, hybrid.WithTags("x"))
		_ = c.RemoveByTag(ctx, "x")
		_ = hybrid.Set(ctx, c, "foo", 2, hybrid.WithTags("x"))
		fcWantGet(t, c, "foo", 2)
	})
}

// L1Tests.CanClear (docs/clear.md "An entry written after the Clear survives")
func TestFusionSetAfterClearSameInstant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "foo", 1)
		_ = c.Clear(ctx, false)
		_ = hybrid.Set(ctx, c, "foo", 2)
		fcWantGet(t, c, "foo", 2)
		_ = c.Clear(ctx, true)
		fcWantGetOrSet(t, c, "foo", fusionValue(3), 3)
		fcWantGet(t, c, "foo", 3)
	})
}

// L1Tests.CanRemove / CanExpire ("A Set after Remove is visible at once", docs/getorset.md)
func TestFusionSetAfterRemoveSameInstant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "foo", 1)
		_ = c.Remove(ctx, "foo")
		_ = hybrid.Set(ctx, c, "foo", 2)
		fcWantGet(t, c, "foo", 2)
		_ = c.Expire(ctx, "foo")
		_ = hybrid.Set(ctx, c, "foo", 3)
		fcWantGet(t, c, "foo", 3)
		_ = c.Expire(ctx, "foo")
		fcWantGetOrSet(t, c, "foo", fusionValue(4), 4)
		fcWantGet(t, c, "foo", 4)
	})
}

// L1Tests.CanSkipMemoryCacheReadWrite (GetOrSet with SkipL1Read does not answer from memory)
func TestFusionGetOrSetSkipL1Read(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx := context.Background()
	_ = hybrid.Set(ctx, c, "foo", 1)
	fcWantGetOrSet(t, c, "foo", fusionValue(2), 2, fcSkipL1Read)
}

// L1Tests.ThrowsOnFactoryHardTimeoutWithoutStaleData, with a stale value: hard (100ms) shorter than soft (2s) serves the stale value at the hard timeout (docs/fcTimeouts.md table)
func TestFusionHardShorterThanSoftWithStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		_ = hybrid.Set(context.Background(), c, "foo", 42, hybrid.WithDuration(time.Second), hybrid.WithFailSafe(true))
		time.Sleep(1100 * time.Millisecond)
		start := time.Now()
		fcWantGetOrSet(t, c, "foo", fusionSlow(time.Second, 21), 42, hybrid.WithFailSafe(true), fcTimeouts(2*time.Second, 100*time.Millisecond))
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("after %v", d)
		}
		synctest.Wait()
	})
}

// L1Tests.FactoryTimedOutButSuccessfulDoesUpdateCachedValue, hard timeout and no stale value
func TestFusionHardTimeoutBackgroundCompletionNoStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		_, err := hybrid.GetOrSet(context.Background(), c, "foo", fusionSlow(time.Second, 21), fcTimeouts(0, 100*time.Millisecond))
		if !errors.Is(err, hybrid.ErrFactoryTimeout) {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		fcWantGet(t, c, "foo", 21)
	})
}

// L1Tests.SetFactoryTimeoutsMs(keepTimedOutFactoryResult: false) (docs/fcTimeouts.md, DisableBackgroundCompletion: the key is released, the result discarded)
func TestFusionDisableBackgroundCompletionReleasesKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		var calls atomic.Int64
		f := func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
			n := calls.Add(1)
			time.Sleep(time.Second) // ignores ctx
			return int(n), nil
		}
		o := hybrid.WithOptions(func(o *hybrid.EntryOptions) {
			o.FactoryHardTimeout = 100 * time.Millisecond
			o.DisableBackgroundCompletion = true
		})
		if _, err := hybrid.GetOrSet(context.Background(), c, "foo", f, o); !errors.Is(err, hybrid.ErrFactoryTimeout) {
			t.Fatal(err)
		}
		if _, err := hybrid.GetOrSet(context.Background(), c, "foo", f, o); !errors.Is(err, hybrid.ErrFactoryTimeout) {
			t.Fatal(err)
		}
		if n := calls.Load(); n != 2 {
			t.Fatalf("calls = %d, want 2 (key released)", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		fcWantMiss[int](t, c, "foo")
	})
}

// L1Tests.ThrottleDurationWorksCorrectly + CanExpire (an Expire applies to a throttled copy)
func TestFusionExpireAfterThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: time.Second, FailSafe: true})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "foo", 1)
		time.Sleep(2 * time.Second)
		var k counter
		f := func(context.Context, *hybrid.FactoryContext[int]) (int, error) { k.calls.Add(1); return 0, errDB }
		fcWantGetOrSet(t, c, "foo", f, 1)
		fcWantGetOrSet(t, c, "foo", f, 1)
		if k.calls.Load() != 1 {
			t.Fatal("throttle")
		}
		_ = c.Expire(ctx, "foo")
		fcWantGetOrSet(t, c, "foo", f, 1)
		if n := k.calls.Load(); n != 2 {
			t.Fatalf("calls after Expire = %d, want 2", n)
		}
	})
}

// CacheStampedeTests / docs/getorset.md Set: a Set during a load wins
func TestFusionSetDuringLoadWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		ctx := context.Background()
		done := make(chan int)
		go func() { v, _ := hybrid.GetOrSet(ctx, c, "foo", fusionSlow(time.Second, 1)); done <- v }()
		time.Sleep(100 * time.Millisecond)
		_ = hybrid.Set(ctx, c, "foo", 2)
		fcWantGet(t, c, "foo", 2)
		fcWantGetOrSet(t, c, "foo", fusionValue(3), 2)
		if v := <-done; v != 1 {
			t.Fatalf("waiter got %d", v)
		}
		fcWantGet(t, c, "foo", 2)
	})
}

// L1Tests.CanRemove during a load (SPEC §3 Timestamps: an old value cannot come back)
func TestFusionRemoveDuringLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		ctx := context.Background()
		done := make(chan int)
		go func() { v, _ := hybrid.GetOrSet(ctx, c, "foo", fusionSlow(time.Second, 1)); done <- v }()
		time.Sleep(100 * time.Millisecond)
		_ = c.Remove(ctx, "foo")
		<-done
		fcWantMiss[int](t, c, "foo")
		fcWantGetOrSet(t, c, "foo", fusionValue(3), 3)
	})
}

// L1Tests.CanHandleEagerRefresh with a Set during the refresh (newest wins)
func TestFusionSetDuringEagerRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "foo", 1)
		time.Sleep(6 * time.Second)
		fcWantGetOrSet(t, c, "foo", fusionSlow(time.Second, 2), 1)
		time.Sleep(100 * time.Millisecond)
		_ = hybrid.Set(ctx, c, "foo", 3)
		time.Sleep(time.Second)
		synctest.Wait()
		fcWantGet(t, c, "foo", 3)
	})
}

// L1Tests.CanCancelAnOperation with a ctx already cancelled
func TestFusionCancelledCtx(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var k counter
	if _, err := hybrid.GetOrSet(ctx, c, "foo", k.factory("x", nil)); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if k.calls.Load() != 0 {
		t.Fatal("factory ran")
	}
}

// L1Tests.CanRemoveByTag with default tags and ctx.Tags (docs/tags.md, Tagging entries)
func TestFusionTagsReplaceDefaults(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{Tags: []string{"all"}})
	ctx := context.Background()
	_ = hybrid.Set(ctx, c, "a", 1)
	_ = hybrid.Set(ctx, c, "b", 2, hybrid.WithTags("x"))
	fcWantGetOrSet(t, c, "c", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) { fc.SetTags("y"); return 3, nil }, 3, hybrid.WithTags("x"))
	_ = c.RemoveByTag(ctx, "all")
	fcWantMiss[int](t, c, "a")
	fcWantGet(t, c, "b", 2)
	fcWantGet(t, c, "c", 3)
	_ = c.RemoveByTag(ctx, "x")
	fcWantMiss[int](t, c, "b")
	fcWantGet(t, c, "c", 3)
	_ = c.RemoveByTag(ctx, "y")
	fcWantMiss[int](t, c, "c")
}

// L1Tests.HandlesFlexibleSimpleTypeConversions (Go: docs/getorset.md Traps, a stale entry of another type is replaced)
func TestFusionTypeMismatchStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: time.Second, FailSafe: true})
		_ = hybrid.Set(context.Background(), c, "foo", 1)
		time.Sleep(2 * time.Second)
		fcWantGetOrSet(t, c, "foo", fusionValue("s"), "s")
		if _, err := hybrid.GetOrSet(context.Background(), c, "foo", fusionValue(5)); !errors.Is(err, hybrid.ErrTypeMismatch) {
			t.Fatal(err)
		}
	})
}

// L1Tests.GetOrDefaultDoesNotReturnStaleDataWithoutFailSafe (an entry written without fail-safe is no fallback)
func TestFusionAllowStaleNoFailSafeWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: time.Second})
		_ = hybrid.Set(context.Background(), c, "foo", 1)
		time.Sleep(2 * time.Second)
		fcWantMiss[int](t, c, "foo", fcAllowStale)
		if _, err := hybrid.GetOrSet(context.Background(), c, "foo", fusionFail[int](errDB), hybrid.WithFailSafe(true)); !errors.Is(err, errDB) {
			t.Fatal(err)
		}
	})
}

// ---------------------------------------------------------------------------
// More ported scenarios (peer_probe2_test.go)

// L1L2BackplaneTests (Set, Expire, Remove reach the other nodes)
func TestFusionL2BackplaneExpireRemoveSet(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, FailSafe: true}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, true)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, true)
	n3 := fusionNode(t, srv.FastClient(t, ""), e, true)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 1)
	fcWantGet(t, n2, "foo", 1)
	fcWantGet(t, n3, "foo", 1)
	_ = hybrid.Set(ctx, n1, "foo", 2)
	redistest.Eventually(t, "n2, n3 see 2", func() bool {
		a, _ := mustGet[int](t, n2, "foo")
		b, _ := mustGet[int](t, n3, "foo")
		return a == 2 && b == 2
	})
	_ = n1.Expire(ctx, "foo")
	redistest.Eventually(t, "n2, n3 see the expiry", func() bool {
		_, a := mustGet[int](t, n2, "foo")
		_, b := mustGet[int](t, n3, "foo")
		return !a && !b
	})
	fcWantGet(t, n2, "foo", 2, fcAllowStale)
	fcWantGetOrSet(t, n3, "foo", fusionFail[int](errDB), 2)
	_ = hybrid.Set(ctx, n1, "bar", 5)
	fcWantGet(t, n2, "bar", 5)
	_ = n2.Remove(ctx, "bar")
	redistest.Eventually(t, "n1 sees the removal", func() bool { _, ok := mustGet[int](t, n1, "bar", fcAllowStale); return !ok })
	if _, err := hybrid.GetOrSet(ctx, n1, "bar", fusionFail[int](errDB)); !errors.Is(err, errDB) {
		t.Fatal(err)
	}
}

// L1L2Tests.CanExecuteBackgroundDistributedCacheOperations
func TestFusionL2BackgroundOperations(t *testing.T) {
	srv := redistest.Start(t)
	proxy := srv.Proxy(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Second, BackgroundL2Operations: true}
	n1 := fusionNode(t, srv.FastClient(t, proxy.Addr()), e, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, false)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 21)
	redistest.Eventually(t, "21 in L2", func() bool { v, ok := mustGet[int](t, n2, "foo", fcSkipL1Read); return ok && v == 21 })
	proxy.SetLatency(time.Second)
	start := time.Now()
	_ = hybrid.Set(ctx, n1, "foo", 42)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Set took %v with background L2 operations", d)
	}
	fcWantGet(t, n1, "foo", 42)
	fcWantGet(t, n2, "foo", 21, fcSkipL1Read)
	redistest.Eventually(t, "42 in L2", func() bool { v, ok := mustGet[int](t, n2, "foo", fcSkipL1Read); return ok && v == 42 })
	proxy.SetLatency(0)
}

// L1L2Tests.CanSkipDistributedCache (SkipL2Write / SkipL2Read on Set, Remove, GetOrSet)
func TestFusionL2SkipWrites(t *testing.T) {
	srv := redistest.Start(t)
	n1 := fusionNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, false)
	ctx := context.Background()
	skipW := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Write = true })
	skipR := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true })
	_ = hybrid.Set(ctx, n1, "foo", 1, skipW)
	fcWantGet(t, n1, "foo", 1)
	fcWantMiss[int](t, n2, "foo")
	_ = hybrid.Set(ctx, n1, "foo", 2)
	fcWantMiss[int](t, n2, "bar", skipR)
	fcWantGet(t, n2, "foo", 2, fcSkipL1)
	_ = n1.Remove(ctx, "foo", skipW)
	fcWantMiss[int](t, n1, "foo")
	fcWantGet(t, n2, "foo", 2, fcSkipL1)
	// Deliberate difference: FusionCache's local-only Remove lets the next
	// read take L2's copy (2). In Strata the removal is a timestamped
	// tombstone, "a miss for every read" (docs/getorset.md, Remove), and
	// "in every conflict (L1 against L2 ...) the newer timestamp wins"
	// (SPEC §3): L2's older copy is refused on this node, the factory runs.
	fcWantMiss[int](t, n1, "foo", fcSkipL1Read)
	fcWantGetOrSet(t, n1, "foo", fusionValue(3), 3)
	_ = hybrid.Set(ctx, n1, "q", 9, fcSkipL1Write)
	fcWantGet(t, n1, "q", 9) // read L2 (L1 miss)
	fcWantMiss[int](t, n1, "q2", skipR)
	fcWantGetOrSet(t, n2, "q", fusionValue(10), 9)
	fcWantGetOrSet(t, n2, "q", fusionValue(10), 10, skipR, fcSkipL1Read)
}

// L1L2Tests.MemoryExpirationAlignedWithDistributed (FusionCache MemoryCacheDuration ~ Strata L1Duration)
func TestFusionL2L1Duration(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Minute, L1Duration: 300 * time.Millisecond}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, false)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 1)
	fcWantGet(t, n2, "foo", 1)
	_ = hybrid.Set(ctx, n1, "foo", 2)
	fcWantGet(t, n2, "foo", 1)
	redistest.Eventually(t, "n2 sees 2", func() bool { v, _ := mustGet[int](t, n2, "foo"); return v == 2 })
}

// AutoRecoveryTests (a Set while L2 is unreachable is replayed)
func TestFusionL2AutoRecovery(t *testing.T) {
	srv := redistest.Start(t)
	proxy := srv.Proxy(t)
	e := hybrid.EntryOptions{Duration: time.Minute, L2HardTimeout: 200 * time.Millisecond}
	n1 := fusionNode(t, srv.FastClient(t, proxy.Addr()), e, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, false)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 1)
	fcWantGet(t, n2, "foo", 1, fcSkipL1)
	proxy.Pause()
	_ = hybrid.Set(ctx, n1, "foo", 2)
	fcWantGet(t, n1, "foo", 2)
	proxy.ResetAll()
	proxy.Resume()
	redistest.Eventually(t, "2 replayed to L2", func() bool { v, _ := mustGet[int](t, n2, "foo", fcSkipL1); return v == 2 })
}

// ---------------------------------------------------------------------------
// More ported scenarios (peer_probe3_test.go)

// L1L2Tests CanExpire from a node that never held the key (docs/getorset.md Expire)
func TestFusionExpireOnNodeWithoutCopy(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Minute, FailSafe: true}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, false)
	n3 := fusionNode(t, srv.FastClient(t, ""), e, false)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 1)
	if err := n2.Expire(ctx, "foo"); err != nil {
		t.Fatal(err)
	}
	fcWantMiss[int](t, n3, "foo")
	fcWantGet(t, n3, "foo", 1, fcAllowStale)
	fcWantGetOrSet(t, n2, "foo", fusionFail[int](errDB), 1)
	fcWantGetOrSet(t, n3, "foo", fusionFail[int](errDB), 1)
}

// L1L2Tests soft timeout with the stale value only in L2 (docs/fcTimeouts.md)
func TestFusionSoftTimeoutWithStaleFromL2(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 300 * time.Millisecond, FailSafe: true}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, false)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 1)
	redistest.Eventually(t, "expiry", func() bool { _, ok := mustGet[int](t, n1, "foo"); return !ok })
	release := make(chan struct{})
	slow := func(context.Context, *hybrid.FactoryContext[int]) (int, error) { <-release; return 2, nil }
	start := time.Now()
	fcWantGetOrSet(t, n2, "foo", slow, 1, fcTimeouts(100*time.Millisecond, 0))
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
	close(release)
	redistest.Eventually(t, "background value in L2", func() bool { v, _ := mustGet[int](t, n1, "foo", fcSkipL1); return v == 2 })
	redistest.Eventually(t, "background value in n2", func() bool { v, _ := mustGet[int](t, n2, "foo"); return v == 2 })
}

// L1L2BackplaneTests: a throttled fallback yields to another node's Set
func TestFusionThrottledCopyReplacedByRemoteSet(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 300 * time.Millisecond, FailSafe: true, FailSafeThrottleDuration: time.Minute}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, true)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, true)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 1)
	redistest.Eventually(t, "expiry", func() bool { _, ok := mustGet[int](t, n1, "foo"); return !ok })
	fcWantGetOrSet(t, n1, "foo", fusionFail[int](errDB), 1)
	_ = hybrid.Set(ctx, n2, "foo", 2, hybrid.WithDuration(time.Minute))
	redistest.Eventually(t, "n1 sees n2's Set over its throttled copy", func() bool { v, _ := mustGet[int](t, n1, "foo"); return v == 2 })
}

// L1L2BackplaneTests eager refresh (its result replaces the entry everywhere, SPEC §3)
func TestFusionEagerRefreshAcrossBackplane(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 2 * time.Second, EagerRefreshThreshold: 0.2}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, true)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, true)
	var calls atomic.Int64
	f := func(context.Context, *hybrid.FactoryContext[int64]) (int64, error) { return calls.Add(1), nil }
	fcWantGetOrSet(t, n1, "foo", f, 1)
	fcWantGet(t, n2, "foo", int64(1))
	time.Sleep(450 * time.Millisecond)
	fcWantGetOrSet(t, n1, "foo", f, 1)
	redistest.Eventually(t, "n2 sees the refreshed value", func() bool { v, _ := mustGet[int64](t, n2, "foo"); return v == 2 })
}

// L1L2Tests.CanClear / CanClearWithFailSafe across nodes
func TestFusionClearFalseAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Minute, FailSafe: true}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, true)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, true)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 1)
	fcWantGet(t, n2, "foo", 1)
	_ = n1.Clear(ctx, false)
	redistest.Eventually(t, "n2 learns", func() bool { _, ok := mustGet[int](t, n2, "foo", fcAllowStale); return !ok })
	if _, err := hybrid.GetOrSet(ctx, n2, "foo", fusionFail[int](errDB)); !errors.Is(err, errDB) {
		t.Fatal(err)
	}
	n3 := fusionNode(t, srv.FastClient(t, ""), e, false)
	fcWantMiss[int](t, n3, "foo", fcAllowStale)
	if _, err := hybrid.GetOrSet(ctx, n3, "foo", fusionFail[int](errDB)); !errors.Is(err, errDB) {
		t.Fatal(err)
	}
	_ = n1.Clear(ctx, true)
	n4 := fusionNode(t, srv.FastClient(t, ""), e, false)
	fcWantMiss[int](t, n4, "foo", fcAllowStale)
	_ = hybrid.Set(ctx, n1, "foo", 2)
	fcWantGet(t, n4, "foo", 2)
	_ = n1.Clear(ctx, true)
	n5 := fusionNode(t, srv.FastClient(t, ""), e, false)
	fcWantMiss[int](t, n5, "foo")
	fcWantGet(t, n5, "foo", 2, fcAllowStale)
	fcWantGetOrSet(t, n5, "foo", fusionFail[int](errDB), 2)
}

// L1L2Tests hard timeout with the stale value only in L2
func TestFusionHardTimeoutStaleFromL2(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 300 * time.Millisecond, FailSafe: true}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, false)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 1)
	redistest.Eventually(t, "expiry", func() bool { _, ok := mustGet[int](t, n1, "foo"); return !ok })
	release := make(chan struct{})
	defer close(release)
	slow := func(context.Context, *hybrid.FactoryContext[int]) (int, error) { <-release; return 2, nil }
	fcWantGetOrSet(t, n2, "foo", slow, 1, fcTimeouts(0, 200*time.Millisecond))
}

// ---------------------------------------------------------------------------
// More ported scenarios (peer_probe4_test.go)

// L1Tests.CanRemoveByTag racing a load (docs/tags.md: the load's value is already invalidated)
func TestFusionLoadRacingRemoveByTag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{})
		ctx := context.Background()
		done := make(chan int)
		go func() {
			v, _ := hybrid.GetOrSet(ctx, c, "foo", fusionSlow(time.Second, 1), hybrid.WithTags("x"))
			done <- v
		}()
		time.Sleep(100 * time.Millisecond)
		_ = c.RemoveByTag(ctx, "x")
		if v := <-done; v != 1 {
			t.Fatalf("caller got %d", v)
		}
		fcWantMiss[int](t, c, "foo")
	})
}

// L1Tests.CanExpire racing a load (docs/getorset.md Expire)
func TestFusionExpireDuringLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{FailSafe: true})
		ctx := context.Background()
		done := make(chan int)
		go func() { v, _ := hybrid.GetOrSet(ctx, c, "foo", fusionSlow(time.Second, 1)); done <- v }()
		time.Sleep(100 * time.Millisecond)
		_ = c.Expire(ctx, "foo")
		<-done
		fcWantMiss[int](t, c, "foo")
		fcWantGetOrSet(t, c, "foo", fusionValue(2), 2)
	})
}

// L1Tests.FactoryTimedOutButSuccessfulDoesUpdateCachedValue with a Set meanwhile (docs/fcTimeouts.md: a newer Set wins)
func TestFusionSetDuringBackgroundCompletion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: time.Second, FailSafe: true, FactorySoftTimeout: 100 * time.Millisecond})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "foo", 1)
		time.Sleep(2 * time.Second)
		fcWantGetOrSet(t, c, "foo", fusionSlow(time.Second, 2), 1)
		_ = hybrid.Set(ctx, c, "foo", 3, hybrid.WithDuration(time.Minute))
		fcWantGet(t, c, "foo", 3)
		time.Sleep(time.Second)
		synctest.Wait()
		fcWantGet(t, c, "foo", 3)
	})
}

// L1Tests.CanHandleConditionalRefresh (HasStaleValue after eager refresh, Expire, Remove, Clear)
func TestFusionStaleInFactory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: 10 * time.Second, FailSafe: true, EagerRefreshThreshold: 0.5})
		ctx := context.Background()
		var got []int
		var has []bool
		f := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
			v, ok := fc.Stale()
			got, has = append(got, v), append(has, ok)
			return len(got) * 10, nil
		}
		fcWantGetOrSet(t, c, "foo", f, 10) // no stale
		time.Sleep(6 * time.Second)
		fcWantGetOrSet(t, c, "foo", f, 10) // eager: stale = 10
		synctest.Wait()
		fcWantGet(t, c, "foo", 20)
		_ = c.Expire(ctx, "foo")
		fcWantGetOrSet(t, c, "foo", f, 30) // stale = 20
		_ = c.Remove(ctx, "foo")
		fcWantGetOrSet(t, c, "foo", f, 40) // none
		_ = c.Clear(ctx, false)
		fcWantGetOrSet(t, c, "foo", f, 50) // none
		_ = c.Clear(ctx, true)
		time.Sleep(time.Millisecond)
		fcWantGetOrSet(t, c, "foo", f, 60) // stale = 50
		want := []bool{false, true, true, false, false, true}
		wantV := []int{0, 10, 20, 0, 0, 50}
		for i := range want {
			if has[i] != want[i] || got[i] != wantV[i] {
				t.Fatalf("call %d: Stale() = %d, %v; want %d, %v", i, got[i], has[i], wantV[i], want[i])
			}
		}
	})
}

// L1Tests.CanRemoveByTagMulti with an invalid tag (docs/tags.md Validation)
func TestFusionInvalidTag(t *testing.T) {
	c := fcMemCache(t, hybrid.EntryOptions{})
	ctx := context.Background()
	_ = hybrid.Set(ctx, c, "foo", 1, hybrid.WithTags("x"))
	if err := c.RemoveByTag(ctx, "x", ""); !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Fatal(err)
	}
	fcWantGet(t, c, "foo", 1)
	if err := hybrid.Set(ctx, c, "foo", 2, hybrid.WithTags("")); !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Fatal(err)
	}
	fcWantGet(t, c, "foo", 1)
}

// L1Tests.GetOrDefaultDoesReturnStaleDataWithFailSafe via TryGetInfo (Stale flag, Created)
func TestFusionTryGetInfo(t *testing.T) {
	func() {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: 50 * time.Millisecond, FailSafe: true})
		ctx := context.Background()
		created := time.Now()
		_ = hybrid.Set(ctx, c, "foo", 1)
		time.Sleep(100 * time.Millisecond)
		v, info, ok, err := hybrid.TryGetInfo[int](ctx, c, "foo", fcAllowStale)
		if d := info.Created.Sub(created); err != nil || !ok || v != 1 || !info.Stale || d < 0 || d > 10*time.Millisecond {
			t.Fatalf("%v %+v %v %v (created %v)", v, info, ok, err, created)
		}
	}()
}

// L1Tests.SoftTimeoutDoesNotBreakStampedeProtection: a joiner has its own timers (docs/getorset.md step 2)
func TestFusionJoinerSoftTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fcMemCache(t, hybrid.EntryOptions{Duration: time.Second, FailSafe: true})
		ctx := context.Background()
		_ = hybrid.Set(ctx, c, "foo", 1)
		time.Sleep(2 * time.Second)
		// Leader without fcTimeouts, a joiner with a soft timeout: the joiner
		// gets the stale value at its own soft timeout.
		go hybrid.GetOrSet(ctx, c, "foo", fusionSlow(5*time.Second, 2))
		time.Sleep(10 * time.Millisecond)
		start := time.Now()
		fcWantGetOrSet(t, c, "foo", fusionSlow(5*time.Second, 3), 1, fcTimeouts(100*time.Millisecond, 0))
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("joiner waited %v", d)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		fcWantGet(t, c, "foo", 2)
	})
}

// ---------------------------------------------------------------------------
// More ported scenarios (peer_probe5_test.go)

// L1L2Tests.CanHandleConditionalRefresh across nodes (ETag travels in L2)
func TestFusionConditionalRefreshAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 300 * time.Millisecond, FailSafe: true}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, false)
	ep := &fcFakeEndpoint{value: 1, version: 1}
	f := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) { return ep.get(fc) }
	fcWantGetOrSet(t, n1, "foo", f, 1)
	redistest.Eventually(t, "expiry", func() bool { _, ok := mustGet[int](t, n1, "foo"); return !ok })
	fcWantGetOrSet(t, n2, "foo", f, 1)
	if ep.full != 1 || ep.notModResp != 1 {
		t.Fatalf("full %d notmod %d; want 1, 1 (n2 revalidates with n1's ETag from L2)", ep.full, ep.notModResp)
	}
	_, info, ok, _ := hybrid.TryGetInfo[int](context.Background(), n1, "foo", fcSkipL1Read)
	if !ok || info.ETag != "v1" {
		t.Fatalf("L2 info %+v %v", info, ok)
	}
}

// L1L2BackplaneTests with SkipBackplane
func TestFusionSkipBackplane(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Minute}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, true)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, true)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 1)
	_ = hybrid.Set(ctx, n1, "marker", 0)
	fcWantGet(t, n2, "foo", 1)
	fcWantGet(t, n2, "marker", 0)
	_ = hybrid.Set(ctx, n1, "foo", 2, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipBackplane = true }))
	_ = hybrid.Set(ctx, n1, "marker", 1)
	redistest.Eventually(t, "n2 got the marker message", func() bool { v, ok := mustGet[int](t, n2, "marker", fcSkipL2); return !ok || v == 1 })
	fcWantGet(t, n2, "foo", 1)
	fcWantGet(t, n2, "foo", 2, fcSkipL1Read)
}

// L1Tests.HandlesFlexibleSimpleTypeConversions across nodes. Deliberate
// difference from the memory tier's ErrTypeMismatch: an L2 envelope "that
// holds another type ... is a miss" (docs/l2.md; SPEC §3 L2 envelope), so
// the reader's factory runs and its value replaces the entry.
func TestFusionL2TypeAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Minute}
	n1 := fusionNode(t, srv.FastClient(t, ""), e, false)
	n2 := fusionNode(t, srv.FastClient(t, ""), e, false)
	ctx := context.Background()
	_ = hybrid.Set(ctx, n1, "foo", 1)
	fcWantMiss[string](t, n2, "foo")
	fcWantGetOrSet(t, n2, "foo", fusionValue("x"), "x")
	fcWantMiss[int](t, n1, "foo", fcSkipL1Read)
	fcWantGet(t, n1, "foo", "x", fcSkipL1Read)
}
