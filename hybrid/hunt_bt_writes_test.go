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

// A write of a key while a batch loads it (RemoveMany, Expire, Remove,
// SetMany): the batch's callers get the batch's value, but the load, which
// started before the write, does not put its older value back in memory.
func TestHuntBatchLoadDoesNotUndoWriteDuringIt(t *testing.T) {
	cases := []struct {
		name  string
		write func(ctx context.Context, c *hybrid.Cache) error
		want  string // what memory holds afterwards for "a" ("" = a miss)
	}{
		{"RemoveMany", func(ctx context.Context, c *hybrid.Cache) error { return c.RemoveMany(ctx, []string{"a", "a"}) }, ""},
		{"Remove", func(ctx context.Context, c *hybrid.Cache) error { return c.Remove(ctx, "a") }, ""},
		{"Expire", func(ctx context.Context, c *hybrid.Cache) error { return c.Expire(ctx, "a") }, ""},
		{"SetMany", func(ctx context.Context, c *hybrid.Cache) error {
			return hybrid.SetMany(ctx, c, map[string]string{"a": "written"})
		}, "written"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Hour}})
				ctx := context.Background()
				started, release := make(chan struct{}), make(chan struct{})
				f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
					close(started)
					<-release
					return map[string]string{"a": "loaded", "b": "loaded"}, nil
				}
				done := make(chan []hybrid.Result[string])
				go func() { done <- mustMany(t, c, []string{"a", "b"}, f) }()
				<-started
				time.Sleep(time.Millisecond)
				if err := tc.write(ctx, c); err != nil {
					t.Fatal(err)
				}
				close(release)
				res := <-done
				wantValue(t, res[0], "a (the batch's callers)", "loaded")
				wantValue(t, res[1], "b", "loaded")
				v, ok := mustGet[string](t, c, "a")
				if tc.want == "" && ok {
					t.Fatalf("a after the load: %q, want a miss (the %s came after the load started)", v, tc.name)
				}
				if tc.want != "" && (!ok || v != tc.want) {
					t.Fatalf("a after the load: %q, %v; want %q", v, ok, tc.want)
				}
				if v, ok := mustGet[string](t, c, "b"); !ok || v != "loaded" {
					t.Fatalf("b: %q, %v", v, ok)
				}
			})
		})
	}
}

// A batch factory that both returns a key and fails it: the failure wins,
// the value is ignored (docs/batch.md). Duplicates of the failed key all
// carry the error.
func TestHuntBatchFailAndReturnSameKey(t *testing.T) {
	c := newCache(t, hybrid.Options{Logger: quietLogger()})
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		bc.Fail("a", errDB)
		bc.Fail("not-asked", errDB) // ignored
		bc.Fail("b", nil)           // ignored
		return map[string]string{"a": "va", "b": "vb"}, nil
	}
	res := mustMany(t, c, []string{"a", "b", "a", ""}, f)
	wantErr(t, res[0], "a", errDB)
	wantValue(t, res[1], "b", "vb")
	wantErr(t, res[2], "a (duplicate)", errDB)
	wantErr(t, res[3], "empty key", hybrid.ErrInvalidKey)
	if _, ok := mustGet[string](t, c, "a"); ok {
		t.Fatal("the failed key's value was cached")
	}
	if _, ok := mustGet[string](t, c, "not-asked"); ok {
		t.Fatal("a key not asked for was cached")
	}
}

// Invalid keys among valid ones, with duplicates: the factory sees each
// valid key once, never an invalid one, and every position is answered.
func TestHuntBatchInvalidAndDuplicateKeysFactoryView(t *testing.T) {
	c := newCache(t, hybrid.Options{Logger: quietLogger(), MaxKeyLength: 8})
	var seen []string
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		seen = append(seen, bc.Keys()...)
		out := map[string]string{}
		for _, k := range bc.Keys() {
			out[k] = "v-" + k
		}
		return out, nil
	}
	keys := []string{"", "a", "__strata:x", "b", "a", "toolongkey", "b", "c"}
	res := mustMany(t, c, keys, f)
	for i, k := range keys {
		switch k {
		case "a", "b", "c":
			wantValue(t, res[i], k, "v-"+k)
		default:
			wantErr(t, res[i], "invalid "+k, hybrid.ErrInvalidKey)
		}
	}
	if len(seen) != 3 || seen[0] != "a" || seen[1] != "b" || seen[2] != "c" {
		t.Fatalf("factory saw %q, want [a b c]", seen)
	}
	tr, err := hybrid.TryGetMany[string](context.Background(), c, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		switch k {
		case "a", "b", "c":
			wantValue(t, tr[i], "TryGetMany "+k, "v-"+k)
		default:
			wantErr(t, tr[i], "TryGetMany invalid "+k, hybrid.ErrInvalidKey)
		}
	}
	// All keys invalid: no factory call, every Result an error, no call error.
	seen = nil
	res = mustMany(t, c, []string{"", "__strata:y"}, f)
	if seen != nil || res[0].Err == nil || res[1].Err == nil {
		t.Fatalf("all invalid: %+v, factory saw %q", res, seen)
	}
}

// A cached "not found" from a batch is an ordinary entry for the
// invalidations: tagged by the call, a RemoveByTag of its tag (or a Clear)
// makes the next call ask the source again.
func TestHuntBatchNotFoundInvalidatedByTag(t *testing.T) {
	for _, inv := range []string{"RemoveByTag", "Clear"} {
		t.Run(inv, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
					Duration: time.Hour, NotFoundDuration: time.Hour}})
				ctx := context.Background()
				var asked atomic.Int64
				have := atomic.Bool{}
				f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
					asked.Add(int64(len(bc.Keys())))
					if have.Load() {
						return map[string]string{"gone": "back"}, nil
					}
					return nil, nil
				}
				res := mustMany(t, c, []string{"gone"}, f, hybrid.WithTags("t"))
				if res[0].Found || res[0].Err != nil {
					t.Fatalf("first: %+v, want a miss", res[0])
				}
				mustMany(t, c, []string{"gone"}, f, hybrid.WithTags("t"))
				if n := asked.Load(); n != 1 {
					t.Fatalf("asked %d times, want 1 (the not-found is cached)", n)
				}
				time.Sleep(time.Millisecond)
				var err error
				if inv == "Clear" {
					err = c.Clear(ctx, true)
				} else {
					err = c.RemoveByTag(ctx, "t")
				}
				if err != nil {
					t.Fatal(err)
				}
				have.Store(true)
				res = mustMany(t, c, []string{"gone"}, f, hybrid.WithTags("t"))
				wantValue(t, res[0], "gone (asked again after the invalidation)", "back")
				if _, err := hybrid.GetOrSet(ctx, c, "gone", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
					return "", errors.New("not called")
				}); err != nil {
					t.Fatalf("GetOrSet after: %v", err)
				}
			})
		})
	}
}

// With DisableBackgroundCompletion, the batch caller releases its keys at
// the hard timeout: the next call starts a load of its own at once (a new
// factory call), and the late result of the first load is dropped.
func TestHuntBatchDBCReleasesKeysAtHardTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Hour, FactoryHardTimeout: time.Second, DisableBackgroundCompletion: true}})
		var calls atomic.Int64
		f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			n := calls.Add(1)
			if n == 1 {
				<-ctx.Done() // the factory's context ends at the hard timeout
				return map[string]string{"k": "late"}, nil
			}
			return map[string]string{"k": "second"}, nil
		}
		res := mustMany(t, c, []string{"k"}, f)
		wantErr(t, res[0], "k (hard timeout)", hybrid.ErrFactoryTimeout)
		res = mustMany(t, c, []string{"k"}, f)
		wantValue(t, res[0], "k (a new load)", "second")
		synctest.Wait()
		if v, ok := mustGet[string](t, c, "k"); !ok || v != "second" {
			t.Fatalf("k: %q, %v; want second (the late result dropped)", v, ok)
		}
		if n := calls.Load(); n != 2 {
			t.Fatalf("factory calls = %d, want 2", n)
		}
	})
}

// A cancelled context while a batch waits: the keys memory answered keep
// their Results, duplicates of an unanswered key all carry ctx.Err(), and
// TryGetMany with a context already done does nothing.
func TestHuntBatchCancelKeepsAnsweredKeys(t *testing.T) {
	c := newCache(t, hybrid.Options{Logger: quietLogger()})
	if err := hybrid.Set(context.Background(), c, "hit", "h"); err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		close(started)
		<-release
		return map[string]string{"slow": "s"}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	res, err := hybrid.GetOrSetMany(ctx, c, []string{"slow", "hit", "slow", ""}, f)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("call error %v, want context.Canceled", err)
	}
	wantErr(t, res[0], "slow", context.Canceled)
	wantValue(t, res[1], "hit", "h")
	wantErr(t, res[2], "slow (duplicate)", context.Canceled)
	wantErr(t, res[3], "empty key", hybrid.ErrInvalidKey)
	close(release)
	// The load goes on for the others: a second caller gets its value.
	res = mustMany(t, c, []string{"slow"}, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		return nil, errors.New("second load: the first one's value should answer")
	})
	wantValue(t, res[0], "slow (the first load's)", "s")

	if _, err := hybrid.TryGetMany[string](ctx, c, []string{"hit"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("TryGetMany with a done ctx: %v", err)
	}
}
