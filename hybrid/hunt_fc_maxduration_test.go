package hybrid_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntFallbackEndsAtFailSafeMaxDurationDuringTheFactory: a stale value
// may serve as a fallback until FailSafeMaxDuration after its write
// (docs/failsafe.md). A factory that starts within that time and fails
// after it has no fallback any more: the error (or the default value)
// answers, not the value past its fail-safe life, and no throttled copy
// brings it back. The same for a batch.
func TestHuntFallbackEndsAtFailSafeMaxDurationDuringTheFactory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeMaxDuration: 5 * time.Second,
		}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // stale, within its fail-safe life
		slowFailing := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			time.Sleep(10 * time.Second) // past the write + FailSafeMaxDuration
			return "", errDB
		}
		if v, err := hybrid.GetOrSet(ctx, c, "k", slowFailing); !errors.Is(err, errDB) {
			t.Fatalf("GetOrSet = %q, %v; want the factory's error: the stale value's fail-safe life ended while the factory ran", v, err)
		}
		if v, ok, err := hybrid.TryGet[string](ctx, c, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })); ok {
			t.Fatalf("TryGet with AllowStaleOnRead = %q, %v, %v; the value past its fail-safe life came back", v, ok, err)
		}
		batchFailing := func(context.Context, *hybrid.BatchContext[string]) (map[string]string, error) {
			time.Sleep(10 * time.Second)
			return nil, errDB
		}
		if err := hybrid.Set(ctx, c, "b", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		res, err := hybrid.GetOrSetMany(ctx, c, []string{"b"}, batchFailing)
		if err == nil && len(res) == 1 && res[0].Err == nil && res[0].Found {
			t.Fatalf("GetOrSetMany = %+v, %v; want the factory's error for a value past its fail-safe life", res[0], err)
		}
	})
}

// TestHuntFailSafeThrottleHonoursSkipL1Write: a call with SkipL1Write
// writes nothing to memory, the fail-safe throttle of its fallback
// included: the stale entry stays as it was (stale), so the next call
// without the option runs the factory.
func TestHuntFailSafeThrottleHonoursSkipL1Write(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: 30 * time.Second,
		}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		failing := func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "", errDB }
		skip := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Write = true })
		if v, err := hybrid.GetOrSet(ctx, c, "k", failing, skip); err != nil || v != "old" {
			t.Fatalf("GetOrSet with SkipL1Write = %q, %v; want the fallback", v, err)
		}
		if v, ok, _ := hybrid.TryGet[string](ctx, c, "k"); ok {
			t.Fatalf("TryGet = %q after a fail-safe activation with SkipL1Write; memory holds a fresh throttled copy", v)
		}
	})
}
