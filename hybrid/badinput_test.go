package hybrid_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

func TestInvalidKeys(t *testing.T) {
	c := newCache(t, hybrid.Options{MaxKeyLength: 8})
	ctx := context.Background()
	var k counter
	for _, key := range []string{"", strings.Repeat("x", 9)} {
		if _, err := hybrid.GetOrSet(ctx, c, key, k.factory("v", nil)); !errors.Is(err, hybrid.ErrInvalidKey) {
			t.Errorf("GetOrSet(%q): err = %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := hybrid.TryGet[string](ctx, c, key); !errors.Is(err, hybrid.ErrInvalidKey) {
			t.Errorf("TryGet(%q): err = %v", key, err)
		}
		if err := hybrid.Set(ctx, c, key, "v"); !errors.Is(err, hybrid.ErrInvalidKey) {
			t.Errorf("Set(%q): err = %v", key, err)
		}
		if err := c.Remove(ctx, key); !errors.Is(err, hybrid.ErrInvalidKey) {
			t.Errorf("Remove(%q): err = %v", key, err)
		}
		if err := c.Expire(ctx, key); !errors.Is(err, hybrid.ErrInvalidKey) {
			t.Errorf("Expire(%q): err = %v", key, err)
		}
	}
	if k.calls.Load() != 0 {
		t.Error("the factory ran for an invalid key")
	}
	if err := hybrid.Set(ctx, c, strings.Repeat("x", 8), "v"); err != nil {
		t.Errorf("key of exactly MaxKeyLength: %v", err)
	}
}

func TestNilFactory(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	if _, err := hybrid.GetOrSet[int](context.Background(), c, "k", nil); !errors.Is(err, hybrid.ErrNilFactory) {
		t.Fatalf("err = %v, want ErrNilFactory", err)
	}
}

func TestInvalidOptions(t *testing.T) {
	cases := []struct {
		name  string
		o     hybrid.EntryOptions
		field string
	}{
		{"negative duration", hybrid.EntryOptions{Duration: -1}, "Duration"},
		{"negative L1 duration", hybrid.EntryOptions{L1Duration: -1}, "L1Duration"},
		{"negative jitter", hybrid.EntryOptions{JitterMaxDuration: -1}, "JitterMaxDuration"},
		{"negative fail-safe max", hybrid.EntryOptions{FailSafeMaxDuration: -1}, "FailSafeMaxDuration"},
		{"negative throttle", hybrid.EntryOptions{FailSafeThrottleDuration: -time.Second}, "FailSafeThrottleDuration"},
		{"negative soft timeout", hybrid.EntryOptions{FactorySoftTimeout: -1}, "FactorySoftTimeout"},
		{"negative hard timeout", hybrid.EntryOptions{FactoryHardTimeout: -1}, "FactoryHardTimeout"},
		{"negative l2 soft", hybrid.EntryOptions{L2SoftTimeout: -1}, "L2SoftTimeout"},
		{"negative l2 hard", hybrid.EntryOptions{L2HardTimeout: -1}, "L2HardTimeout"},
		{"threshold 1", hybrid.EntryOptions{EagerRefreshThreshold: 1}, "EagerRefreshThreshold"},
		{"threshold negative", hybrid.EntryOptions{EagerRefreshThreshold: -0.5}, "EagerRefreshThreshold"},
		{"negative size", hybrid.EntryOptions{Size: -1}, "Size"},
		{"empty tag", hybrid.EntryOptions{Tags: []string{""}}, "tag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hybrid.New(hybrid.Options{Entry: tc.o})
			if !errors.Is(err, hybrid.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("New: err = %v, want ErrInvalidOptions naming %s", err, tc.field)
			}
			// The same options per call: a clear error and nothing stored.
			c := newCache(t, hybrid.Options{})
			o := tc.o
			err = hybrid.Set(context.Background(), c, "k", 1, hybrid.WithOptions(func(e *hybrid.EntryOptions) { *e = o }))
			if !errors.Is(err, hybrid.ErrInvalidOptions) {
				t.Fatalf("Set: err = %v, want ErrInvalidOptions", err)
			}
			if _, ok := mustGet[int](t, c, "k"); ok {
				t.Fatal("an invalid Set stored a value")
			}
		})
	}
	if _, err := hybrid.New(hybrid.Options{L1MaxEntries: -1}); !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Errorf("negative L1MaxEntries: err = %v", err)
	}
}

func TestFactorySetsInvalidDuration(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	_, err := hybrid.GetOrSet(context.Background(), c, "k", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
		fc.SetDuration(-time.Second)
		return 1, nil
	})
	if !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Fatalf("err = %v, want ErrInvalidOptions", err)
	}
	if _, ok := mustGet[int](t, c, "k"); ok {
		t.Fatal("stored despite invalid options")
	}
}

func TestTypeMismatch(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	ctx := context.Background()
	hybrid.Set(ctx, c, "k", 42)
	if _, _, err := hybrid.TryGet[string](ctx, c, "k"); !errors.Is(err, hybrid.ErrTypeMismatch) {
		t.Errorf("TryGet[string]: err = %v, want ErrTypeMismatch", err)
	}
	var k counter
	if _, err := hybrid.GetOrSet(ctx, c, "k", k.factory("s", nil)); !errors.Is(err, hybrid.ErrTypeMismatch) {
		t.Errorf("GetOrSet[string]: err = %v, want ErrTypeMismatch", err)
	}
	if k.calls.Load() != 0 {
		t.Error("the factory ran on a type mismatch")
	}
	if v, ok := mustGet[int](t, c, "k"); !ok || v != 42 {
		t.Errorf("after mismatches: got %d, %v; want 42 unchanged", v, ok)
	}
}

func TestClosed(t *testing.T) {
	c, err := hybrid.New(hybrid.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hybrid.Set(ctx, c, "k", 1)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var k counter
	checks := map[string]error{
		"Set":    hybrid.Set(ctx, c, "k", 2),
		"Remove": c.Remove(ctx, "k"),
		"Expire": c.Expire(ctx, "k"),
		"Clear":  c.Clear(ctx, true),
		"Tag":    c.RemoveByTag(ctx, "t"),
	}
	_, checks["GetOrSet"] = hybrid.GetOrSet(ctx, c, "k", k.factory("", nil))
	_, _, checks["TryGet"] = hybrid.TryGet[int](ctx, c, "k")
	for op, err := range checks {
		if !errors.Is(err, hybrid.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", op, err)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var k counter
	if _, err := hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("GetOrSet: err = %v", err)
	}
	if err := hybrid.Set(ctx, c, "k", "v"); !errors.Is(err, context.Canceled) {
		t.Errorf("Set: err = %v", err)
	}
	if k.calls.Load() != 0 {
		t.Error("the factory ran with a cancelled context")
	}
	if _, ok := mustGet[string](t, c, "k"); ok {
		t.Error("a cancelled Set stored a value")
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	if _, _, err := hybrid.TryGet[string](dctx, c, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("TryGet with an expired context: err = %v", err)
	}
}

func TestFactoryPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{})
		defer c.Close()
		ctx := context.Background()
		release := make(chan struct{})
		panicky := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
			<-release
			panic("boom")
		}
		leader := make(chan any, 1)
		go func() {
			defer func() { leader <- recover() }()
			hybrid.GetOrSet(ctx, c, "k", panicky)
		}()
		synctest.Wait() // the leader's load is parked in the factory
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for range 10 {
			wg.Go(func() {
				_, err := hybrid.GetOrSet(ctx, c, "k", panicky)
				errs <- err
			})
		}
		synctest.Wait() // every waiter is parked on the same load
		close(release)
		if p := <-leader; p != "boom" {
			t.Fatalf("leader recovered %v, want the factory's panic", p)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, hybrid.ErrFactoryPanic) {
				t.Errorf("waiter: err = %v, want ErrFactoryPanic", err)
			}
		}
		// The key is not poisoned.
		v, err := hybrid.GetOrSet(ctx, c, "k", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) { return 7, nil })
		if err != nil || v != 7 {
			t.Fatalf("after the panic: got %d, %v; want 7", v, err)
		}
	})
}

func TestCloseCancelsBackgroundFactory(t *testing.T) {
	c, err := hybrid.New(hybrid.Options{Entry: hybrid.EntryOptions{FactoryHardTimeout: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	started, sawCancel := make(chan struct{}), make(chan struct{})
	_, err = hybrid.GetOrSet(context.Background(), c, "k", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
		close(started)
		<-ctx.Done()
		close(sawCancel)
		return 0, ctx.Err()
	})
	if !errors.Is(err, hybrid.ErrFactoryTimeout) {
		t.Fatalf("err = %v, want ErrFactoryTimeout", err)
	}
	// The caller gave up after 1ms; the load may not have started yet on a
	// busy machine (a load that starts after Close never runs its factory).
	// This test is about a factory that is running in the background.
	<-started
	c.Close() // must cancel the factory and wait for it; goleak checks the rest
	select {
	case <-sawCancel:
	default:
		t.Fatal("Close returned before the background factory saw its cancellation")
	}
}

// TestValidateKey: ValidateKey returns what every operation returns for a
// bad key, and nil for a good one, also on a closed cache.
func TestValidateKey(t *testing.T) {
	c, err := hybrid.New(hybrid.Options{MaxKeyLength: 8})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, key := range []string{"", "123456789", "__strata:x"} {
		err := c.ValidateKey(key)
		if !errors.Is(err, hybrid.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", key, err)
		}
		_, _, opErr := hybrid.TryGet[string](context.Background(), c, key)
		if opErr == nil || opErr.Error() != err.Error() {
			t.Errorf("TryGet(%q) = %v; ValidateKey said %v", key, opErr, err)
		}
	}
	if err := c.ValidateKey("12345678"); err != nil {
		t.Errorf("ValidateKey of an 8-byte key with MaxKeyLength 8: %v", err)
	}
}
