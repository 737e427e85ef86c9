package hybrid_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

func TestGetOrSetCachesValue(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	var k counter
	ctx := context.Background()
	for i := range 3 {
		v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil))
		if err != nil || v != "v" {
			t.Fatalf("call %d: got %q, %v; want v, nil", i, v, err)
		}
	}
	if got := k.calls.Load(); got != 1 {
		t.Fatalf("factory calls = %d, want 1", got)
	}
}

func TestStampedeOneFactoryCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{})
		defer c.Close()
		var calls atomic.Int64
		f := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
			calls.Add(1)
			time.Sleep(10 * time.Millisecond)
			return 42, nil
		}
		var wg sync.WaitGroup
		var bad atomic.Int64
		for range 1000 {
			wg.Go(func() {
				v, err := hybrid.GetOrSet(context.Background(), c, "cold", f)
				if err != nil || v != 42 {
					bad.Add(1)
				}
			})
		}
		wg.Wait()
		if got := calls.Load(); got != 1 {
			t.Errorf("factory calls = %d, want 1", got)
		}
		if got := bad.Load(); got != 0 {
			t.Errorf("%d callers did not get 42", got)
		}
	})
}

func TestStampedeLeaderCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{})
		defer c.Close()
		var calls atomic.Int64
		started := make(chan struct{})
		f := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
			if calls.Add(1) == 1 {
				close(started)
			}
			time.Sleep(10 * time.Millisecond)
			if err := ctx.Err(); err != nil {
				return 0, err // the load must not see the leader's cancellation
			}
			return 42, nil
		}
		lctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		leaderErr := make(chan error, 1)
		go func() {
			_, err := hybrid.GetOrSet(lctx, c, "cold", f)
			leaderErr <- err
		}()
		<-started
		var wg sync.WaitGroup
		var bad atomic.Int64
		for range 999 {
			wg.Go(func() {
				v, err := hybrid.GetOrSet(context.Background(), c, "cold", f)
				if err != nil || v != 42 {
					bad.Add(1)
				}
			})
		}
		if err := <-leaderErr; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("leader: err = %v, want DeadlineExceeded", err)
		}
		wg.Wait()
		if got := calls.Load(); got != 1 {
			t.Errorf("factory calls = %d, want 1", got)
		}
		if got := bad.Load(); got != 0 {
			t.Errorf("%d callers did not get 42", got)
		}
		if v, ok := mustGet[int](t, c, "cold"); !ok || v != 42 {
			t.Errorf("after the load: TryGet = %v, %v; want 42, true", v, ok)
		}
	})
}

func TestFactoryErrorIsWrappedAndNotCached(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	var k counter
	_, err := hybrid.GetOrSet(context.Background(), c, "k", k.factory("", errDB))
	if !errors.Is(err, errDB) || !strings.Contains(err.Error(), `"k"`) {
		t.Fatalf("err = %v, want errDB wrapped with the key", err)
	}
	v, err := hybrid.GetOrSet(context.Background(), c, "k", k.factory("ok", nil))
	if err != nil || v != "ok" {
		t.Fatalf("after an error: got %q, %v; want ok, nil", v, err)
	}
}

func TestExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: 10 * time.Second}})
		defer c.Close()
		if err := hybrid.Set(context.Background(), c, "k", 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10*time.Second - time.Nanosecond)
		if _, ok := mustGet[int](t, c, "k"); !ok {
			t.Fatal("miss just before Duration")
		}
		time.Sleep(time.Nanosecond)
		if _, ok := mustGet[int](t, c, "k"); ok {
			t.Fatal("hit at Duration")
		}
	})
}

func TestFailSafeServesStaleOnErrorAndThrottles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: 5 * time.Second,
		}})
		defer c.Close()
		ctx := context.Background()
		var k counter
		if _, err := hybrid.GetOrSet(ctx, c, "k", k.factory("old", nil)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if _, ok := mustGet[string](t, c, "k"); ok {
			t.Fatal("an expired entry is a fresh hit")
		}
		if v, ok := mustGet[string](t, c, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })); !ok || v != "old" {
			t.Fatalf("AllowStaleOnRead: got %q, %v; want old, true", v, ok)
		}
		v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("", errDB))
		if err != nil || v != "old" {
			t.Fatalf("fail-safe: got %q, %v; want old, nil", v, err)
		}
		// Inside the throttle window the failing source is not called again.
		time.Sleep(4 * time.Second)
		if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("", errDB)); err != nil || v != "old" {
			t.Fatalf("in throttle: got %q, %v", v, err)
		}
		if got := k.calls.Load(); got != 2 {
			t.Fatalf("factory calls = %d, want 2 (throttled)", got)
		}
		time.Sleep(2 * time.Second)
		if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("new", nil)); err != nil || v != "new" {
			t.Fatalf("after throttle: got %q, %v; want new", v, err)
		}
		if got := k.calls.Load(); got != 3 {
			t.Fatalf("factory calls = %d, want 3", got)
		}
	})
}

func TestFailSafeOffReturnsError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Second}})
		defer c.Close()
		var k counter
		hybrid.GetOrSet(context.Background(), c, "k", k.factory("old", nil))
		time.Sleep(2 * time.Second)
		if _, err := hybrid.GetOrSet(context.Background(), c, "k", k.factory("", errDB)); !errors.Is(err, errDB) {
			t.Fatalf("err = %v, want errDB", err)
		}
	})
}

func TestFailSafeMaxDurationEndsFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeMaxDuration: time.Minute,
		}})
		defer c.Close()
		var k counter
		hybrid.GetOrSet(context.Background(), c, "k", k.factory("old", nil))
		time.Sleep(time.Minute)
		if _, err := hybrid.GetOrSet(context.Background(), c, "k", k.factory("", errDB)); !errors.Is(err, errDB) {
			t.Fatalf("err = %v, want errDB once FailSafeMaxDuration passed", err)
		}
	})
}

func slowFactory(d time.Duration, v string, calls *atomic.Int64) hybrid.Factory[string] {
	return func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		calls.Add(1)
		select {
		case <-time.After(d):
			return v, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func TestHardTimeoutWithoutStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{FactoryHardTimeout: 100 * time.Millisecond}})
		defer c.Close()
		var calls atomic.Int64
		start := time.Now()
		_, err := hybrid.GetOrSet(context.Background(), c, "k", slowFactory(time.Second, "v", &calls))
		if !errors.Is(err, hybrid.ErrFactoryTimeout) {
			t.Fatalf("err = %v, want ErrFactoryTimeout", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("returned after %v, want the hard timeout (100ms)", d)
		}
		// Background completion: the value arrives later, and no second
		// factory starts for the key meanwhile.
		if _, err := hybrid.GetOrSet(context.Background(), c, "k", slowFactory(time.Second, "v2", &calls)); !errors.Is(err, hybrid.ErrFactoryTimeout) {
			t.Fatalf("second call: err = %v, want the first load's timeout", err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if v, ok := mustGet[string](t, c, "k"); !ok || v != "v" {
			t.Fatalf("after background completion: got %q, %v; want v", v, ok)
		}
		if got := calls.Load(); got != 1 {
			t.Fatalf("factory calls = %d, want 1", got)
		}
	})
}

func TestHardTimeoutServesStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FactoryHardTimeout: 100 * time.Millisecond,
		}})
		defer c.Close()
		var calls atomic.Int64
		hybrid.Set(context.Background(), c, "k", "old")
		time.Sleep(2 * time.Second)
		v, err := hybrid.GetOrSet(context.Background(), c, "k", slowFactory(time.Second, "new", &calls))
		if err != nil || v != "old" {
			t.Fatalf("got %q, %v; want old, nil", v, err)
		}
	})
}

func TestSoftTimeoutServesStaleThenCompletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FactorySoftTimeout: 100 * time.Millisecond,
		}})
		defer c.Close()
		var calls atomic.Int64
		hybrid.Set(context.Background(), c, "k", "old")
		time.Sleep(2 * time.Second)
		start := time.Now()
		v, err := hybrid.GetOrSet(context.Background(), c, "k", slowFactory(500*time.Millisecond, "new", &calls))
		if err != nil || v != "old" {
			t.Fatalf("got %q, %v; want old, nil", v, err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("returned after %v, want the soft timeout (100ms)", d)
		}
		// While the factory runs on, no second one starts.
		if v, err := hybrid.GetOrSet(context.Background(), c, "k", slowFactory(500*time.Millisecond, "other", &calls)); err != nil || v != "old" {
			t.Fatalf("during background completion: got %q, %v", v, err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if v, ok := mustGet[string](t, c, "k"); !ok || v != "new" {
			t.Fatalf("after completion: got %q, %v; want new", v, ok)
		}
		if got := calls.Load(); got != 1 {
			t.Fatalf("factory calls = %d, want 1", got)
		}
	})
}

func TestSoftTimeoutIgnoredWithoutStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{FailSafe: true, FactorySoftTimeout: 100 * time.Millisecond}})
		defer c.Close()
		var calls atomic.Int64
		v, err := hybrid.GetOrSet(context.Background(), c, "k", slowFactory(500*time.Millisecond, "v", &calls))
		if err != nil || v != "v" {
			t.Fatalf("got %q, %v; want v, nil (no stale value: the soft timeout does not apply)", v, err)
		}
	})
}

func TestDisableBackgroundCompletion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FactorySoftTimeout: 100 * time.Millisecond,
			DisableBackgroundCompletion: true,
		}})
		defer c.Close()
		var calls atomic.Int64
		hybrid.Set(context.Background(), c, "k", "old")
		time.Sleep(2 * time.Second)
		if v, _ := hybrid.GetOrSet(context.Background(), c, "k", slowFactory(500*time.Millisecond, "new", &calls)); v != "old" {
			t.Fatalf("got %q, want old", v)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if v, _ := mustGet[string](t, c, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })); v != "old" {
			t.Fatalf("got %q, want old: a cancelled factory must not update the cache", v)
		}
	})
}

func TestEagerRefreshRunsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5}})
		defer c.Close()
		var calls atomic.Int64
		gen := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
			n := calls.Add(1)
			time.Sleep(100 * time.Millisecond)
			return int(n), nil
		}
		ctx := context.Background()
		if v, _ := hybrid.GetOrSet(ctx, c, "k", gen); v != 1 {
			t.Fatalf("first value = %d", v)
		}
		time.Sleep(4 * time.Second)
		hybrid.GetOrSet(ctx, c, "k", gen) // before the threshold: no refresh
		synctest.Wait()
		if got := calls.Load(); got != 1 {
			t.Fatalf("calls before threshold = %d, want 1", got)
		}
		time.Sleep(2 * time.Second)
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				if v, err := hybrid.GetOrSet(ctx, c, "k", gen); err != nil || v != 1 {
					t.Errorf("hit past threshold: got %d, %v; want the current value 1 at once", v, err)
				}
			})
		}
		wg.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		if got := calls.Load(); got != 2 {
			t.Fatalf("factory calls = %d, want exactly one eager refresh", got)
		}
		if v, ok := mustGet[int](t, c, "k"); !ok || v != 2 {
			t.Fatalf("after refresh: got %d, %v; want 2", v, ok)
		}
	})
}

func TestJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: 10 * time.Second, JitterMaxDuration: 5 * time.Second}})
		defer c.Close()
		const n = 200
		for i := range n {
			hybrid.Set(context.Background(), c, fmt.Sprint(i), i)
		}
		hits := func() int {
			h := 0
			for i := range n {
				if _, ok := mustGet[int](t, c, fmt.Sprint(i)); ok {
					h++
				}
			}
			return h
		}
		time.Sleep(10*time.Second - time.Nanosecond)
		if h := hits(); h != n {
			t.Fatalf("before Duration: %d hits, want %d", h, n)
		}
		time.Sleep(2500 * time.Millisecond)
		if h := hits(); h == 0 || h == n {
			t.Fatalf("at Duration+Jitter/2: %d hits of %d, want some but not all (jitter spreads expiry)", h, n)
		}
		time.Sleep(2500 * time.Millisecond)
		if h := hits(); h != 0 {
			t.Fatalf("after Duration+Jitter: %d hits, want 0", h)
		}
	})
}

func TestReadYourWrites(t *testing.T) {
	c := newCache(t, hybrid.Options{L1MaxEntries: 200_000})
	ctx := context.Background()
	for i := range 100_000 {
		k := fmt.Sprint("k", i)
		if err := hybrid.Set(ctx, c, k, i); err != nil {
			t.Fatal(err)
		}
		if v, ok := mustGet[int](t, c, k); !ok || v != i {
			t.Fatalf("Set then TryGet #%d: got %d, %v", i, v, ok)
		}
	}
}

func TestAdaptiveCachingAndConditionalRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Minute, FailSafe: true}})
		defer c.Close()
		ctx := context.Background()
		mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		_, err := hybrid.GetOrSet(ctx, c, "page", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			fc.SetDuration(time.Second)
			fc.SetETag(`"v1"`)
			fc.SetLastModified(mod)
			return "body-v1", nil
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the adaptive 1s, not the cache's minute
		var seenETag string
		var seenMod time.Time
		v, err := hybrid.GetOrSet(ctx, c, "page", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			seenETag, seenMod = fc.ETag(), fc.LastModified()
			if s, ok := fc.Stale(); !ok || s != "body-v1" {
				t.Errorf("Stale() = %q, %v", s, ok)
			}
			return fc.NotModified()
		})
		if err != nil || v != "body-v1" {
			t.Fatalf("conditional refresh: got %q, %v", v, err)
		}
		if seenETag != `"v1"` || !seenMod.Equal(mod) {
			t.Fatalf("factory saw ETag %q, LastModified %v", seenETag, seenMod)
		}
		// NotModified stored the value as fresh again.
		if v, ok := mustGet[string](t, c, "page"); !ok || v != "body-v1" {
			t.Fatalf("after NotModified: got %q, %v", v, ok)
		}
	})
}

func TestNotModifiedWithoutStaleIsAnError(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	_, err := hybrid.GetOrSet(context.Background(), c, "k", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
		return fc.NotModified()
	})
	if err == nil {
		t.Fatal("NotModified without a stale value succeeded")
	}
	if _, ok := mustGet[int](t, c, "k"); ok {
		t.Fatal("a failed load stored a value")
	}
}

func TestRemoveRacingLoadDoesNotResurrect(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	ctx := context.Background()
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan string)
	go func() {
		v, _ := hybrid.GetOrSet(ctx, c, "k", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			close(started)
			<-release
			return "old", nil
		})
		done <- v
	}()
	<-started
	if err := c.Remove(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if v := <-done; v != "old" {
		t.Fatalf("the caller of the load got %q", v)
	}
	if v, ok := mustGet[string](t, c, "k"); ok {
		t.Fatalf("a load that started before Remove put %q back", v)
	}
}

func TestRemoveAndExpire(t *testing.T) {
	c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{FailSafe: true}})
	ctx := context.Background()
	stale := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })
	hybrid.Set(ctx, c, "a", 1)
	hybrid.Set(ctx, c, "b", 2)
	if err := c.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustGet[int](t, c, "a", stale); ok {
		t.Fatal("removed key still readable, even as stale")
	}
	if err := c.Expire(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustGet[int](t, c, "b"); ok {
		t.Fatal("expired key is a fresh hit")
	}
	if v, ok := mustGet[int](t, c, "b", stale); !ok || v != 2 {
		t.Fatalf("expired key as stale: got %d, %v; want 2", v, ok)
	}
	var k counter
	if v, err := hybrid.GetOrSet(ctx, c, "b", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
		k.calls.Add(1)
		return 0, errDB
	}); err != nil || v != 2 {
		t.Fatalf("fail-safe after Expire: got %d, %v; want 2", v, err)
	}
	// A Set after Remove is visible.
	hybrid.Set(ctx, c, "a", 3)
	if v, ok := mustGet[int](t, c, "a"); !ok || v != 3 {
		t.Fatalf("Set after Remove: got %d, %v", v, ok)
	}
}

func TestFailedEagerRefreshKeepsEntry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{
			Duration: 10 * time.Minute, EagerRefreshThreshold: 0.5, FailSafe: true, FailSafeThrottleDuration: time.Second,
		}})
		defer c.Close()
		ctx := context.Background()
		var k counter
		hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil))
		time.Sleep(6 * time.Minute)
		hybrid.GetOrSet(ctx, c, "k", k.factory("", errDB)) // starts a refresh that fails
		synctest.Wait()
		time.Sleep(2 * time.Minute) // 8 of the 10 minutes
		if v, ok := mustGet[string](t, c, "k"); !ok || v != "v" {
			t.Fatalf("got %q, %v: a failed eager refresh cut the entry's lifetime short", v, ok)
		}
	})
}

// TestEagerRefreshKeepsContextValues: the background refresh gets the
// values of the context of the hit that started it (trace spans, request
// loggers), not context.Background, and not its cancellation.
func TestEagerRefreshKeepsContextValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5}})
		defer c.Close()
		type ctxKey struct{}
		seen := make(chan any, 2)
		gen := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
			seen <- ctx.Value(ctxKey{})
			return 1, ctx.Err()
		}
		hybrid.GetOrSet(context.Background(), c, "k", gen)
		<-seen
		time.Sleep(6 * time.Second)
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "request-42"))
		if _, err := hybrid.GetOrSet(ctx, c, "k", gen); err != nil {
			t.Fatal(err)
		}
		cancel() // the caller is gone; the refresh is not
		synctest.Wait()
		if got := <-seen; got != "request-42" {
			t.Fatalf("the eager refresh saw the context value %v, want the caller's", got)
		}
	})
}
