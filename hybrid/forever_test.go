package hybrid_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// forever is what a Go user writes for "never expires".
const forever = time.Duration(math.MaxInt64)

// Durations near math.MaxInt64 mean "forever": the entry is fresh, however
// the options combine them (jitter on top, fail-safe, eager refresh,
// sliding, an L1 duration, a throttle), rather than wrapping around into
// the past and being missed by the very next read.
func TestForeverDurations(t *testing.T) {
	ctx := context.Background()
	cases := map[string]hybrid.EntryOptions{
		"duration":              {Duration: forever},
		"almost":                {Duration: forever - time.Millisecond},
		"jitter":                {Duration: forever - time.Millisecond, JitterMaxDuration: 10 * time.Minute},
		"fail-safe":             {Duration: forever, FailSafe: true, FailSafeMaxDuration: forever},
		"eager refresh":         {Duration: forever, EagerRefreshThreshold: 0.99999},
		"sliding":               {Duration: forever, SlidingDuration: forever / 2},
		"l1 duration":           {Duration: forever, L1Duration: forever - time.Second},
		"fail-safe, throttle":   {Duration: time.Hour, FailSafe: true, FailSafeMaxDuration: forever, FailSafeThrottleDuration: forever},
		"not found":             {Duration: forever, NotFoundDuration: forever},
		"timeouts, big factors": {Duration: forever, FactorySoftTimeout: forever, FactoryHardTimeout: forever},
	}
	for name, entry := range cases {
		t.Run(name, func(t *testing.T) {
			c := newCache(t, hybrid.Options{Entry: entry})
			if err := hybrid.Set(ctx, c, "set", 42); err != nil {
				t.Fatal(err)
			}
			if v, ok := mustGet[int](t, c, "set"); !ok || v != 42 {
				t.Fatalf("TryGet after Set = %d, %v; want 42, true", v, ok)
			}
			var calls counter
			for range 3 {
				v, err := hybrid.GetOrSet(ctx, c, "load", calls.factory("v", nil))
				if err != nil || v != "v" {
					t.Fatalf("GetOrSet = %q, %v", v, err)
				}
			}
			if n := calls.calls.Load(); n != 1 {
				t.Fatalf("%d factory calls for three GetOrSet; want 1", n)
			}
			// Removal and expiry still work on such an entry.
			if err := c.Expire(ctx, "set"); err != nil {
				t.Fatal(err)
			}
			if _, ok := mustGet[int](t, c, "set"); ok {
				t.Fatal("hit after Expire")
			}
			if err := c.Remove(ctx, "load"); err != nil {
				t.Fatal(err)
			}
			if _, ok := mustGet[string](t, c, "load"); ok {
				t.Fatal("hit after Remove")
			}
		})
	}

	// The throttle after a fallback: a failing load serves the stale value,
	// then the stale value counts as fresh "forever".
	t.Run("throttle after a fallback", func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Millisecond, FailSafe: true,
			FailSafeMaxDuration: forever, FailSafeThrottleDuration: forever}})
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		redistest.Eventually(t, "the 1 ms entry to expire", func() bool {
			_, ok := mustGet[string](t, c, "k")
			return !ok
		})
		var calls counter
		for range 3 {
			v, err := hybrid.GetOrSet(ctx, c, "k", calls.factory("", errDB))
			if err != nil || v != "old" {
				t.Fatalf("GetOrSet = %q, %v; want the stale value", v, err)
			}
		}
		if n := calls.calls.Load(); n != 1 {
			t.Fatalf("%d factory calls; want 1 (the throttle holds)", n)
		}
	})
}

// An entry "forever" written to Redis is read back by another node as
// fresh, and a RemoveByTag on a cache whose entries live forever (its tag
// records must outlive them) is seen there too.
func TestForeverDurationsOverRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	entry := hybrid.EntryOptions{Duration: forever, JitterMaxDuration: time.Minute, FailSafe: true,
		FailSafeMaxDuration: forever, EagerRefreshThreshold: 0.9}
	a := node(t, srv.Client(t), entry)
	b := node(t, srv.Client(t), entry)
	if err := hybrid.Set(ctx, a, "k", 42, hybrid.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet[int](t, b, "k"); !ok || v != 42 {
		t.Fatalf("other node: TryGet = %d, %v; want 42 from Redis", v, ok)
	}
	ttl, err := srv.Client(t).PTTL(ctx, "app:k").Result()
	if err != nil || ttl < 100*365*24*time.Hour {
		t.Fatalf("Redis TTL of the entry = %v, %v; want a century or more", ttl, err)
	}
	if err := a.RemoveByTag(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	c := node(t, srv.Client(t), entry) // a node that starts after the invalidation
	for _, n := range []*hybrid.Cache{a, c} {
		if v, ok := mustGet[int](t, n, "k"); ok {
			t.Fatalf("TryGet after RemoveByTag = %d; want a miss", v)
		}
	}
	v, err := hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[int]) (int, error) { return 0, errDB })
	if !errors.Is(err, errDB) && v != 42 {
		t.Fatalf("GetOrSet with a failing factory = %d, %v; want the error or the stale 42", v, err)
	}
}

// SkipL1Write on Remove, Expire and RemoveMany leaves the memory tier as it
// is, as it does on Set: the change goes to the other tiers only.
func TestSkipL1WriteOnRemoval(t *testing.T) {
	ctx := context.Background()
	skip := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Write = true })
	c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Hour}})
	for _, k := range []string{"r", "e", "m1", "m2"} {
		if err := hybrid.Set(ctx, c, k, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Remove(ctx, "r", skip); err != nil {
		t.Fatal(err)
	}
	if err := c.Expire(ctx, "e", skip); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveMany(ctx, []string{"m1", "m2"}, skip); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"r", "e", "m1", "m2"} {
		if v, ok := mustGet[string](t, c, k); !ok || v != k {
			t.Fatalf("TryGet(%s) after a removal with SkipL1Write = %q, %v; want the value", k, v, ok)
		}
	}

	// Over Redis the removal still reaches the distributed tier.
	srv := redistest.Start(t)
	a := node(t, srv.Client(t), hybrid.EntryOptions{Duration: time.Hour})
	b := node(t, srv.Client(t), hybrid.EntryOptions{Duration: time.Hour})
	if err := hybrid.Set(ctx, a, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(ctx, "k", skip); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet[string](t, a, "k"); !ok || v != "v" {
		t.Fatalf("writer's memory after Remove with SkipL1Write = %q, %v; want v", v, ok)
	}
	if v, ok := mustGet[string](t, b, "k"); ok {
		t.Fatalf("other node reads %q from Redis after the Remove", v)
	}
}

// A value stored as an interface (Set[any]) and read as its dynamic type is
// a type mismatch whose error names both.
func TestTypeMismatchNamesDynamicType(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, hybrid.Options{})
	if err := hybrid.Set[any](ctx, c, "k", 42); err != nil {
		t.Fatal(err)
	}
	_, _, err := hybrid.TryGet[int](ctx, c, "k")
	if !errors.Is(err, hybrid.ErrTypeMismatch) {
		t.Fatalf("TryGet[int] of a Set[any] = %v; want ErrTypeMismatch", err)
	}
	const want = `key "k" holds interface {} (holding a int), read as int`
	if got := err.Error(); !contains(got, want) {
		t.Fatalf("error %q does not say %q", got, want)
	}
	if v, ok := mustGet[any](t, c, "k"); !ok || v != 42 {
		t.Fatalf("TryGet[any] = %v, %v; want 42", v, ok)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
