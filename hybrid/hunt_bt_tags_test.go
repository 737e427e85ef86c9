package hybrid_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// failing is a batch factory that fails every call with errDB, counting
// the calls.
func failing(calls *int) hybrid.BatchFactory[string] {
	return func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		*calls++
		return nil, errDB
	}
}

func wantErr(t *testing.T, r hybrid.Result[string], key string, target error) {
	t.Helper()
	if r.Found || !errors.Is(r.Err, target) {
		t.Fatalf("%s: got %+v, want an error matching %v", key, r, target)
	}
}

// What an invalidation leaves to a batch read whose factory fails, for
// entries written with fail-safe: the expiring kinds leave a fallback (served
// and throttled), the deleting kinds none; keys the invalidation did not
// concern are answered by memory and not asked.
func TestHuntBatchInvalidationThenFailingFactory(t *testing.T) {
	cases := []struct {
		name     string
		inv      func(ctx context.Context, c *hybrid.Cache) error
		fallback bool
		other    bool // the untagged key is invalidated too
	}{
		{"RemoveByTag", func(ctx context.Context, c *hybrid.Cache) error { return c.RemoveByTag(ctx, "t") }, true, false},
		{"ExpireTagged", func(ctx context.Context, c *hybrid.Cache) error {
			return c.RemoveByTagWith(ctx, hybrid.ExpireTagged, "t")
		}, true, false},
		{"DeleteTagged", func(ctx context.Context, c *hybrid.Cache) error {
			return c.RemoveByTagWith(ctx, hybrid.DeleteTagged, "t")
		}, false, false},
		{"Clear(true)", func(ctx context.Context, c *hybrid.Cache) error { return c.Clear(ctx, true) }, true, true},
		{"Clear(false)", func(ctx context.Context, c *hybrid.Cache) error { return c.Clear(ctx, false) }, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
					Duration: time.Hour, FailSafe: true, FailSafeThrottleDuration: 10 * time.Second}})
				ctx := context.Background()
				f := &constFactory{}
				mustMany(t, c, []string{"a", "b"}, f.fn, hybrid.WithTags("t"))
				mustMany(t, c, []string{"u"}, f.fn, hybrid.WithTags("other"))
				time.Sleep(time.Millisecond)
				if err := tc.inv(ctx, c); err != nil {
					t.Fatal(err)
				}
				calls := 0
				res := mustMany(t, c, []string{"a", "u", "b"}, failing(&calls))
				for _, i := range []int{0, 2} {
					k := []string{"a", "u", "b"}[i]
					if tc.fallback {
						wantValue(t, res[i], k+" (fallback)", "new-"+k)
					} else {
						wantErr(t, res[i], k+" (no fallback)", errDB)
					}
				}
				switch {
				case !tc.other:
					wantValue(t, res[1], "u (not invalidated)", "new-u")
				case tc.fallback:
					wantValue(t, res[1], "u (fallback)", "new-u")
				default:
					wantErr(t, res[1], "u (no fallback)", errDB)
				}
				if calls != 1 {
					t.Fatalf("factory calls = %d, want 1", calls)
				}
				// The same as single-key reads: TryGetMany with AllowStaleOnRead
				// finds the throttled fallbacks as fresh; after a deleting
				// invalidation, nothing.
				stale := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })
				tr, err := hybrid.TryGetMany[string](ctx, c, []string{"a", "b"}, stale)
				if err != nil {
					t.Fatal(err)
				}
				for i, r := range tr {
					if r.Found != tc.fallback {
						t.Fatalf("TryGetMany(AllowStaleOnRead)[%d] = %+v, want Found %v", i, r, tc.fallback)
					}
				}
				// A second failing batch within the throttle: the fallbacks
				// are fresh, the factory is not called for them.
				res = mustMany(t, c, []string{"a", "b"}, failing(&calls))
				if tc.fallback {
					wantValue(t, res[0], "a (throttled)", "new-a")
					if calls != 1 {
						t.Fatalf("factory calls = %d, want 1 (the throttle holds after the invalidation)", calls)
					}
				} else if calls != 2 {
					t.Fatalf("factory calls = %d, want 2", calls)
				}
			})
		})
	}
}

// A later invalidation of one of its tags applies to a throttled fallback
// (docs/tags.md): the throttled copy keeps its tags, for batch and
// single-key loads alike; a RemoveByTag of a tag it never had does not.
func TestHuntThrottledCopyKeepsItsTags(t *testing.T) {
	for _, batch := range []bool{false, true} {
		name := "single"
		if batch {
			name = "batch"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
					Duration: time.Hour, FailSafe: true, FailSafeThrottleDuration: time.Minute}})
				ctx := context.Background()
				calls := 0
				get := func(fail bool) (string, error) {
					if batch {
						f := &constFactory{}
						if fail {
							f.fail(errDB)
						}
						res := mustMany(t, c, []string{"k"}, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
							calls++
							return f.fn(ctx, bc)
						})
						return res[0].Value, res[0].Err
					}
					return hybrid.GetOrSet(ctx, c, "k", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
						calls++
						if fail {
							return "", errDB
						}
						fc.SetTags("t1", "t2")
						return "new-k", nil
					}, hybrid.WithTags("t1", "t2"))
				}
				if batch {
					if _, err := hybrid.GetOrSetMany(ctx, c, []string{"k"}, (&constFactory{}).fn, hybrid.WithTags("t1", "t2")); err != nil {
						t.Fatal(err)
					}
				} else if _, err := get(false); err != nil {
					t.Fatal(err)
				}
				calls = 0
				time.Sleep(time.Millisecond)
				if err := c.RemoveByTag(ctx, "t1"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
				if v, err := get(true); err != nil || v != "new-k" {
					t.Fatalf("after RemoveByTag(t1): %q, %v; want the fallback", v, err)
				}
				time.Sleep(time.Millisecond)
				if err := c.RemoveByTag(ctx, "unrelated"); err != nil {
					t.Fatal(err)
				}
				if v, err := get(true); err != nil || v != "new-k" || calls != 1 {
					t.Fatalf("throttled, after an unrelated tag: %q, %v, calls %d; want the throttled copy, no call", v, err, calls)
				}
				time.Sleep(time.Millisecond)
				if err := c.RemoveByTag(ctx, "t2"); err != nil {
					t.Fatal(err)
				}
				if _, ok := mustGet[string](t, c, "k"); ok {
					t.Fatal("the throttled copy survived a RemoveByTag of one of its tags")
				}
				if v, err := get(true); err != nil || v != "new-k" || calls != 2 {
					t.Fatalf("after RemoveByTag(t2): %q, %v, calls %d; want a new factory call and the fallback", v, err, calls)
				}
				time.Sleep(time.Millisecond)
				if err := c.RemoveByTagWith(ctx, hybrid.DeleteTagged, "t1"); err != nil {
					t.Fatal(err)
				}
				if v, err := get(true); !errors.Is(err, errDB) || calls != 3 {
					t.Fatalf("after DeleteTagged(t1): %q, %v, calls %d; want the error (no fallback)", v, err, calls)
				}
			})
		})
	}
}

// Tags set per key by a batch factory replace the call's tags for that key
// only; an entry re-written with other tags no longer answers to its old ones.
func TestHuntBatchSetTagsPerKeyAndRetagging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Hour}})
		ctx := context.Background()
		f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			out := map[string]string{}
			for _, k := range bc.Keys() {
				if k == "own" {
					bc.For(k).SetTags("own-tag")
				}
				out[k] = "v-" + k
			}
			return out, nil
		}
		mustMany(t, c, []string{"own", "call"}, f, hybrid.WithTags("call-tag"))
		time.Sleep(time.Millisecond)
		if err := c.RemoveByTag(ctx, "call-tag"); err != nil {
			t.Fatal(err)
		}
		if _, ok := mustGet[string](t, c, "own"); !ok {
			t.Fatal("own lost to the call's tag, which SetTags replaced")
		}
		if _, ok := mustGet[string](t, c, "call"); ok {
			t.Fatal("call survived RemoveByTag of its tag")
		}
		time.Sleep(time.Millisecond)
		if err := c.RemoveByTag(ctx, "own-tag"); err != nil {
			t.Fatal(err)
		}
		if _, ok := mustGet[string](t, c, "own"); ok {
			t.Fatal("own survived RemoveByTag of the tag its factory set")
		}

		// Re-written with other tags: SetMany then GetOrSetMany.
		if err := hybrid.SetMany(ctx, c, map[string]string{"x": "x1", "y": "y1"}, hybrid.WithTags("old")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if err := hybrid.SetMany(ctx, c, map[string]string{"x": "x2"}, hybrid.WithTags("new")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if err := c.RemoveByTag(ctx, "old"); err != nil {
			t.Fatal(err)
		}
		tr, err := hybrid.TryGetMany[string](ctx, c, []string{"x", "y"})
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, tr[0], "x (re-tagged)", "x2")
		if tr[1].Found {
			t.Fatalf("y (still tagged old): %+v, want a miss", tr[1])
		}
		time.Sleep(time.Millisecond)
		if err := c.RemoveByTag(ctx, "new"); err != nil {
			t.Fatal(err)
		}
		if _, ok := mustGet[string](t, c, "x"); ok {
			t.Fatal("x survived RemoveByTag of its new tag")
		}
	})
}

// Expire and the tag invalidations, in both orders, for entries written with
// fail-safe, read by a failing batch: an Expire never brings back what a
// deleting invalidation removed, and an expiring one keeps the fallback.
func TestHuntBatchExpireAndRemoveByTagOrder(t *testing.T) {
	type step func(ctx context.Context, c *hybrid.Cache) error
	expire := func(ctx context.Context, c *hybrid.Cache) error { return c.Expire(ctx, "k") }
	rbt := func(ctx context.Context, c *hybrid.Cache) error { return c.RemoveByTag(ctx, "t") }
	del := func(ctx context.Context, c *hybrid.Cache) error {
		return c.RemoveByTagWith(ctx, hybrid.DeleteTagged, "t")
	}
	clearF := func(ctx context.Context, c *hybrid.Cache) error { return c.Clear(ctx, false) }
	cases := []struct {
		name     string
		steps    []step
		fallback bool
	}{
		{"Expire,RemoveByTag", []step{expire, rbt}, true},
		{"RemoveByTag,Expire", []step{rbt, expire}, true},
		{"Expire,DeleteTagged", []step{expire, del}, false},
		{"DeleteTagged,Expire", []step{del, expire}, false},
		{"Clear(false),Expire", []step{clearF, expire}, false},
		{"Expire,Clear(false)", []step{expire, clearF}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
					Duration: time.Hour, FailSafe: true}})
				ctx := context.Background()
				if err := hybrid.SetMany(ctx, c, map[string]string{"k": "v"}, hybrid.WithTags("t")); err != nil {
					t.Fatal(err)
				}
				for _, s := range tc.steps {
					time.Sleep(time.Millisecond)
					if err := s(ctx, c); err != nil {
						t.Fatal(err)
					}
				}
				calls := 0
				res := mustMany(t, c, []string{"k"}, failing(&calls))
				if tc.fallback {
					wantValue(t, res[0], "k", "v")
				} else {
					wantErr(t, res[0], "k", errDB)
				}
				v, err := hybrid.GetOrSet(ctx, c, "k2", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
					return "", errDB
				})
				_ = v
				if !errors.Is(err, errDB) {
					t.Fatalf("k2 (never written): %v", err)
				}
			})
		})
	}
}

// A batch load whose factory started before a RemoveByTag/Clear and ends
// after it: its callers get the value, and the next read reloads (the entry
// is already invalidated: "created" is when the factory started).
func TestHuntBatchLoadRacingInvalidation(t *testing.T) {
	for _, name := range []string{"RemoveByTag", "Clear(false)", "DeleteTagged"} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Hour}})
				ctx := context.Background()
				started, release := make(chan struct{}), make(chan struct{})
				var calls int
				f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
					calls++
					if calls == 1 {
						close(started)
						<-release
					}
					out := map[string]string{}
					for _, k := range bc.Keys() {
						out[k] = "v" + string(rune('0'+calls))
					}
					return out, nil
				}
				done := make(chan []hybrid.Result[string])
				go func() { done <- mustMany(t, c, []string{"a", "b"}, f, hybrid.WithTags("t")) }()
				<-started
				time.Sleep(time.Millisecond)
				var err error
				switch name {
				case "RemoveByTag":
					err = c.RemoveByTag(ctx, "t")
				case "Clear(false)":
					err = c.Clear(ctx, false)
				default:
					err = c.RemoveByTagWith(ctx, hybrid.DeleteTagged, "t")
				}
				if err != nil {
					t.Fatal(err)
				}
				close(release)
				res := <-done
				wantValue(t, res[0], "a (the load's callers)", "v1")
				wantValue(t, res[1], "b (the load's callers)", "v1")
				tr, err := hybrid.TryGetMany[string](ctx, c, []string{"a", "b"})
				if err != nil {
					t.Fatal(err)
				}
				if tr[0].Found || tr[1].Found {
					t.Fatalf("after the load: %+v, want misses (invalidated while loading)", tr)
				}
				res = mustMany(t, c, []string{"a", "b"}, f, hybrid.WithTags("t"))
				wantValue(t, res[0], "a (reloaded)", "v2")
				if calls != 2 {
					t.Fatalf("factory calls = %d, want 2", calls)
				}
			})
		})
	}
}
