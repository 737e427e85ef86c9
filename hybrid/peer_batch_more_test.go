package hybrid_test

// More batch scenarios, memory only, ported from viccon/sturdyc
// (inflight_test.go: TestBatchRequestsForMissingKeysGetDeduplicated,
// TestInflightKeysAreRemovedForBatchRequestsThatPanic; fetch_test.go:
// batches with duplicates, extra keys, errors) and go-redis/cache (Once
// with a cancelled context, on a closed cache). Each asserts what
// docs/batch.md promises, and names the line.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/strata-cache/strata/hybrid"
)

// pbBlocked is a batch factory that counts its calls, waits for release,
// and answers "<prefix><key>" for every key.
func pbBlocked(calls *atomic.Int64, release <-chan struct{}, prefix string) hybrid.BatchFactory[string] {
	return func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		calls.Add(1)
		<-release
		out := make(map[string]string, len(bc.Keys()))
		for _, k := range bc.Keys() {
			out[k] = prefix + k
		}
		return out, nil
	}
}

// sturdyc's TestBatchRequestsForMissingKeysGetDeduplicated, with single-key
// loads mixed in: ten batches of ten keys are in flight; then a hundred
// batches of random keys (with duplicates and an invalid key) and a
// hundred GetOrSet calls ask for the same keys. None of them starts a
// load: every key is answered by the batch that leads it, each with its
// own value (docs/batch.md "Stampede protection per key, shared with
// GetOrSet"; "a key listed twice ... its Result is repeated").
func TestPeerBatchOverlappingInFlightWithSingleKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger()})
		defer c.Close()
		ctx := context.Background()
		var calls atomic.Int64
		release := make(chan struct{})
		f := pbBlocked(&calls, release, "v")
		var wg sync.WaitGroup
		for i := range 10 {
			ids := make([]string, 10)
			for j := range ids {
				ids[j] = fmt.Sprint(i*10 + j)
			}
			wg.Go(func() {
				if _, err := hybrid.GetOrSetMany(ctx, c, ids, f); err != nil {
					t.Errorf("leading batch: %v", err)
				}
			})
		}
		synctest.Wait()
		if n := calls.Load(); n != 10 {
			t.Fatalf("%d factory calls for ten disjoint batches, want 10", n)
		}
		for range 100 {
			ids := make([]string, 0, 7)
			for range 5 {
				ids = append(ids, fmt.Sprint(rand.IntN(100)))
			}
			ids = append(ids, ids[0], "")
			wg.Go(func() {
				res, err := hybrid.GetOrSetMany(ctx, c, ids, f)
				if err != nil {
					t.Errorf("GetOrSetMany(%v): %v", ids, err)
					return
				}
				for i, id := range ids {
					if id == "" {
						if !errors.Is(res[i].Err, hybrid.ErrInvalidKey) {
							t.Errorf("empty key: %+v", res[i])
						}
						continue
					}
					if res[i].Err != nil || !res[i].Found || res[i].Value != "v"+id {
						t.Errorf("%s: %+v, want %q", id, res[i], "v"+id)
					}
				}
			})
			id := fmt.Sprint(rand.IntN(100))
			wg.Go(func() {
				v, err := hybrid.GetOrSet(ctx, c, id, func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
					calls.Add(1000)
					return "single", nil
				})
				if err != nil || v != "v"+id {
					t.Errorf("GetOrSet(%s) = %q, %v; want the batch's value", id, v, err)
				}
			})
		}
		synctest.Wait()
		if n := calls.Load(); n != 10 {
			t.Fatalf("%d factory calls (a GetOrSet counts 1000) while every key was in flight, want 10", n)
		}
		close(release)
		wg.Wait()
		// Every key landed, and no claim is left: a new batch is answered
		// from memory.
		res, err := hybrid.TryGetMany[string](ctx, c, []string{"0", "55", "99"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if !r.Found {
				t.Fatalf("a key of the batches is not in memory: %+v", res)
			}
		}
	})
}

// A write of a key while a batch loads it (Set, SetMany, Remove,
// RemoveMany, Expire, RemoveByTag, Clear) wins over the batch's older
// result: the batch's callers get what it loaded, and the next read sees
// the write (docs/batch.md "Limits": newest wins; SPEC "a read that races
// an invalidation must not put the old value back").
func TestPeerBatchWriteDuringLoadWins(t *testing.T) {
	for _, op := range []string{"Set", "SetMany", "Remove", "RemoveMany", "Expire", "RemoveByTag", "ClearTrue", "ClearFalse"} {
		t.Run(op, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCache(t, hybrid.Options{Logger: quietLogger()})
				defer c.Close()
				ctx := context.Background()
				var calls atomic.Int64
				release := make(chan struct{})
				var res []hybrid.Result[string]
				go func() {
					res, _ = hybrid.GetOrSetMany(ctx, c, []string{"a", "b"}, pbBlocked(&calls, release, "old"), hybrid.WithTags("t"))
				}()
				synctest.Wait()
				var err error
				switch op {
				case "Set":
					err = hybrid.Set(ctx, c, "a", "new")
				case "SetMany":
					err = hybrid.SetMany(ctx, c, map[string]string{"a": "new"})
				case "Remove":
					err = c.Remove(ctx, "a")
				case "RemoveMany":
					err = c.RemoveMany(ctx, []string{"a", "a"})
				case "Expire":
					err = c.Expire(ctx, "a")
				case "RemoveByTag":
					err = c.RemoveByTag(ctx, "t")
				case "ClearTrue":
					err = c.Clear(ctx, true)
				case "ClearFalse":
					err = c.Clear(ctx, false)
				}
				if err != nil {
					t.Fatal(err)
				}
				close(release)
				synctest.Wait()
				if len(res) != 2 || res[0].Value != "olda" || res[1].Value != "oldb" {
					t.Fatalf("the batch's callers: %+v, want what it loaded", res)
				}
				v, ok := mustGet[string](t, c, "a")
				switch {
				case op == "Set" || op == "SetMany":
					if !ok || v != "new" {
						t.Fatalf("after %s during the batch: %q, %v; want the write", op, v, ok)
					}
				case ok:
					t.Fatalf("after %s during the batch: the batch's older value %q is served", op, v)
				}
			})
		})
	}
}

// sturdyc's batch fetch functions may answer more than they were asked;
// a key another batch is loading meanwhile is not touched by such an
// extra answer: that batch's callers get their own factory's value, and
// so does memory (docs/batch.md "Bad input": extra keys "ignored (not
// cached, not returned)").
func TestPeerBatchExtraKeyOfAnotherLoadIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger()})
		defer c.Close()
		ctx := context.Background()
		var calls atomic.Int64
		release := make(chan struct{})
		var resA []hybrid.Result[string]
		go func() { resA, _ = hybrid.GetOrSetMany(ctx, c, []string{"a"}, pbBlocked(&calls, release, "A")) }()
		synctest.Wait()
		resB, err := hybrid.GetOrSetMany(ctx, c, []string{"b"}, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			return map[string]string{"a": "bogus", "b": "B", "zzz": "bogus"}, nil
		})
		if err != nil || len(resB) != 1 || resB[0].Value != "B" {
			t.Fatalf("B: %+v, %v", resB, err)
		}
		if _, ok := mustGet[string](t, c, "zzz"); ok {
			t.Fatal("an extra key was cached")
		}
		close(release)
		synctest.Wait()
		if len(resA) != 1 || resA[0].Value != "Aa" {
			t.Fatalf("A: %+v, want its own value", resA)
		}
		if v, _ := mustGet[string](t, c, "a"); v != "Aa" {
			t.Fatalf("memory holds %q for a, want A's value", v)
		}
	})
}

// A batch factory's error reaches every caller of its keys, single-key
// ones that joined included, wrapped with the key and matchable with
// errors.Is; the keys are released, and the next call loads afresh
// (docs/batch.md "The factory fails"; sturdyc's
// TestInflightKeysAreRemovedForBatchRequestsThatPanic for errors).
func TestPeerBatchErrorReachesJoinedCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger()})
		defer c.Close()
		ctx := context.Background()
		srcErr := errors.New("source down")
		release := make(chan struct{})
		var batchRes []hybrid.Result[string]
		var batchErr error
		go func() {
			batchRes, batchErr = hybrid.GetOrSetMany(ctx, c, []string{"a", "b", "a"}, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
				<-release
				return map[string]string{"a": "partial"}, srcErr
			})
		}()
		synctest.Wait()
		var single error
		var other []hybrid.Result[string]
		go func() {
			_, single = hybrid.GetOrSet(ctx, c, "b", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) { return "x", nil })
		}()
		go func() {
			other, _ = hybrid.GetOrSetMany(ctx, c, []string{"a", "c"}, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
				return map[string]string{"c": "C"}, nil
			})
		}()
		synctest.Wait()
		close(release)
		synctest.Wait()
		if batchErr != nil {
			t.Fatalf("call error %v: a factory error is per key", batchErr)
		}
		for i, r := range batchRes {
			if !errors.Is(r.Err, srcErr) || r.Found {
				t.Fatalf("batch result %d: %+v, want the source's error", i, r)
			}
		}
		if !errors.Is(single, srcErr) {
			t.Fatalf("GetOrSet that joined b: %v, want the source's error", single)
		}
		if !errors.Is(other[0].Err, srcErr) || other[1].Value != "C" {
			t.Fatalf("batch that joined a: %+v", other)
		}
		var calls atomic.Int64
		closed := make(chan struct{})
		close(closed)
		res, err := hybrid.GetOrSetMany(ctx, c, []string{"a", "b"}, pbBlocked(&calls, closed, "v"))
		if err != nil || calls.Load() != 1 || res[0].Value != "va" || res[1].Value != "vb" {
			t.Fatalf("after the failure: %+v, %v, %d calls; want a fresh load", res, err, calls.Load())
		}
	})
}

// go-redis/cache's Once with a context that ends: a caller whose context
// ends while its keys load gets ctx.Err() for the call and for the keys
// not answered yet, whether it leads them or joined another batch; the
// answered keys keep their values; the loads go on and fill the cache for
// the others (docs/batch.md "Shape of the results").
func TestPeerBatchCancelledWhileJoined(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger()})
		defer c.Close()
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "hit", "h"); err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int64
		release := make(chan struct{})
		go hybrid.GetOrSetMany(ctx, c, []string{"joined"}, pbBlocked(&calls, release, "v"))
		synctest.Wait()
		cctx, cancel := context.WithCancel(ctx)
		var res []hybrid.Result[string]
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			res, err = hybrid.GetOrSetMany(cctx, c, []string{"hit", "joined", "led"}, pbBlocked(&calls, release, "v"))
		}()
		synctest.Wait()
		cancel()
		<-done
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("call error %v, want context.Canceled", err)
		}
		if res[0].Value != "h" || !errors.Is(res[1].Err, context.Canceled) || !errors.Is(res[2].Err, context.Canceled) {
			t.Fatalf("results %+v", res)
		}
		close(release)
		synctest.Wait()
		got, err := hybrid.TryGetMany[string](ctx, c, []string{"joined", "led"})
		if err != nil || got[0].Value != "vjoined" || got[1].Value != "vled" {
			t.Fatalf("after the loads: %+v, %v; want both filled", got, err)
		}
		if calls.Load() != 2 {
			t.Fatalf("%d factory calls, want 2", calls.Load())
		}
	})
}

// More keys than MaxBatchKeys, duplicates included, fail every batch call
// with ErrTooManyKeys before anything else, even on a closed cache; a
// split list works (docs/batch.md "Bad input").
func TestPeerBatchLargerThanLimit(t *testing.T) {
	c, err := hybrid.New(hybrid.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dup := make([]string, hybrid.MaxBatchKeys+1)
	for i := range dup {
		dup[i] = "same"
	}
	distinct := make([]string, hybrid.MaxBatchKeys+1)
	values := make(map[string]string, len(distinct))
	for i := range distinct {
		distinct[i] = fmt.Sprint("k", i)
		values[distinct[i]] = "v"
	}
	var calls atomic.Int64
	closed := make(chan struct{})
	close(closed)
	f := pbBlocked(&calls, closed, "v")
	check := func(when string) {
		t.Helper()
		for name, keys := range map[string][]string{"duplicates": dup, "distinct": distinct} {
			if _, err := hybrid.GetOrSetMany(ctx, c, keys, f); !errors.Is(err, hybrid.ErrTooManyKeys) {
				t.Errorf("%s: GetOrSetMany(%s): %v", when, name, err)
			}
			if _, err := hybrid.TryGetMany[string](ctx, c, keys); !errors.Is(err, hybrid.ErrTooManyKeys) {
				t.Errorf("%s: TryGetMany(%s): %v", when, name, err)
			}
			if err := c.RemoveMany(ctx, keys); !errors.Is(err, hybrid.ErrTooManyKeys) {
				t.Errorf("%s: RemoveMany(%s): %v", when, name, err)
			}
		}
		if err := hybrid.SetMany(ctx, c, values); !errors.Is(err, hybrid.ErrTooManyKeys) {
			t.Errorf("%s: SetMany: %v", when, err)
		}
	}
	check("open")
	if calls.Load() != 0 {
		t.Fatal("the factory was called for a refused batch")
	}
	for _, k := range distinct[:hybrid.MaxBatchKeys+1] {
		if _, ok := mustGet[string](t, c, k); ok {
			t.Fatalf("a refused SetMany stored %q", k)
		}
	}
	res, err := hybrid.GetOrSetMany(ctx, c, distinct[:hybrid.MaxBatchKeys], f)
	if err != nil || len(res) != hybrid.MaxBatchKeys || calls.Load() != 1 {
		t.Fatalf("a batch of MaxBatchKeys: %d results, %v, %d calls", len(res), err, calls.Load())
	}
	for i, r := range res {
		if r.Value != "v"+distinct[i] {
			t.Fatalf("%s: %+v", distinct[i], r)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed")
}

// A cache closed while a batch factory runs cancels the factory's
// context; the callers of its keys get the factory's own error, wrapped
// with the key (docs/errors.md: "A factory cancelled by Close returns its
// own error ... not ErrClosed"), and later calls get ErrClosed.
func TestPeerBatchClosedMidBatch(t *testing.T) {
	c, err := hybrid.New(hybrid.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	done := make(chan struct{})
	var res []hybrid.Result[string]
	go func() {
		defer close(done)
		res, err = hybrid.GetOrSetMany(context.Background(), c, []string{"a", "b"}, f)
	}()
	<-started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	if err != nil {
		t.Fatalf("call error %v: the keys were answered (with the factory's error)", err)
	}
	for _, r := range res {
		if !errors.Is(r.Err, context.Canceled) {
			t.Fatalf("%+v, want the factory's context.Canceled", r)
		}
	}
	if _, err := hybrid.GetOrSetMany(context.Background(), c, []string{"a"}, f); !errors.Is(err, hybrid.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// cancelAfterFirstErr is a context whose cancellation lands right after the
// batch call's entry check (its first Err): the race of a client that
// disconnects while a large batch is being read, made deterministic.
type cancelAfterFirstErr struct {
	context.Context
	calls atomic.Int32
}

func (c *cancelAfterFirstErr) Err() error {
	if c.calls.Add(1) > 1 {
		return context.Canceled
	}
	return nil
}

// A context that ends while a batch call checks its keys does not turn
// the keys it reaches into per-key ctx errors behind a nil call error:
// the keys memory answers are answered (docs/batch.md "Shape of the
// results": the call's error is ctx.Err() "when ctx ended before every
// key was answered", so that "a caller that only checks the call's error
// never mistakes a cut-short call for a complete one"). Before, every key
// after the first got context.Canceled in its Result while the call
// returned nil.
func TestPeerBatchCancelDuringKeyCheck(t *testing.T) {
	c := newCache(t, hybrid.Options{Logger: quietLogger()})
	ctx := context.Background()
	if err := hybrid.SetMany(ctx, c, map[string]string{"a": "1", "b": "2", "c": "3"}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	closed := make(chan struct{})
	close(closed)
	res, err := hybrid.GetOrSetMany(&cancelAfterFirstErr{Context: ctx}, c, []string{"a", "b", "c", ""}, pbBlocked(&calls, closed, "v"))
	for i, r := range res[:3] {
		if err == nil && (r.Err != nil || !r.Found) {
			t.Fatalf("result %d: %+v with a nil call error", i, r)
		}
	}
	if !errors.Is(res[3].Err, hybrid.ErrInvalidKey) {
		t.Fatalf("empty key: %+v", res[3])
	}
	if calls.Load() != 0 {
		t.Fatal("the factory was called for keys memory holds")
	}
}
