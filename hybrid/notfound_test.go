package hybrid_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestNotFoundIsCached: a factory's NotFound is ErrNotFound to every
// caller, cached for NotFoundDuration (the source is not asked again
// meanwhile), a miss for TryGet, never a fail-safe fallback, and a later
// Set replaces it.
func TestNotFoundIsCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{
			Duration: time.Hour, FailSafe: true, NotFoundDuration: time.Minute,
		}})
		ctx := context.Background()
		var calls atomic.Int64
		missing := func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			calls.Add(1)
			return fc.NotFound()
		}
		for range 3 {
			if _, err := hybrid.GetOrSet(ctx, c, "user:9", missing); !errors.Is(err, hybrid.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("the source was asked %d times, want once: the not found is cached", n)
		}
		if v, ok, err := hybrid.TryGet[string](ctx, c, "user:9"); ok || err != nil {
			t.Fatalf("TryGet = %q, %v, %v; want a miss", v, ok, err)
		}
		time.Sleep(2 * time.Minute) // past NotFoundDuration: asked again; a failure has no fallback
		if _, err := hybrid.GetOrSet(ctx, c, "user:9", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			return "", errDB
		}); !errors.Is(err, errDB) {
			t.Fatalf("after expiry, a failing source: err = %v, want its error (a not found is no fallback)", err)
		}
		if err := hybrid.Set(ctx, c, "user:9", "ada"); err != nil {
			t.Fatal(err)
		}
		if v, err := hybrid.GetOrSet(ctx, c, "user:9", missing); err != nil || v != "ada" {
			t.Fatalf("after Set: %q, %v", v, err)
		}
	})
}

// TestNotFoundNotCachedByDefault: without NotFoundDuration the answer is
// ErrNotFound but the next call asks the source again.
func TestNotFoundNotCachedByDefault(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	var calls atomic.Int64
	missing := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
		calls.Add(1)
		return fc.NotFound()
	}
	for range 2 {
		if _, err := hybrid.GetOrSet(context.Background(), c, "k", missing); !errors.Is(err, hybrid.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("calls = %d, want 2", n)
	}
	if _, err := hybrid.New(hybrid.Options{Entry: hybrid.EntryOptions{NotFoundDuration: -1}}); !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Fatalf("negative NotFoundDuration: %v", err)
	}
}
