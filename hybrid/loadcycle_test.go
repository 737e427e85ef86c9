package hybrid_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// returnsWithin runs f and fails the test if it has not returned after
// 10 s: a load waiting for itself never returns (until Close, which the
// test's cleanup calls and which cancels the factory's context).
func returnsWithin(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after 10 s: the load waits for itself")
	}
}

// A factory that asks the cache for its own key, with its context, gets
// ErrLoadCycle at once instead of joining the load it is part of (which
// waited for itself until Close, or for ever on a flight of the caller's
// own goroutine). The outer load fails with the factory's error, and
// nothing is cached.
func TestFactoryReadingItsOwnKeyIsALoadCycle(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		opts []hybrid.Option
	}{
		// No timeout, a context that cannot end: the load runs on the
		// caller's goroutine.
		{"background", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }, nil},
		// A cancellable context: the load runs detached.
		{"cancellable", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, nil},
		{"hard-timeout", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} },
			[]hybrid.Option{hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.FactoryHardTimeout = time.Hour })}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, hybrid.Options{})
			ctx, cancel := tc.ctx()
			defer cancel()
			var inner error
			var err error
			returnsWithin(t, func() {
				_, err = hybrid.GetOrSet(ctx, c, "k", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
					_, inner = hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
						t.Error("the inner factory ran")
						return "inner", nil
					}, tc.opts...)
					return "", inner
				}, tc.opts...)
			})
			if !errors.Is(inner, hybrid.ErrLoadCycle) {
				t.Fatalf("inner GetOrSet: %v, want ErrLoadCycle", inner)
			}
			if !errors.Is(err, hybrid.ErrLoadCycle) {
				t.Fatalf("outer GetOrSet: %v, want the factory's ErrLoadCycle", err)
			}
			if _, ok := mustGet[string](t, c, "k"); ok {
				t.Fatal("a failed load cached a value")
			}
			// The key is free: the next load runs.
			v, err := hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "v", nil })
			if err != nil || v != "v" {
				t.Fatalf("next GetOrSet = %q, %v", v, err)
			}
		})
	}
}

// A cycle through other keys and caches: the factory of a in cache 1
// reads b in cache 2, whose factory reads a in cache 1 through a context
// derived from its own (a value and a deadline added on the way).
func TestLoadCycleThroughAnotherCache(t *testing.T) {
	c1 := newCache(t, hybrid.Options{Name: "one"})
	c2 := newCache(t, hybrid.Options{Name: "two"})
	type ctxKey struct{}
	var inner error
	var err error
	returnsWithin(t, func() {
		_, err = hybrid.GetOrSet(context.Background(), c1, "a", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
			b, err := hybrid.GetOrSet(context.WithValue(ctx, ctxKey{}, 1), c2, "b", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
				ctx, cancel := context.WithTimeout(ctx, time.Hour)
				defer cancel()
				if ctx.Value(ctxKey{}) != 1 {
					t.Error("the inner factory lost a value of its caller's context")
				}
				_, inner = hybrid.GetOrSet(ctx, c1, "a", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
					t.Error("the innermost factory ran")
					return "", nil
				})
				return "b", nil // b does not need a
			})
			return "a+" + b, err
		})
	})
	if err != nil {
		t.Fatalf("outer GetOrSet: %v", err)
	}
	if !errors.Is(inner, hybrid.ErrLoadCycle) {
		t.Fatalf("GetOrSet of a from b's factory: %v, want ErrLoadCycle", inner)
	}
	// b's factory read another key of cache 1 fine, and the same key of
	// another cache is not a cycle either.
	v, err := hybrid.GetOrSet(context.Background(), c1, "x", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
		y, err := hybrid.GetOrSet(ctx, c1, "y", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "y", nil })
		if err != nil {
			return "", err
		}
		x2, err := hybrid.GetOrSet(ctx, c2, "x", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "x2", nil })
		return "x+" + y + "+" + x2, err
	})
	if err != nil || v != "x+y+x2" {
		t.Fatalf("GetOrSet of other keys from a factory = %q, %v", v, err)
	}
}

// A factory's context kept after its load ended (handed to a goroutine
// of the factory's) is no longer a load of the key: reading the key with
// it loads as any caller does.
func TestFactoryContextAfterTheLoadIsNoCycle(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	var kept context.Context
	if _, err := hybrid.GetOrSet(context.Background(), c, "k", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
		kept = ctx
		return "v1", nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	v, err := hybrid.GetOrSet(kept, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "v2", nil })
	if err != nil || v != "v2" {
		t.Fatalf("GetOrSet with a finished load's context = %q, %v; want v2", v, err)
	}
}

// Batches: a batch factory that reads one of its keys with GetOrSet, and
// a factory that asks GetOrSetMany for its own key among others, get
// ErrLoadCycle for that key; the other keys are served.
func TestLoadCycleInBatches(t *testing.T) {
	t.Run("batch-factory-reads-its-key", func(t *testing.T) {
		c := newCache(t, hybrid.Options{})
		var inner error
		var res []hybrid.Result[string]
		var err error
		returnsWithin(t, func() {
			res, err = hybrid.GetOrSetMany(context.Background(), c, []string{"a", "b"}, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
				_, inner = hybrid.GetOrSet(ctx, c, "b", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
					t.Error("the inner factory ran")
					return "", nil
				})
				return map[string]string{"a": "A", "b": "B"}, nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(inner, hybrid.ErrLoadCycle) {
			t.Fatalf("GetOrSet of a batch's key from its factory: %v, want ErrLoadCycle", inner)
		}
		if res[0].Value != "A" || res[1].Value != "B" {
			t.Fatalf("batch = %+v", res)
		}
	})
	t.Run("factory-asks-many", func(t *testing.T) {
		c := newCache(t, hybrid.Options{})
		var res []hybrid.Result[string]
		var inner error
		returnsWithin(t, func() {
			_, _ = hybrid.GetOrSet(context.Background(), c, "k", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
				res, inner = hybrid.GetOrSetMany(ctx, c, []string{"other", "k"}, func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
					out := map[string]string{}
					for _, k := range bc.Keys() {
						out[k] = "loaded:" + k
					}
					return out, nil
				})
				return "v", nil
			})
		})
		if inner != nil {
			t.Fatalf("GetOrSetMany: %v", inner)
		}
		if res[0].Err != nil || res[0].Value != "loaded:other" {
			t.Fatalf("other key: %+v", res[0])
		}
		if !errors.Is(res[1].Err, hybrid.ErrLoadCycle) {
			t.Fatalf("own key: %+v, want ErrLoadCycle", res[1])
		}
	})
}
