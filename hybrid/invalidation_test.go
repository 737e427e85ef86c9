package hybrid_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

func TestRemoveByTagSingleNode(t *testing.T) {
	c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{FailSafe: true}})
	ctx := context.Background()
	calls := map[string]int{}
	get := func(key string, tags ...string) {
		t.Helper()
		_, err := hybrid.GetOrSet(ctx, c, key, func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			calls[key]++
			return key, nil
		}, hybrid.WithTags(tags...))
		if err != nil {
			t.Fatal(err)
		}
	}
	load := func() {
		get("foo", "x", "y")
		get("bar", "y", "z")
		get("baz", "x", "z")
	}
	want := func(foo, bar, baz int) {
		t.Helper()
		if calls["foo"] != foo || calls["bar"] != bar || calls["baz"] != baz {
			t.Fatalf("factory calls foo,bar,baz = %d,%d,%d; want %d,%d,%d", calls["foo"], calls["bar"], calls["baz"], foo, bar, baz)
		}
	}
	load()
	want(1, 1, 1)
	if err := c.RemoveByTag(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	load()
	want(2, 1, 2)
	c.RemoveByTag(ctx, "y")
	load()
	want(3, 2, 2)
	c.RemoveByTag(ctx, "unknown")
	load()
	want(3, 2, 2)
	// Expired by tag, the entry remains a fail-safe fallback.
	c.RemoveByTag(ctx, "z")
	v, err := hybrid.GetOrSet(ctx, c, "bar", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		return "", errDB
	})
	if err != nil || v != "bar" {
		t.Fatalf("fail-safe after RemoveByTag: got %q, %v", v, err)
	}
}

func TestRemoveByTagBadInput(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	for _, tag := range []string{"", strings.Repeat("t", hybrid.MaxTagLength+1)} {
		if err := c.RemoveByTag(context.Background(), tag); !errors.Is(err, hybrid.ErrInvalidOptions) {
			t.Errorf("RemoveByTag(%d bytes): err = %v", len(tag), err)
		}
	}
}

func TestClear(t *testing.T) {
	stale := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })
	for _, allowFailSafe := range []bool{true, false} {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{FailSafe: true}})
		ctx := context.Background()
		hybrid.Set(ctx, c, "a", 1)
		if err := c.Clear(ctx, allowFailSafe); err != nil {
			t.Fatal(err)
		}
		if _, ok := mustGet[int](t, c, "a"); ok {
			t.Fatalf("Clear(%v): still a fresh hit", allowFailSafe)
		}
		_, ok := mustGet[int](t, c, "a", stale)
		if ok != allowFailSafe {
			t.Fatalf("Clear(%v): stale read ok = %v", allowFailSafe, ok)
		}
		hybrid.Set(ctx, c, "a", 2)
		if v, ok := mustGet[int](t, c, "a"); !ok || v != 2 {
			t.Fatalf("Set after Clear(%v): got %d, %v", allowFailSafe, v, ok)
		}
	}
}

func TestThrottleHoldsAfterInvalidation(t *testing.T) {
	c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{FailSafe: true, FailSafeThrottleDuration: time.Hour}})
	ctx := context.Background()
	hybrid.Set(ctx, c, "k", "v", hybrid.WithTags("t"))
	c.RemoveByTag(ctx, "t")
	var k counter
	for range 4 {
		if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("", errDB)); err != nil || v != "v" {
			t.Fatalf("got %q, %v", v, err)
		}
	}
	if k.calls.Load() != 1 {
		t.Fatalf("factory calls = %d, want 1: the throttle must hold after RemoveByTag", k.calls.Load())
	}
}

func TestExpireDoesNotReviveCleared(t *testing.T) {
	c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{FailSafe: true}})
	ctx := context.Background()
	hybrid.Set(ctx, c, "k", 1)
	c.Clear(ctx, false)
	c.Expire(ctx, "k")
	if _, ok := mustGet[int](t, c, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })); ok {
		t.Fatal("Expire brought back an entry removed by Clear(false)")
	}
}

func TestRemoveByTagModes(t *testing.T) {
	ctx := context.Background()
	stale := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })
	for _, mode := range []hybrid.TagRemoval{hybrid.ExpireTagged, hybrid.DeleteTagged} {
		allowFailSafe := mode == hybrid.ExpireTagged
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{FailSafe: true}})
		hybrid.Set(ctx, c, "k", 1, hybrid.WithTags("t"))
		if err := c.RemoveByTagWith(ctx, mode, "t"); err != nil {
			t.Fatal(err)
		}
		if _, ok := mustGet[int](t, c, "k"); ok {
			t.Fatalf("mode %d: still fresh", mode)
		}
		if _, ok := mustGet[int](t, c, "k", stale); ok != allowFailSafe {
			t.Fatalf("mode %d: fallback available = %v", mode, ok)
		}
	}
	c := newCache(t, hybrid.Options{})
	hybrid.Set(ctx, c, "k", 1, hybrid.WithTags("t"))
	if err := c.RemoveByTagWith(ctx, hybrid.TagRemoval(9), "t"); !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Fatalf("unknown mode: %v, want ErrInvalidOptions", err)
	}
	if v, ok := mustGet[int](t, c, "k"); !ok || v != 1 {
		t.Fatal("an invalid RemoveByTagWith changed the cache")
	}
}

func TestReservedKeys(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	if err := hybrid.Set(context.Background(), c, "__strata:tag:x", 1); !errors.Is(err, hybrid.ErrInvalidKey) {
		t.Fatalf("err = %v, want ErrInvalidKey for a reserved key", err)
	}
}
