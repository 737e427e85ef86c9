package hybrid_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/testlog"
)

// batchLoader is a BatchFactory over a fixed table, counting calls and the
// keys asked of it.
type batchLoader struct {
	mu    sync.Mutex
	calls int
	asked map[string]int
	table map[string]string
	err   error
}

func newLoader(table map[string]string) *batchLoader {
	return &batchLoader{asked: map[string]int{}, table: table}
}

func (l *batchLoader) factory(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	for _, k := range bc.Keys() {
		l.asked[k]++
	}
	if l.err != nil {
		return nil, l.err
	}
	out := map[string]string{}
	for _, k := range bc.Keys() {
		if v, ok := l.table[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

func (l *batchLoader) stats() (calls int, asked map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls, maps.Clone(l.asked)
}

func table(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = fmt.Sprintf("v%d", i)
	}
	return m
}

func keysOf(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("k%d", i)
	}
	return ks
}

func mustMany(t *testing.T, c *hybrid.Cache, keys []string, f hybrid.BatchFactory[string], opts ...hybrid.Option) []hybrid.Result[string] {
	t.Helper()
	res, err := hybrid.GetOrSetMany(context.Background(), c, keys, f, opts...)
	if err != nil {
		t.Fatalf("GetOrSetMany: %v", err)
	}
	if len(res) != len(keys) {
		t.Fatalf("GetOrSetMany: %d results for %d keys", len(res), len(keys))
	}
	return res
}

func wantValue(t *testing.T, r hybrid.Result[string], key, want string) {
	t.Helper()
	if r.Err != nil || !r.Found || r.Value != want {
		t.Fatalf("%s: got %+v, want %q", key, r, want)
	}
}

func TestGetOrSetManyLoadsOnlyMisses(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	ctx := context.Background()
	if err := hybrid.Set(ctx, c, "k1", "cached"); err != nil {
		t.Fatal(err)
	}
	l := newLoader(table(5))
	delete(l.table, "k4") // the source has no k4
	keys := []string{"k0", "k1", "k2", "k0", "k3", "k4"}
	res := mustMany(t, c, keys, l.factory)
	wantValue(t, res[0], "k0", "v0")
	wantValue(t, res[1], "k1", "cached")
	wantValue(t, res[2], "k2", "v2")
	wantValue(t, res[3], "k0 (duplicate)", "v0")
	wantValue(t, res[4], "k3", "v3")
	if r := res[5]; r.Found || r.Err != nil {
		t.Fatalf("k4 (not returned): got %+v, want a miss", r)
	}
	calls, asked := l.stats()
	if calls != 1 {
		t.Fatalf("factory calls = %d, want 1", calls)
	}
	if want := map[string]int{"k0": 1, "k2": 1, "k3": 1, "k4": 1}; !maps.Equal(asked, want) {
		t.Fatalf("asked %v, want %v (each miss once, no hit)", asked, want)
	}
	// Everything returned is cached; the miss is not.
	res = mustMany(t, c, keys, l.factory)
	wantValue(t, res[4], "k3", "v3")
	calls, asked = l.stats()
	if calls != 2 || asked["k4"] != 2 || asked["k0"] != 1 {
		t.Fatalf("second call: calls = %d, asked %v; want only k4 asked again", calls, asked)
	}
	// A single-key read sees batch-loaded values.
	if v, ok := mustGet[string](t, c, "k2"); !ok || v != "v2" {
		t.Fatalf("TryGet(k2) = %q, %v", v, ok)
	}
}

func TestGetOrSetManyBadInput(t *testing.T) {
	c := newCache(t, hybrid.Options{MaxKeyLength: 16})
	ctx := context.Background()
	l := newLoader(table(3))

	res, err := hybrid.GetOrSetMany(ctx, c, nil, l.factory)
	if err != nil || len(res) != 0 {
		t.Fatalf("empty: %v, %v", res, err)
	}
	if calls, _ := l.stats(); calls != 0 {
		t.Fatal("empty list called the factory")
	}
	if _, err := hybrid.GetOrSetMany[string](ctx, c, []string{"k0"}, nil); !errors.Is(err, hybrid.ErrNilFactory) {
		t.Fatalf("nil factory: %v", err)
	}
	if _, err := hybrid.GetOrSetMany(ctx, c, make([]string, hybrid.MaxBatchKeys+1), l.factory); !errors.Is(err, hybrid.ErrTooManyKeys) {
		t.Fatalf("too many keys: %v", err)
	}
	if _, err := hybrid.GetOrSetMany(ctx, c, []string{"k0"}, l.factory, hybrid.WithDuration(-1)); !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Fatalf("bad options: %v", err)
	}
	// Invalid keys among valid ones: their own error, the others served.
	res = mustMany(t, c, []string{"", "k0", strings.Repeat("x", 17), "__strata:tag:x", "k1"}, l.factory)
	for _, i := range []int{0, 2, 3} {
		if !errors.Is(res[i].Err, hybrid.ErrInvalidKey) || res[i].Found {
			t.Fatalf("key %d: %+v, want ErrInvalidKey", i, res[i])
		}
	}
	wantValue(t, res[1], "k0", "v0")
	wantValue(t, res[4], "k1", "v1")
	if _, asked := l.stats(); len(asked) != 2 {
		t.Fatalf("asked %v, want only the valid keys", asked)
	}
	// Canceled context: nothing done.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := hybrid.GetOrSetMany(cctx, c, []string{"k2"}, l.factory); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	c.Close()
	if _, err := hybrid.GetOrSetMany(ctx, c, []string{"k2"}, l.factory); !errors.Is(err, hybrid.ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

func TestGetOrSetManyTypeMismatch(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	ctx := context.Background()
	if err := hybrid.Set(ctx, c, "n", 42); err != nil {
		t.Fatal(err)
	}
	res := mustMany(t, c, []string{"n", "k0"}, newLoader(table(1)).factory)
	if !errors.Is(res[0].Err, hybrid.ErrTypeMismatch) {
		t.Fatalf("n: %+v, want ErrTypeMismatch", res[0])
	}
	wantValue(t, res[1], "k0", "v0")
}

func TestGetOrSetManyUnaskedKeysIgnored(t *testing.T) {
	var logs testlog.Buffer
	c := newCache(t, hybrid.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		bc.For("intruder").SetDuration(time.Hour) // ignored, not a panic
		return map[string]string{"a": "1", "intruder": "x", "other": "y"}, nil
	}
	res := mustMany(t, c, []string{"a"}, f)
	wantValue(t, res[0], "a", "1")
	if _, ok := mustGet[string](t, c, "intruder"); ok {
		t.Fatal("a key that was not asked for was cached")
	}
	if !strings.Contains(logs.String(), "not asked for") || !strings.Contains(logs.String(), "count=2") {
		t.Fatalf("no log line for the unasked keys: %s", logs.String())
	}
}

func TestGetOrSetManyFactoryPanic(t *testing.T) {
	c := newCache(t, hybrid.Options{Logger: quietLogger()})
	ctx := context.Background()
	release := make(chan struct{})
	entered := make(chan struct{})
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		close(entered)
		<-release
		panic("boom")
	}
	// A single-key caller joins the batch's load of "b" while it runs.
	var single error
	var wg sync.WaitGroup
	var got any
	wg.Go(func() {
		defer func() { got = recover() }()
		hybrid.GetOrSetMany(ctx, c, []string{"a", "b"}, f)
	})
	<-entered
	wg.Go(func() {
		_, single = hybrid.GetOrSet(ctx, c, "b", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			return "single", nil
		})
	})
	close(release)
	wg.Wait()
	if got != "boom" {
		t.Fatalf("batch caller recovered %v, want the factory's panic", got)
	}
	// The single caller either waited on the batch (ErrFactoryPanic) or, if
	// it arrived after the panic released the key, loaded it itself.
	if single != nil && !errors.Is(single, hybrid.ErrFactoryPanic) {
		t.Fatalf("single caller: %v", single)
	}
	// The keys are released: a later batch loads them.
	res := mustMany(t, c, []string{"a", "b"}, newLoader(map[string]string{"a": "1", "b": "2"}).factory)
	wantValue(t, res[0], "a", "1")
}

func TestGetOrSetManyWaitsForSingleKeyFlight(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		hybrid.GetOrSet(ctx, c, "k1", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			close(entered)
			<-release
			return "from-single", nil
		})
	}()
	<-entered
	l := newLoader(table(3))
	resc := make(chan []hybrid.Result[string])
	go func() { resc <- mustMany(t, c, []string{"k0", "k1", "k2"}, l.factory) }()
	// The batch loads k0 and k2 without k1, then waits for k1's flight.
	redistest.Eventually(t, "the batch factory ran", func() bool { n, _ := l.stats(); return n == 1 })
	select {
	case <-resc:
		t.Fatal("the batch returned before k1's single-key load ended")
	default:
	}
	close(release)
	res := <-resc
	<-done
	wantValue(t, res[0], "k0", "v0")
	wantValue(t, res[1], "k1", "from-single")
	wantValue(t, res[2], "k2", "v2")
	if _, asked := l.stats(); asked["k1"] != 0 {
		t.Fatalf("the batch factory was asked for k1, which was in flight: %v", asked)
	}
}

func TestSingleKeyWaitsForBatchFlight(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		close(entered)
		<-release
		return map[string]string{"a": "batch-a"}, nil // b: not found
	}
	done := make(chan struct{})
	go func() { defer close(done); mustMany(t, c, []string{"a", "b"}, f) }()
	<-entered
	var single atomic.Int64
	type out struct {
		v   string
		err error
	}
	ch := make(chan out, 2)
	for _, k := range []string{"a", "b"} {
		go func() {
			v, err := hybrid.GetOrSet(ctx, c, k, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
				single.Add(1)
				return "single", nil
			})
			ch <- out{v, err}
		}()
	}
	close(release)
	<-done
	got := []out{<-ch, <-ch}
	// Each single caller either joined the batch's flight (a: batch-a; b:
	// ErrNotFound) or came after it ended and loaded on its own.
	for _, o := range got {
		ok := o.v == "batch-a" && o.err == nil || errors.Is(o.err, hybrid.ErrNotFound) || o.v == "single" && o.err == nil
		if !ok {
			t.Fatalf("single caller got %q, %v", o.v, o.err)
		}
	}
	if v, _ := mustGet[string](t, c, "a"); v != "batch-a" && v != "single" {
		t.Fatalf("a = %q", v)
	}
}

func TestGetOrSetManyStampede(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{})
		defer c.Close()
		var mu sync.Mutex
		loads := map[string]int{}
		f := func(ctx context.Context, bc *hybrid.BatchContext[int]) (map[string]int, error) {
			time.Sleep(10 * time.Millisecond) // the load takes a while: the others pile up
			out := map[string]int{}
			mu.Lock()
			for _, k := range bc.Keys() {
				loads[k]++
				out[k] = len(k)
			}
			mu.Unlock()
			return out, nil
		}
		singles := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			loads[fc.Key()]++
			mu.Unlock()
			return len(fc.Key()), nil
		}
		var wg sync.WaitGroup
		var bad atomic.Int64
		for i := range 1000 {
			wg.Go(func() {
				if i%50 == 0 { // some single-key callers in the crowd
					v, err := hybrid.GetOrSet(context.Background(), c, fmt.Sprintf("key-%d", i%200), singles)
					if err != nil || v != len(fmt.Sprintf("key-%d", i%200)) {
						bad.Add(1)
					}
					return
				}
				keys := make([]string, 20) // overlapping windows over 200 keys
				for j := range keys {
					keys[j] = fmt.Sprintf("key-%d", (i*7+j)%200)
				}
				res, err := hybrid.GetOrSetMany(context.Background(), c, keys, f)
				if err != nil {
					bad.Add(1)
					return
				}
				for j, r := range res {
					if r.Err != nil || !r.Found || r.Value != len(keys[j]) {
						bad.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if n := bad.Load(); n != 0 {
			t.Fatalf("%d wrong answers", n)
		}
		for k, n := range loads {
			if n != 1 {
				t.Errorf("%s loaded %d times, want once", k, n)
			}
		}
		if len(loads) != 200 {
			t.Errorf("%d keys loaded, want 200", len(loads))
		}
	})
}

func TestGetOrSetManyFailSafe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: 10 * time.Second}})
		defer c.Close()
		l := newLoader(table(2))
		mustMany(t, c, []string{"k0", "k1"}, l.factory)
		time.Sleep(2 * time.Second) // both stale now
		l.mu.Lock()
		l.err = errDB
		l.mu.Unlock()
		res := mustMany(t, c, []string{"k0", "k1", "k2"}, l.factory)
		wantValue(t, res[0], "k0 (stale)", "v0")
		wantValue(t, res[1], "k1 (stale)", "v1")
		if !errors.Is(res[2].Err, errDB) || res[2].Found {
			t.Fatalf("k2 (no stale value): %+v, want the factory's error", res[2])
		}
		// The throttle: the stale values count as fresh for a while.
		res = mustMany(t, c, []string{"k0", "k1"}, l.factory)
		wantValue(t, res[0], "k0 (throttled)", "v0")
		if calls, _ := l.stats(); calls != 2 {
			t.Fatalf("factory calls = %d, want 2 (the throttle holds)", calls)
		}
	})
}

func TestGetOrSetManyTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FactorySoftTimeout: 100 * time.Millisecond,
			FactoryHardTimeout: time.Second}})
		defer c.Close()
		mustMany(t, c, []string{"old"}, newLoader(map[string]string{"old": "v-old"}).factory)
		time.Sleep(2 * time.Second)
		var slow atomic.Bool
		f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			if slow.Load() {
				time.Sleep(5 * time.Second)
			}
			out := map[string]string{}
			for _, k := range bc.Keys() {
				out[k] = "new-" + k
			}
			return out, nil
		}
		slow.Store(true)
		start := time.Now()
		res := mustMany(t, c, []string{"old", "cold"}, f)
		wantValue(t, res[0], "old (soft timeout, stale)", "v-old")
		if !errors.Is(res[1].Err, hybrid.ErrFactoryTimeout) {
			t.Fatalf("cold: %+v, want ErrFactoryTimeout", res[1])
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("returned after %v, want the hard timeout (1s)", d)
		}
		// Background completion: the slow factory's results land (at 5s,
		// fresh for 1s).
		time.Sleep(4500 * time.Millisecond)
		if v, ok := mustGet[string](t, c, "cold"); !ok || v != "new-cold" {
			t.Fatalf("after background completion: cold = %q, %v", v, ok)
		}
	})
}

func TestGetOrSetManyAdaptiveAndTags(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Minute}})
		defer c.Close()
		ctx := context.Background()
		f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			out := map[string]string{}
			for _, k := range bc.Keys() {
				fc := bc.For(k)
				if k == "short" {
					fc.SetDuration(time.Second)
				}
				fc.SetTags("t-" + k)
				fc.SetETag("etag-" + k)
				out[k] = "v-" + k
			}
			return out, nil
		}
		mustMany(t, c, []string{"short", "long", "tagged"}, f)
		time.Sleep(2 * time.Second)
		if _, ok := mustGet[string](t, c, "short"); ok {
			t.Fatal("short is still fresh after its own duration")
		}
		if _, ok := mustGet[string](t, c, "long"); !ok {
			t.Fatal("long expired with short's duration")
		}
		if err := c.RemoveByTag(ctx, "t-tagged"); err != nil {
			t.Fatal(err)
		}
		if _, ok := mustGet[string](t, c, "tagged"); ok {
			t.Fatal("RemoveByTag did not apply to a batch-loaded entry")
		}
		if err := c.Clear(ctx, false); err != nil {
			t.Fatal(err)
		}
		if _, ok := mustGet[string](t, c, "long"); ok {
			t.Fatal("Clear did not apply to a batch-loaded entry")
		}
	})
}

func TestGetOrSetManyStaleETagNotModified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Second, FailSafe: true}})
		defer c.Close()
		var seen sync.Map
		f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			out := map[string]string{}
			for _, k := range bc.Keys() {
				fc := bc.For(k)
				if stale, ok := bc.Stale(k); ok {
					seen.Store(k, stale+"|"+fc.ETag())
					v, err := fc.NotModified()
					if err != nil {
						return nil, err
					}
					out[k] = v
					continue
				}
				fc.SetETag("e1")
				out[k] = "first-" + k
			}
			return out, nil
		}
		mustMany(t, c, []string{"a", "b"}, f)
		time.Sleep(2 * time.Second)
		res := mustMany(t, c, []string{"a", "b"}, f)
		wantValue(t, res[0], "a", "first-a")
		if v, _ := seen.Load("b"); v != "first-b|e1" {
			t.Fatalf("the factory saw %v for b's stale value and ETag", v)
		}
		if _, ok := mustGet[string](t, c, "a"); !ok {
			t.Fatal("NotModified did not store the value as fresh again")
		}
	})
}

func TestGetOrSetManyEagerRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5}})
		defer c.Close()
		var gen atomic.Int64
		var calls atomic.Int64
		f := func(ctx context.Context, bc *hybrid.BatchContext[int64]) (map[string]int64, error) {
			calls.Add(1)
			out := map[string]int64{}
			for _, k := range bc.Keys() {
				out[k] = gen.Load()
			}
			return out, nil
		}
		ctx := context.Background()
		hybrid.GetOrSetMany(ctx, c, []string{"a", "b"}, f)
		gen.Store(1)
		time.Sleep(6 * time.Second)
		res, _ := hybrid.GetOrSetMany(ctx, c, []string{"a", "b"}, f) // hits, past the threshold
		if res[0].Value != 0 {
			t.Fatalf("the hit returned %d, want the current value 0", res[0].Value)
		}
		synctest.Wait() // the background refresh ends
		if calls.Load() != 2 {
			t.Fatalf("factory calls = %d, want 2 (one eager batch)", calls.Load())
		}
		res, _ = hybrid.GetOrSetMany(ctx, c, []string{"a", "b"}, f)
		if res[0].Value != 1 || res[1].Value != 1 {
			t.Fatalf("after the eager refresh: %+v", res)
		}
	})
}

func TestGetOrSetManyCallerCancel(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	release := make(chan struct{})
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		<-release
		return map[string]string{"a": "1"}, nil
	}
	if err := hybrid.Set(context.Background(), c, "hit", "h"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond) // lets the call start waiting; the result does not depend on it
		cancel()
	}()
	res, err := hybrid.GetOrSetMany(ctx, c, []string{"hit", "a"}, f)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("call error %v, want context.Canceled", err)
	}
	wantValue(t, res[0], "hit", "h")
	if !errors.Is(res[1].Err, context.Canceled) {
		t.Fatalf("a: %+v, want context.Canceled", res[1])
	}
	close(release)
	// The load goes on for others: its value lands.
	redistest.Eventually(t, "the load completed", func() bool { v, ok := mustGet[string](t, c, "a"); return ok && v == "1" })
}

func TestTryGetMany(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Second, FailSafe: true}})
		defer c.Close()
		ctx := context.Background()
		if err := hybrid.SetMany(ctx, c, map[string]string{"a": "1", "b": "2"}); err != nil {
			t.Fatal(err)
		}
		res, err := hybrid.TryGetMany[string](ctx, c, []string{"a", "missing", "b", "a", ""})
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, res[0], "a", "1")
		if res[1].Found || res[1].Err != nil {
			t.Fatalf("missing: %+v", res[1])
		}
		wantValue(t, res[2], "b", "2")
		wantValue(t, res[3], "a (duplicate)", "1")
		if !errors.Is(res[4].Err, hybrid.ErrInvalidKey) {
			t.Fatalf("empty key: %+v", res[4])
		}
		time.Sleep(2 * time.Second)
		res, _ = hybrid.TryGetMany[string](ctx, c, []string{"a"})
		if res[0].Found {
			t.Fatal("a stale value without AllowStaleOnRead")
		}
		res, _ = hybrid.TryGetMany[string](ctx, c, []string{"a"}, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true }))
		wantValue(t, res[0], "a (stale)", "1")
		if res, err := hybrid.TryGetMany[string](ctx, c, nil); err != nil || len(res) != 0 {
			t.Fatalf("empty: %v, %v", res, err)
		}
	})
}

func TestSetManyRemoveManyBadInput(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	ctx := context.Background()
	err := hybrid.SetMany(ctx, c, map[string]string{"ok": "1", "": "2"})
	if !errors.Is(err, hybrid.ErrInvalidKey) {
		t.Fatalf("SetMany with an empty key: %v", err)
	}
	if _, ok := mustGet[string](t, c, "ok"); ok {
		t.Fatal("SetMany stored a value although a key was invalid")
	}
	if err := hybrid.SetMany(ctx, c, map[string]string{"ok": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveMany(ctx, []string{"ok", "__strata:clear"}); !errors.Is(err, hybrid.ErrInvalidKey) {
		t.Fatalf("RemoveMany with a reserved key: %v", err)
	}
	if _, ok := mustGet[string](t, c, "ok"); !ok {
		t.Fatal("RemoveMany removed a key although another was invalid")
	}
	if err := c.RemoveMany(ctx, []string{"ok", "ok", "absent"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustGet[string](t, c, "ok"); ok {
		t.Fatal("RemoveMany did not remove")
	}
	if err := c.RemoveMany(ctx, nil); err != nil {
		t.Fatal(err)
	}
	big := map[string]string{}
	for i := range hybrid.MaxBatchKeys + 1 {
		big[fmt.Sprint(i)] = ""
	}
	if err := hybrid.SetMany(ctx, c, big); !errors.Is(err, hybrid.ErrTooManyKeys) {
		t.Fatalf("SetMany too many: %v", err)
	}
	if err := c.RemoveMany(ctx, slices.Collect(maps.Keys(big))); !errors.Is(err, hybrid.ErrTooManyKeys) {
		t.Fatalf("RemoveMany too many: %v", err)
	}
}

// Memory-only caches on one backplane: batch writes and batch-loaded
// values are announced, and a receiver applies each message as a single
// one (its copy goes stale).
func TestBatchMemoryOnlyBackplane(t *testing.T) {
	hub := backplane.NewMemoryHub()
	n1 := newCache(t, hybrid.Options{Name: "app", Backplane: hub.Backplane("ch")})
	n2 := newCache(t, hybrid.Options{Name: "app", Backplane: hub.Backplane("ch")})
	ctx := context.Background()
	if err := hybrid.SetMany(ctx, n2, map[string]string{"a": "old", "b": "old", "c": "old"}); err != nil {
		t.Fatal(err)
	}
	mustMany(t, n1, []string{"a", "b"}, newLoader(map[string]string{"a": "new", "b": "new"}).factory)
	redistest.Eventually(t, "n2's copies of a and b go stale", func() bool {
		res, _ := hybrid.TryGetMany[string](ctx, n2, []string{"a", "b"})
		return !res[0].Found && !res[1].Found
	})
	if v, ok := mustGet[string](t, n2, "c"); !ok || v != "old" {
		t.Fatalf("c = %q, %v; want untouched", v, ok)
	}
	if err := hybrid.SetMany(ctx, n1, map[string]string{"c": "newer"}); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "n2's copy of c goes stale", func() bool { _, ok := mustGet[string](t, n2, "c"); return !ok })
}

// A key the batch factory leaves out (or answers with NotFound) is a miss;
// with NotFoundDuration it is cached as "not found" and not asked again.
func TestGetOrSetManyNotFoundCached(t *testing.T) {
	c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{NotFoundDuration: time.Minute}})
	ctx := context.Background()
	var asked atomic.Int64
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		asked.Add(int64(len(bc.Keys())))
		out := map[string]string{}
		for _, k := range bc.Keys() {
			switch k {
			case "present":
				out[k] = "v"
			case "explicit":
				bc.For(k).NotFound()
			}
		}
		return out, nil
	}
	for range 2 {
		res := mustMany(t, c, []string{"present", "absent", "explicit"}, f)
		wantValue(t, res[0], "present", "v")
		for _, r := range res[1:] {
			if r.Found || r.Err != nil {
				t.Fatalf("not found key: %+v, want a miss", r)
			}
		}
	}
	if n := asked.Load(); n != 3 {
		t.Fatalf("keys asked = %d, want 3 (the not-found answers are cached)", n)
	}
	if _, err := hybrid.GetOrSet(ctx, c, "absent", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "x", nil
	}); !errors.Is(err, hybrid.ErrNotFound) {
		t.Fatalf("GetOrSet of a cached not-found: %v, want ErrNotFound", err)
	}
}

// TestBatchL2CallEvents: a batch read and a batch write of the distributed
// tier are one L2Call event each.
func TestBatchL2CallEvents(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var ops []string
	ev := &hybrid.Events{L2Call: func(e hybrid.L2CallEvent) {
		mu.Lock()
		ops = append(ops, e.Op)
		mu.Unlock()
	}}
	srv := redistest.Start(t)
	c := newCache(t, hybrid.Options{Name: "app", Events: ev, L2: hybrid.NewRedisL2(srv.FastClient(t, "")), Logger: quietLogger()})
	ctx := context.Background()
	if err := hybrid.SetMany(ctx, c, map[string]int{"a": 1, "b": 2}); err != nil {
		t.Fatal(err)
	}
	skipL1 := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true })
	if _, err := hybrid.TryGetMany[int](ctx, c, []string{"a", "b"}, skipL1); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(ops, "set-many") || !slices.Contains(ops, "get-many") {
		t.Fatalf("L2Call ops %v, want a set-many and a get-many", ops)
	}
}
