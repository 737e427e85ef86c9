package hybrid_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

var errNotFound = errors.New("no such row")

// TestFailSafeErrorFilter: an error the filter rejects is returned even
// with a stale value at hand; others still serve the stale value.
func TestFailSafeErrorFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true,
			FailSafeErrorFilter: func(err error) bool { return !errors.Is(err, errNotFound) },
		}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		var k counter
		if _, err := hybrid.GetOrSet(ctx, c, "k", k.factory("", errNotFound)); !errors.Is(err, errNotFound) {
			t.Fatalf("a filtered error: err = %v, want it returned, not the stale value", err)
		}
		if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("", errDB)); err != nil || v != "old" {
			t.Fatalf("another error: %q, %v; want the stale value", v, err)
		}
	})
}

// TestFailSafeDefaultValue: with fail-safe on and no stale value, a failed
// or timed-out factory gives the default value, which is not cached.
func TestFailSafeDefaultValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{FailSafe: true}})
		ctx := context.Background()
		var k counter
		def := hybrid.WithFailSafeDefault("default")
		if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("", errDB), def); err != nil || v != "default" {
			t.Fatalf("failed factory: %q, %v; want the default", v, err)
		}
		if _, ok := mustGet[string](t, c, "k"); ok {
			t.Fatal("the default value was cached")
		}
		timeout := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.FactoryHardTimeout = 100 * time.Millisecond })
		slow := func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			time.Sleep(time.Second)
			return "late", nil
		}
		if v, err := hybrid.GetOrSet(ctx, c, "t", slow, def, timeout); err != nil || v != "default" {
			t.Fatalf("timed-out factory: %q, %v; want the default", v, err)
		}
		// Of another type, or without fail-safe, it is ignored.
		if _, err := hybrid.GetOrSet(ctx, c, "n", func(context.Context, *hybrid.FactoryContext[int]) (int, error) { return 0, errDB }, def); !errors.Is(err, errDB) {
			t.Fatalf("a default of another type: err = %v, want the factory's", err)
		}
		if _, err := hybrid.GetOrSet(ctx, c, "k", k.factory("", errDB), def, hybrid.WithFailSafe(false)); !errors.Is(err, errDB) {
			t.Fatalf("without fail-safe: err = %v, want the factory's", err)
		}
		synctest.Wait()
	})
}
