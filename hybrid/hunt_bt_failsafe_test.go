package hybrid_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// constFactory answers every key asked with "new-<key>", after sleeping d
// (fake time inside a synctest bubble), counting its calls and the keys.
type constFactory struct {
	calls atomic.Int64
	keys  atomic.Int64
	sleep atomic.Int64 // a time.Duration
	err   atomic.Pointer[error]
}

func (f *constFactory) fn(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
	f.calls.Add(1)
	f.keys.Add(int64(len(bc.Keys())))
	if d := time.Duration(f.sleep.Load()); d > 0 {
		time.Sleep(d)
	}
	if p := f.err.Load(); p != nil {
		return nil, *p
	}
	out := map[string]string{}
	for _, k := range bc.Keys() {
		out[k] = "new-" + k
	}
	return out, nil
}

func (f *constFactory) fail(err error) { f.err.Store(&err) }

// A batch mixing a fresh key, a stale key and a cold key, with a failing
// source: the fresh key is answered by memory (never asked), the stale one
// by its fallback, the cold one with the factory's error wrapped with its
// key; the factory is called once, for the stale and the cold key only.
func TestHuntBatchMixFreshStaleMissingFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: 10 * time.Second}})
		ctx := context.Background()
		f := &constFactory{}
		mustMany(t, c, []string{"stale"}, f.fn)
		time.Sleep(2 * time.Second)
		if err := hybrid.Set(ctx, c, "fresh", "set"); err != nil {
			t.Fatal(err)
		}
		f.fail(errDB)
		f.calls.Store(0)
		f.keys.Store(0)
		res := mustMany(t, c, []string{"fresh", "stale", "cold", "stale"}, f.fn)
		wantValue(t, res[0], "fresh", "set")
		wantValue(t, res[1], "stale", "new-stale")
		wantValue(t, res[3], "stale (duplicate)", "new-stale")
		if r := res[2]; r.Found || !errors.Is(r.Err, errDB) || !strings.Contains(r.Err.Error(), `"cold"`) {
			t.Fatalf("cold: %+v, want the factory's error naming the key", r)
		}
		if n, k := f.calls.Load(), f.keys.Load(); n != 1 || k != 2 {
			t.Fatalf("factory: %d calls for %d keys, want 1 call for 2 keys (stale, cold)", n, k)
		}
		// The throttle holds for the stale key; the cold key is asked again.
		res = mustMany(t, c, []string{"stale", "cold"}, f.fn)
		wantValue(t, res[0], "stale (throttled)", "new-stale")
		if !errors.Is(res[1].Err, errDB) {
			t.Fatalf("cold again: %+v", res[1])
		}
		if n, k := f.calls.Load(), f.keys.Load(); n != 2 || k != 3 {
			t.Fatalf("factory: %d calls for %d keys, want 2 calls, 3 keys (only cold asked again)", n, k)
		}
	})
}

// FailSafeDefaultValue answers, per key, the keys of a failed batch that
// have no stale value, as it answers GetOrSet; it is not cached.
func TestHuntBatchFailSafeDefaultOnFactoryError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true}})
		f := &constFactory{}
		mustMany(t, c, []string{"stale"}, f.fn)
		time.Sleep(2 * time.Second)
		f.fail(errDB)
		res := mustMany(t, c, []string{"stale", "cold"}, f.fn, hybrid.WithFailSafeDefault("dflt"))
		wantValue(t, res[0], "stale", "new-stale")
		wantValue(t, res[1], "cold (default)", "dflt")
		if _, ok := mustGet[string](t, c, "cold"); ok {
			t.Fatal("the default value was cached")
		}
	})
}

// After a soft timeout served a key's stale value, the factory goes on and
// its value replaces the throttled fallback when it returns (background
// completion, "as for one key").
func TestHuntBatchSoftTimeoutCompletionReplacesFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: time.Minute,
			FactorySoftTimeout: 100 * time.Millisecond}})
		f := &constFactory{}
		if err := hybrid.SetMany(context.Background(), c, map[string]string{"a": "old-a", "b": "old-b"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		f.sleep.Store(int64(3 * time.Second))
		start := time.Now()
		res := mustMany(t, c, []string{"a", "b"}, f.fn, hybrid.WithDuration(time.Minute))
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("returned after %v, want the soft timeout", d)
		}
		wantValue(t, res[0], "a (soft timeout)", "old-a")
		wantValue(t, res[1], "b (soft timeout)", "old-b")
		time.Sleep(5 * time.Second) // the factory returned at 3s
		for _, k := range []string{"a", "b"} {
			if v, ok := mustGet[string](t, c, k); !ok || v != "new-"+k {
				t.Fatalf("%s after the background completion: %q, %v; want new-%s (not the throttled fallback)", k, v, ok, k)
			}
		}
		res = mustMany(t, c, []string{"a", "b"}, f.fn)
		wantValue(t, res[0], "a", "new-a")
		if n := f.calls.Load(); n != 1 {
			t.Fatalf("factory calls = %d, want 1", n)
		}
	})
}

// A soft timeout with a stale key and a cold key: the stale key is answered
// at the soft timeout, the cold one keeps waiting and gets the factory's
// value; the call returns when the factory does (before the hard timeout).
func TestHuntBatchSoftTimeoutColdKeyKeepsWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: time.Minute,
			FactorySoftTimeout: 100 * time.Millisecond, FactoryHardTimeout: 10 * time.Second}})
		f := &constFactory{}
		if err := hybrid.Set(context.Background(), c, "stale", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		f.sleep.Store(int64(2 * time.Second))
		start := time.Now()
		res := mustMany(t, c, []string{"cold", "stale"}, f.fn)
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("returned after %v, want the factory's 2s", d)
		}
		wantValue(t, res[0], "cold", "new-cold")
		wantValue(t, res[1], "stale (soft timeout)", "old")
		if v, ok := mustGet[string](t, c, "stale"); !ok || v != "new-stale" {
			t.Fatalf("stale after the factory: %q, %v; want new-stale", v, ok)
		}
	})
}

// FailSafeErrorFilter applies per batch: an error it rejects reaches the
// keys with a stale value too, and nothing is throttled.
func TestHuntBatchFailSafeErrorFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errGone := errors.New("gone")
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true,
			FailSafeErrorFilter: func(err error) bool { return !errors.Is(err, errGone) }}})
		f := &constFactory{}
		mustMany(t, c, []string{"a", "b"}, f.fn)
		time.Sleep(2 * time.Second)
		g := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			bc.Fail("a", errGone)
			bc.Fail("b", errDB)
			return nil, nil
		}
		res := mustMany(t, c, []string{"a", "b"}, g)
		if !errors.Is(res[0].Err, errGone) || res[0].Found {
			t.Fatalf("a (filtered error): %+v, want the error", res[0])
		}
		wantValue(t, res[1], "b (fail-safe)", "new-b")
		if _, ok := mustGet[string](t, c, "a"); ok {
			t.Fatal("a was throttled though its error was filtered out")
		}
		if _, ok := mustGet[string](t, c, "b"); !ok {
			t.Fatal("b's fallback was not throttled")
		}
	})
}

// An invalid SetTags for one key fails that key alone (its fallback, or
// ErrInvalidOptions); the others are stored.
func TestHuntBatchInvalidSetTagsFailsOneKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true}})
		f := &constFactory{}
		mustMany(t, c, []string{"stale"}, f.fn)
		time.Sleep(2 * time.Second)
		g := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			out := map[string]string{}
			for _, k := range bc.Keys() {
				if k != "ok" {
					bc.For(k).SetTags("") // invalid
				}
				out[k] = "v2-" + k
			}
			return out, nil
		}
		res := mustMany(t, c, []string{"ok", "stale", "cold"}, g)
		wantValue(t, res[0], "ok", "v2-ok")
		wantValue(t, res[1], "stale (invalid tags: fallback)", "new-stale")
		if !errors.Is(res[2].Err, hybrid.ErrInvalidOptions) {
			t.Fatalf("cold (invalid tags, no fallback): %+v, want ErrInvalidOptions", res[2])
		}
		if v, ok := mustGet[string](t, c, "ok"); !ok || v != "v2-ok" {
			t.Fatalf("ok: %q, %v", v, ok)
		}
		if _, ok := mustGet[string](t, c, "cold"); ok {
			t.Fatal("cold was stored with invalid tags")
		}
	})
}
