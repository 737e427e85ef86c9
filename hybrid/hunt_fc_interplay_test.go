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

// TestHuntPanicAfterLeaderCancelled: the caller that started a load stops
// waiting (its ctx ends) and the factory then panics. The panic must not
// crash the process (nobody is left to re-raise it to), the caller still
// waiting gets ErrFactoryPanic, nothing is stored, and the key loads again.
// A stale fail-safe value present meanwhile is not served for the panic
// (docs/failsafe.md: "A factory panic is never answered with a fallback")
// but stays a fallback for the next load's error.
func TestHuntPanicAfterLeaderCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Second, FailSafe: true}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		release := make(chan struct{})
		panicky := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			<-release
			panic("boom")
		}
		lctx, cancel := context.WithCancel(ctx)
		leader := make(chan error, 1)
		go func() {
			_, err := hybrid.GetOrSet(lctx, c, "k", panicky)
			leader <- err
		}()
		synctest.Wait()
		joiner := make(chan error, 1)
		go func() {
			_, err := hybrid.GetOrSet(ctx, c, "k", panicky)
			joiner <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-leader; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled leader: err = %v, want context.Canceled", err)
		}
		close(release)
		if err := <-joiner; !errors.Is(err, hybrid.ErrFactoryPanic) {
			t.Fatalf("joiner: err = %v, want ErrFactoryPanic", err)
		}
		if v, err := hybrid.GetOrSet(ctx, c, "k", fusionFail[string](errDB)); err != nil || v != "old" {
			t.Fatalf("after the panic, a failing factory = %q, %v; want the stale value", v, err)
		}
	})
}

// TestHuntAllCallersCancelledLoadStillFills: every caller of a load gives
// up; the load goes on and fills the cache (docs/getorset.md, the miss
// path, 2.), and a caller arriving while it runs joins it: one factory
// call in all.
func TestHuntAllCallersCancelledLoadStillFills(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger()})
		release := make(chan struct{})
		var calls atomic.Int64
		f := func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
			calls.Add(1)
			<-release
			return 42, nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if _, err := hybrid.GetOrSet(ctx, c, "k", f); !errors.Is(err, context.Canceled) {
					t.Errorf("cancelled caller: err = %v", err)
				}
			})
		}
		synctest.Wait()
		cancel()
		wg.Wait()
		late := make(chan int, 1)
		go func() {
			v, _ := hybrid.GetOrSet(context.Background(), c, "k", f)
			late <- v
		}()
		synctest.Wait()
		close(release)
		if v := <-late; v != 42 {
			t.Fatalf("late caller got %d, want 42", v)
		}
		fcWantGet(t, c, "k", 42)
		if n := calls.Load(); n != 1 {
			t.Fatalf("factory calls = %d, want 1", n)
		}
	})
}

// TestHuntRemoveDuringFailingLoadLeavesNoFallback: a load with fail-safe
// and a stale value is running when the key is removed; its factory then
// fails. The caller of that load may get the stale value (its load started
// before the removal), but the throttled copy must not put the removed
// value back: afterwards the key is gone (no stale read, no fallback).
func TestHuntRemoveDuringFailingLoadLeavesNoFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Second, FailSafe: true}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		release := make(chan struct{})
		slowFail := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			<-release
			return "", errDB
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			hybrid.GetOrSet(ctx, c, "k", slowFail)
		}()
		synctest.Wait()
		if err := c.Remove(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		close(release)
		<-done
		fcWantMiss[string](t, c, "k")
		fcWantMiss[string](t, c, "k", fcAllowStale)
		if v, err := hybrid.GetOrSet(ctx, c, "k", fusionFail[string](errDB)); !errors.Is(err, errDB) {
			t.Fatalf("after Remove, a failing factory = %q, %v; want its error (no fallback)", v, err)
		}
	})
}

// TestHuntFactorySetFailSafe: the factory decides whether its entry is a
// fallback (docs/adaptive-caching.md): SetFailSafe(false) under a cache
// with fail-safe leaves nothing to fall back on at expiry; SetFailSafe(true)
// under a call without fail-safe leaves a fallback for a later call with
// fail-safe.
func TestHuntFactorySetFailSafe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Second, FailSafe: true}})
		ctx := context.Background()
		off := func(_ context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			fc.SetFailSafe(false)
			return "a", nil
		}
		on := func(_ context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			fc.SetFailSafe(true)
			return "b", nil
		}
		fcWantGetOrSet(t, c, "off", off, "a")
		fcWantGetOrSet(t, c, "on", on, "b", hybrid.WithFailSafe(false))
		time.Sleep(2 * time.Second)
		if v, err := hybrid.GetOrSet(ctx, c, "off", fusionFail[string](errDB)); !errors.Is(err, errDB) {
			t.Fatalf("entry written with SetFailSafe(false): failing factory = %q, %v; want its error", v, err)
		}
		fcWantGetOrSet(t, c, "on", fusionFail[string](errDB), "b")
	})
}

// TestHuntFactorySetDurationMovesEagerPoint: the refresh point is
// threshold x the entry's duration, the one the factory set
// (docs/eager-refresh.md, docs/adaptive-caching.md).
func TestHuntFactorySetDurationMovesEagerPoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Hour, EagerRefreshThreshold: 0.5}})
		var calls atomic.Int64
		f := func(_ context.Context, fc *hybrid.FactoryContext[int64]) (int64, error) {
			fc.SetDuration(10 * time.Second)
			return calls.Add(1), nil
		}
		fcWantGetOrSet(t, c, "k", f, 1)
		time.Sleep(4 * time.Second)
		fcWantGetOrSet(t, c, "k", f, 1)
		synctest.Wait()
		if n := calls.Load(); n != 1 {
			t.Fatalf("a hit before 5s started a refresh (%d calls)", n)
		}
		time.Sleep(2 * time.Second) // 6s: past 0.5 x 10s
		fcWantGetOrSet(t, c, "k", f, 1)
		synctest.Wait()
		if n := calls.Load(); n != 2 {
			t.Fatalf("factory calls after a hit past 0.5 x the factory's 10s = %d, want 2", n)
		}
		fcWantGet(t, c, "k", int64(2))
	})
}

// TestHuntNotFoundReplacesFallback: a factory that answers NotFound while
// a stale fail-safe value exists: the callers get ErrNotFound, and with
// NotFoundDuration the "not found" is cached and is never a fallback
// (docs/getorset.md): once it expires a failing factory's error is
// returned, the old value is not served.
func TestHuntNotFoundReplacesFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, NotFoundDuration: time.Second,
		}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		var sawStale atomic.Bool
		nf := func(_ context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			_, ok := fc.Stale()
			sawStale.Store(ok)
			return fc.NotFound()
		}
		if _, err := hybrid.GetOrSet(ctx, c, "k", nf); !errors.Is(err, hybrid.ErrNotFound) {
			t.Fatalf("NotFound with a stale value: err = %v, want ErrNotFound", err)
		}
		if !sawStale.Load() {
			t.Fatal("the factory saw no stale value")
		}
		if _, err := hybrid.GetOrSet(ctx, c, "k", fusionValue("x")); !errors.Is(err, hybrid.ErrNotFound) {
			t.Fatalf("cached not found: err = %v, want ErrNotFound", err)
		}
		fcWantMiss[string](t, c, "k", fcAllowStale)
		time.Sleep(2 * time.Second)
		if v, err := hybrid.GetOrSet(ctx, c, "k", fusionFail[string](errDB)); !errors.Is(err, errDB) {
			t.Fatalf("after the not-found expired: failing factory = %q, %v; want its error", v, err)
		}
	})
}

// TestHuntConditionalRefreshAfterThrottle: a stale entry with an ETag, a
// failing source (throttled fallback), then the source back with "not
// modified": the factory still sees the ETag, and the entry is fresh again
// with its value and ETag.
func TestHuntConditionalRefreshAfterThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: time.Second,
		}})
		ctx := context.Background()
		first := func(_ context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			fc.SetETag("v1")
			return "body", nil
		}
		fcWantGetOrSet(t, c, "k", first, "body")
		time.Sleep(2 * time.Second)
		fcWantGetOrSet(t, c, "k", fusionFail[string](errDB), "body") // throttled
		time.Sleep(2 * time.Second)
		var etag atomic.Value
		notMod := func(_ context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			etag.Store(fc.ETag())
			return fc.NotModified()
		}
		fcWantGetOrSet(t, c, "k", notMod, "body")
		if got := etag.Load(); got != "v1" {
			t.Fatalf("the factory saw ETag %v after a throttle, want v1", got)
		}
		_, info, ok, err := hybrid.TryGetInfo[string](ctx, c, "k")
		if err != nil || !ok || info.ETag != "v1" {
			t.Fatalf("after NotModified: %+v, %v, %v; want fresh with ETag v1", info, ok, err)
		}
	})
}

// TestHuntFactorySetTagsReplaceCallTags: tags set by the factory replace
// the call's (docs/adaptive-caching.md): RemoveByTag of the call's tag
// leaves the entry alone, of the factory's tag invalidates it, and with
// fail-safe it stays a fallback.
func TestHuntFactorySetTagsReplaceCallTags(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Minute, FailSafe: true}})
		ctx := context.Background()
		f := func(_ context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			fc.SetTags("mine")
			return "v", nil
		}
		fcWantGetOrSet(t, c, "k", f, "v", hybrid.WithTags("call"))
		if err := c.RemoveByTag(ctx, "call"); err != nil {
			t.Fatal(err)
		}
		fcWantGet(t, c, "k", "v")
		if err := c.RemoveByTag(ctx, "mine"); err != nil {
			t.Fatal(err)
		}
		fcWantMiss[string](t, c, "k")
		fcWantGetOrSet(t, c, "k", fusionFail[string](errDB), "v")
	})
}

// TestHuntEagerRefreshDroppedKeepsRefreshPoint: with
// DisableBackgroundCompletion, an eager refresh that runs past the factory
// timeout is dropped and the entry keeps its refresh point
// (docs/eager-refresh.md): the next hit starts another refresh, which can
// succeed.
func TestHuntEagerRefreshDroppedKeepsRefreshPoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: 10 * time.Second, EagerRefreshThreshold: 0.5,
			FactoryHardTimeout: 100 * time.Millisecond, DisableBackgroundCompletion: true,
		}})
		fcWantGetOrSet(t, c, "k", fusionValue("v1"), "v1")
		time.Sleep(6 * time.Second)
		var slowCalls atomic.Int64
		slow := func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
			slowCalls.Add(1)
			<-ctx.Done()
			return "", ctx.Err()
		}
		fcWantGetOrSet(t, c, "k", slow, "v1")
		synctest.Wait()
		if slowCalls.Load() != 1 {
			t.Fatal("no eager refresh started")
		}
		time.Sleep(200 * time.Millisecond) // past the timeout: the refresh was dropped
		synctest.Wait()
		fcWantGetOrSet(t, c, "k", fusionValue("v2"), "v1") // still v1, and refreshes again
		synctest.Wait()
		fcWantGet(t, c, "k", "v2")
	})
}
