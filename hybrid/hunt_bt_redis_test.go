package hybrid_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// Over a real Redis, without a backplane: node A writes tagged entries with
// fail-safe and invalidates them; node B, which never held them, reads them
// with a failing batch factory and with TryGetMany. B learns the
// invalidation from its record in Redis, and L2's copy is its fallback
// after the expiring kinds, none after the deleting kinds.
func TestHuntRedisBatchInvalidationSeenByNewNode(t *testing.T) {
	srv := redistest.Start(t)
	cases := []struct {
		name     string
		inv      func(ctx context.Context, c *hybrid.Cache) error
		fallback bool
		other    bool // the entry without the tag is invalidated too
	}{
		{"RemoveByTag", func(ctx context.Context, c *hybrid.Cache) error { return c.RemoveByTag(ctx, "t") }, true, false},
		{"DeleteTagged", func(ctx context.Context, c *hybrid.Cache) error {
			return c.RemoveByTagWith(ctx, hybrid.DeleteTagged, "t")
		}, false, false},
		{"Clear(true)", func(ctx context.Context, c *hybrid.Cache) error { return c.Clear(ctx, true) }, true, true},
		{"Clear(false)", func(ctx context.Context, c *hybrid.Cache) error { return c.Clear(ctx, false) }, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if err := srv.Client(t).FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			entry := hybrid.EntryOptions{Duration: time.Hour, FailSafe: true, FailSafeThrottleDuration: time.Minute}
			a := node(t, srv.Client(t), entry)
			if err := hybrid.SetMany(ctx, a, map[string]string{"x": "vx", "y": "vy"}, hybrid.WithTags("t")); err != nil {
				t.Fatal(err)
			}
			if err := hybrid.Set(ctx, a, "u", "vu", hybrid.WithTags("other")); err != nil {
				t.Fatal(err)
			}
			if err := tc.inv(ctx, a); err != nil {
				t.Fatal(err)
			}
			b := node(t, srv.Client(t), entry)
			tr, err := hybrid.TryGetMany[string](ctx, b, []string{"x", "u", "y"})
			if err != nil {
				t.Fatal(err)
			}
			if tr[0].Found || tr[2].Found || tr[1].Found != !tc.other {
				t.Fatalf("B TryGetMany: %+v; want x, y missed and u found %v", tr, !tc.other)
			}
			stale := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })
			tr, err = hybrid.TryGetMany[string](ctx, b, []string{"x", "y"}, stale)
			if err != nil {
				t.Fatal(err)
			}
			if tr[0].Found != tc.fallback || tr[1].Found != tc.fallback {
				t.Fatalf("B TryGetMany(AllowStaleOnRead): %+v; want found %v", tr, tc.fallback)
			}
			calls := 0
			res := mustMany(t, b, []string{"x", "u", "y"}, failing(&calls))
			for i, k := range []string{"x", "u", "y"} {
				invalidated := k != "u" || tc.other
				switch {
				case !invalidated:
					wantValue(t, res[i], k+" (not invalidated, from L2)", "v"+k)
				case tc.fallback:
					wantValue(t, res[i], k+" (L2 fallback)", "v"+k)
				default:
					wantErr(t, res[i], k+" (no fallback)", errDB)
				}
			}
			if calls != 1 {
				t.Fatalf("factory calls = %d, want 1", calls)
			}
			// Node A itself, reading through memory: the same answers.
			res = mustMany(t, a, []string{"x", "u", "y"}, failing(&calls))
			for i, k := range []string{"x", "u", "y"} {
				invalidated := k != "u" || tc.other
				switch {
				case !invalidated || tc.fallback:
					wantValue(t, res[i], "A "+k, "v"+k)
				default:
					wantErr(t, res[i], "A "+k+" (no fallback)", errDB)
				}
			}
		})
	}
}

// Over Redis, a batch load and single-key loads of the same keys on one
// node, concurrently: each key is loaded once; a writer on a second node
// then sees the values in Redis.
func TestHuntRedisBatchRacingSingleKeyOneLoadPerKey(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	entry := hybrid.EntryOptions{Duration: time.Hour}
	a := node(t, srv.Client(t), entry)
	keys := keysOf(20)
	var mu sync.Mutex
	loads := map[string]int{}
	gate := make(chan struct{})
	bf := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		<-gate
		out := map[string]string{}
		mu.Lock()
		defer mu.Unlock()
		for _, k := range bc.Keys() {
			loads[k]++
			out[k] = "v-" + k
		}
		return out, nil
	}
	sf := func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		<-gate
		mu.Lock()
		defer mu.Unlock()
		loads[fc.Key()]++
		return "v-" + fc.Key(), nil
	}
	var wg, started sync.WaitGroup
	var bad atomic.Int64
	for i := range 8 {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			// Overlapping windows of the keys, in both directions.
			ks := keys[i : i+12]
			if i%2 == 1 {
				ks = append([]string(nil), ks...)
				for l, r := 0, len(ks)-1; l < r; l, r = l+1, r-1 {
					ks[l], ks[r] = ks[r], ks[l]
				}
			}
			res, err := hybrid.GetOrSetMany(ctx, a, ks, bf)
			if err != nil {
				bad.Add(1)
				return
			}
			for j, r := range res {
				if !r.Found || r.Value != "v-"+ks[j] {
					bad.Add(1)
				}
			}
		}()
	}
	for _, k := range keys {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			if v, err := hybrid.GetOrSet(ctx, a, k, sf); err != nil || v != "v-"+k {
				bad.Add(1)
			}
		}()
	}
	// The factories are held until every caller runs, so that the
	// callers overlap; whoever reaches a key first loads it, the others
	// join or, arriving later, find it in memory.
	started.Wait()
	close(gate)
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d wrong answers", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range keys {
		if loads[k] != 1 {
			t.Fatalf("key %s loaded %d times, want 1 (loads %v)", k, loads[k], loads)
		}
	}
	b := node(t, srv.Client(t), entry)
	tr, err := hybrid.TryGetMany[string](ctx, b, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range tr {
		wantValue(t, r, keys[i]+" on B", "v-"+keys[i])
	}
}

// Over Redis: node B never held the keys; A expired them (RemoveByTag,
// Expire). B's batch with a slow factory and a soft timeout answers the
// keys from L2's stale copies at the soft timeout ("the load puts the
// distributed tier's stale copy [in memory] before it calls the factory"),
// a cold key waits for the factory, and the factory's values then replace
// the fallbacks on B and in Redis.
func TestHuntRedisBatchSoftTimeoutFallbackFromL2(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	entry := hybrid.EntryOptions{Duration: time.Hour, FailSafe: true, FailSafeThrottleDuration: time.Hour}
	a := node(t, srv.Client(t), entry)
	if err := hybrid.SetMany(ctx, a, map[string]string{"x": "old-x", "y": "old-y"}, hybrid.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveByTag(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, a, "z", "old-z"); err != nil {
		t.Fatal(err)
	}
	if err := a.Expire(ctx, "z"); err != nil {
		t.Fatal(err)
	}
	b := node(t, srv.Client(t), entry)
	release := make(chan struct{})
	var calls atomic.Int64
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		calls.Add(1)
		<-release
		out := map[string]string{}
		for _, k := range bc.Keys() {
			out[k] = "new-" + k
		}
		return out, nil
	}
	type answer struct {
		res []hybrid.Result[string]
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := hybrid.GetOrSetMany(ctx, b, []string{"x", "y", "z"}, f,
			hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.FactorySoftTimeout = 50 * time.Millisecond }))
		done <- answer{res, err}
	}()
	// The fallbacks answer at the soft timeout while the factory is held.
	var got answer
	select {
	case got = <-done:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("GetOrSetMany did not answer at the soft timeout")
	}
	if got.err != nil {
		t.Fatal(got.err)
	}
	for i, k := range []string{"x", "y", "z"} {
		wantValue(t, got.res[i], k+" (L2 fallback at the soft timeout)", "old-"+k)
	}
	close(release)
	redistest.Eventually(t, "the background completion lands on B", func() bool {
		tr, err := hybrid.TryGetMany[string](ctx, b, []string{"x", "y", "z"})
		if err != nil {
			return false
		}
		for i, k := range []string{"x", "y", "z"} {
			if !tr[i].Found || tr[i].Value != "new-"+k {
				return false
			}
		}
		return true
	})
	c := node(t, srv.Client(t), entry)
	tr, err := hybrid.TryGetMany[string](ctx, c, []string{"x", "y", "z"})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{"x", "y", "z"} {
		wantValue(t, tr[i], k+" on a third node", "new-"+k)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("factory calls = %d, want 1", n)
	}
}

// Over Redis: the throttle of fallbacks a node took from L2 holds on that
// node: a second failing batch within the throttle does not call the source.
func TestHuntRedisBatchThrottleOfL2Fallback(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	entry := hybrid.EntryOptions{Duration: time.Hour, FailSafe: true, FailSafeThrottleDuration: time.Hour}
	a := node(t, srv.Client(t), entry)
	if err := hybrid.SetMany(ctx, a, map[string]string{"x": "vx", "y": "vy"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Clear(ctx, true); err != nil {
		t.Fatal(err)
	}
	b := node(t, srv.Client(t), entry)
	calls := 0
	for round := range 3 {
		res := mustMany(t, b, []string{"x", "y"}, failing(&calls))
		wantValue(t, res[0], "x", "vx")
		wantValue(t, res[1], "y", "vy")
		if calls != 1 {
			t.Fatalf("round %d: factory calls = %d, want 1 (throttled)", round, calls)
		}
	}
}
