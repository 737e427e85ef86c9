package hybrid_test

// Scenarios ported from viccon/sturdyc's test suite (fetch_test.go,
// distribution_test.go, cache_test.go, keys_test.go), asserting what
// Strata's docs promise. Where sturdyc behaves otherwise by design and
// Strata documents its own behaviour, the test asserts Strata's and says
// which doc line decides it.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// scSource is a batch source in the style of sturdyc's FetchObserver: it
// answers "value<id>" for the ids it holds, records what each call asked,
// and can be made to fail.
type scSource struct {
	mu    sync.Mutex
	calls int
	asked [][]string
	have  map[string]bool
	err   error
	value string // prefix of the answers
}

func newSCSource(ids ...string) *scSource {
	s := &scSource{have: map[string]bool{}, value: "value"}
	s.respond(ids...)
	return s
}

// respond makes the source hold exactly ids, and succeed.
func (s *scSource) respond(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.have = map[string]bool{}
	for _, id := range ids {
		s.have[id] = true
	}
	s.err = nil
}

func (s *scSource) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *scSource) fetch(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.asked = append(s.asked, slices.Clone(bc.Keys()))
	if s.err != nil {
		return nil, s.err
	}
	out := map[string]string{}
	for _, k := range bc.Keys() {
		if s.have[k] {
			out[k] = s.value + k
		}
	}
	return out, nil
}

func (s *scSource) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// lastAsked returns the keys of the last call, sorted.
func (s *scSource) lastAsked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.asked) == 0 {
		return nil
	}
	return slices.Sorted(slices.Values(s.asked[len(s.asked)-1]))
}

func scMany(t *testing.T, c *hybrid.Cache, keys []string, f hybrid.BatchFactory[string], opts ...hybrid.Option) []hybrid.Result[string] {
	t.Helper()
	res, err := hybrid.GetOrSetMany(context.Background(), c, keys, f, opts...)
	if err != nil {
		t.Fatalf("GetOrSetMany(%v): %v", keys, err)
	}
	if len(res) != len(keys) {
		t.Fatalf("GetOrSetMany(%v): %d results", keys, len(res))
	}
	return res
}

func scWant(t *testing.T, r hybrid.Result[string], key, want string) {
	t.Helper()
	if r.Err != nil || !r.Found || r.Value != want {
		t.Fatalf("%s: got %+v, want %q", key, r, want)
	}
}

func scWantMiss(t *testing.T, r hybrid.Result[string], key string) {
	t.Helper()
	if r.Err != nil || r.Found {
		t.Fatalf("%s: got %+v, want a miss (Found false, nil Err)", key, r)
	}
}

// TestSturdycGetOrFetchBatchPartialResponse ports sturdyc's
// TestGetOrFetchBatch and TestBatchGetOrFetchOnlyCachedRecordsErr: cached
// ids are not asked again, and when the source fails, the cached ids are
// still served. sturdyc returns ErrOnlyCachedRecords for the call; Strata
// gives each key its own error and a nil call error (docs/batch.md, "An
// error per key plus one for the call": the call's error is non-nil only
// when nothing was done or ctx ended).
func TestSturdycGetOrFetchBatchPartialResponse(t *testing.T) {
	c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Minute}, Logger: quietLogger()})
	src := newSCSource("1", "2", "3")
	scMany(t, c, []string{"1", "2", "3"}, src.fetch)
	if got := src.lastAsked(); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("first call asked %v", got)
	}
	src.respond("4")
	res := scMany(t, c, []string{"1", "2", "3", "4"}, src.fetch)
	if got := src.lastAsked(); !slices.Equal(got, []string{"4"}) {
		t.Fatalf("second call asked %v, want only [4]", got)
	}
	for i, k := range []string{"1", "2", "3", "4"} {
		scWant(t, res[i], k, "value"+k)
	}
	src.fail(errDB)
	res = scMany(t, c, []string{"2", "4", "6"}, src.fetch)
	if got := src.lastAsked(); !slices.Equal(got, []string{"6"}) {
		t.Fatalf("third call asked %v, want only [6]", got)
	}
	scWant(t, res[0], "2", "value2")
	scWant(t, res[1], "4", "value4")
	if !errors.Is(res[2].Err, errDB) || res[2].Found || !strings.Contains(res[2].Err.Error(), `"6"`) {
		t.Fatalf("6: %+v, want the source's error wrapped with the key", res[2])
	}
	if n := src.callCount(); n != 3 {
		t.Fatalf("source called %d times, want 3", n)
	}
}

// TestSturdycBatchNilMapMissingRecords ports
// TestBatchGetOrFetchNilMapMissingRecords: a source that returns a nil map
// answers "not found" for every id; with missing-record storage
// (NotFoundDuration) the next call does not ask again until it expires.
func TestSturdycBatchNilMapMissingRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Hour, NotFoundDuration: time.Second}})
		var calls int
		nilMap := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			calls++
			return nil, nil
		}
		ids := []string{"1", "2", "3", "4"}
		for pass := range 2 {
			if pass == 1 {
				time.Sleep(time.Second - time.Millisecond) // just before NotFoundDuration ends
			}
			res := scMany(t, c, ids, nilMap)
			for i, id := range ids {
				scWantMiss(t, res[i], id)
			}
		}
		// The first pass loaded, the second was answered by the cached
		// "not found".
		if calls != 1 {
			t.Fatalf("source called %d times, want 1 (not found cached)", calls)
		}
		if _, err := hybrid.GetOrSet(context.Background(), c, "2", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			t.Error("single-key factory ran for a cached not found")
			return "", nil
		}); !errors.Is(err, hybrid.ErrNotFound) {
			t.Fatalf("GetOrSet of a cached not found: %v, want ErrNotFound", err)
		}
		time.Sleep(time.Second) // past NotFoundDuration
		scMany(t, c, ids, nilMap)
		if calls != 2 {
			t.Fatalf("after NotFoundDuration: source called %d times, want 2", calls)
		}
	})
}

// TestSturdycGetOrFetchMissingRecord ports TestGetOrFetchMissingRecord and
// TestGetOrFetchMissingRecordError: a not found is cached (the source is
// asked once), and the record can appear later. sturdyc refreshes a missing
// record in the background while still answering ErrMissingRecord; Strata
// has no refresh of a not found: it is cached for NotFoundDuration, after
// which the source is asked again synchronously (docs/getorset.md, "Caching
// \"not found\"").
func TestSturdycGetOrFetchMissingRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Minute, NotFoundDuration: 2 * time.Second}})
		ctx := context.Background()
		var calls int
		found := false
		f := func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			calls++
			if !found {
				return fc.NotFound()
			}
			return "value1", nil
		}
		for range 2 {
			if _, err := hybrid.GetOrSet(ctx, c, "1", f); !errors.Is(err, hybrid.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		}
		if calls != 1 {
			t.Fatalf("calls = %d, want 1", calls)
		}
		found = true
		time.Sleep(2 * time.Second)
		if v, err := hybrid.GetOrSet(ctx, c, "1", f); err != nil || v != "value1" {
			t.Fatalf("after NotFoundDuration: %q, %v", v, err)
		}
		if v, err := hybrid.GetOrSet(ctx, c, "1", f); err != nil || v != "value1" || calls != 2 {
			t.Fatalf("cached: %q, %v, calls %d", v, err, calls)
		}
	})
}

// TestSturdycGetOrFetchStampedeProtection ports
// TestGetOrFetchStampedeProtection and
// TestGetFetchSynchronousRefreshStampedeProtection: 1000 goroutines on an
// expired key make exactly one more source call.
func TestSturdycGetOrFetchStampedeProtection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: 2 * time.Second}})
		ctx := context.Background()
		var k counter
		slow := func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			time.Sleep(100 * time.Millisecond) // all the goroutines arrive meanwhile (synctest time)
			return k.factory("value1", nil)(ctx, fc)
		}
		if _, err := hybrid.GetOrSet(ctx, c, "1", slow); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // expired
		var wg sync.WaitGroup
		for range 1000 {
			wg.Go(func() {
				if v, err := hybrid.GetOrSet(ctx, c, "1", slow); err != nil || v != "value1" {
					t.Errorf("GetOrSet: %q, %v", v, err)
				}
			})
		}
		wg.Wait()
		if n := k.calls.Load(); n != 2 {
			t.Fatalf("source called %d times, want 2", n)
		}
	})
}

// TestSturdycBatchStampedeKeyPermutations ports
// TestGetOrFetchBatchStampedeProtection and
// TestGetFetchBatchSynchronousRefreshStampedeProtection (random subsets of
// the ids from 1000 goroutines) together with keys_test.go's idea that
// permutations of the same ids are the same keys: every id is asked of the
// source exactly once, whatever the order, overlaps and duplicates of the
// batches (docs/batch.md, "Stampede protection per key").
func TestSturdycBatchStampedeKeyPermutations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Minute}})
		ids := make([]string, 10)
		for i := range ids {
			ids[i] = fmt.Sprint(i + 1)
		}
		var mu sync.Mutex
		asked := map[string]int{}
		calls := 0
		f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			mu.Lock()
			calls++
			for _, k := range bc.Keys() {
				asked[k]++
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			out := map[string]string{}
			for _, k := range bc.Keys() {
				out[k] = "value" + k
			}
			return out, nil
		}
		var wg sync.WaitGroup
		for g := range 1000 {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			keys := make([]string, 1+r.IntN(5))
			for i := range keys {
				keys[i] = ids[r.IntN(len(ids))] // duplicates allowed
			}
			wg.Go(func() {
				res, err := hybrid.GetOrSetMany(context.Background(), c, keys, f)
				if err != nil {
					t.Errorf("GetOrSetMany(%v): %v", keys, err)
					return
				}
				for i, k := range keys {
					if r := res[i]; r.Err != nil || !r.Found || r.Value != "value"+k {
						t.Errorf("%v[%d] %s: %+v", keys, i, k, r)
					}
				}
			})
		}
		wg.Wait()
		for _, id := range ids {
			if asked[id] != 1 {
				t.Errorf("id %s asked %d times, want exactly once", id, asked[id])
			}
		}
		if calls > len(ids) {
			t.Errorf("%d source calls for %d ids", calls, len(ids))
		}
	})
}

// TestSturdycBatchEarlyRefreshLeavesKeysOut ports
// TestGetOrFetchBatchDeletesRecordsThatHaveBeenRemovedAtTheSource and
// TestGetFetchBatchConvertsDeletedRecordsToMissingRecords. sturdyc deletes
// (or marks missing) the ids a background refresh does not return; Strata
// documents that "an eager refresh that leaves a key out keeps the entry
// as it was" (hybrid/batch.go, BatchFactory doc), so those ids keep their
// value, while the returned ids are replaced.
func TestSturdycBatchEarlyRefreshLeavesKeysOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5}})
		ids := []string{"1", "2", "3", "4", "5"}
		src := newSCSource(ids...)
		scMany(t, c, ids, src.fetch)
		time.Sleep(6 * time.Second) // past the threshold, still fresh
		src.respond("1", "2", "3")
		src.mu.Lock()
		src.value = "new"
		src.mu.Unlock()
		res := scMany(t, c, ids, src.fetch)
		for i, id := range ids {
			scWant(t, res[i], id, "value"+id) // served at once, the refresh runs behind
		}
		synctest.Wait()
		if n := src.callCount(); n != 2 {
			t.Fatalf("source called %d times, want 2 (one background refresh)", n)
		}
		res, err := hybrid.TryGetMany[string](context.Background(), c, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			want := "new" + id
			if id == "4" || id == "5" {
				want = "value" + id // left out by the refresh: kept as it was
			}
			scWant(t, res[i], id, want)
		}
	})
}

// TestSturdycBatchSynchronousRefreshMissingRecords ports
// TestGetFetchBatchSynchronousRefreshConvertsToMissingRecord and
// TestGetFetchBatchSynchronousRefreshDeletion: after expiry the batch loads
// again; the ids the source no longer returns are misses, cached as not
// found (no second call) with NotFoundDuration, and may reappear later.
func TestSturdycBatchSynchronousRefreshMissingRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: 10 * time.Second, NotFoundDuration: 5 * time.Second}})
		ids := []string{"1", "2", "3", "4", "5", "6"}
		src := newSCSource(ids...)
		scMany(t, c, ids, src.fetch)
		time.Sleep(11 * time.Second)
		src.respond("1", "2", "3")
		res := scMany(t, c, ids, src.fetch)
		if got := src.lastAsked(); !slices.Equal(got, ids) {
			t.Fatalf("refresh asked %v, want every id", got)
		}
		for i, id := range ids {
			if i < 3 {
				scWant(t, res[i], id, "value"+id)
			} else {
				scWantMiss(t, res[i], id)
			}
		}
		time.Sleep(time.Second)
		res = scMany(t, c, ids, src.fetch)
		if n := src.callCount(); n != 2 {
			t.Fatalf("source called %d times, want 2: the missing ids are cached as not found", n)
		}
		for i := 3; i < 6; i++ {
			scWantMiss(t, res[i], ids[i])
		}
		time.Sleep(5 * time.Second) // the not founds expired, the values did not
		src.respond(ids...)
		res = scMany(t, c, ids, src.fetch)
		if got := src.lastAsked(); !slices.Equal(got, []string{"4", "5", "6"}) {
			t.Fatalf("asked %v, want only the expired not founds [4 5 6]", got)
		}
		for i, id := range ids {
			scWant(t, res[i], id, "value"+id)
		}
	})
}

// TestSturdycBatchSynchronousRefreshFailureGivesLatestValue ports
// TestGetFetchBatchSynchronousRefreshFailureGivesLatestValue: when the
// refresh of expired ids fails, the latest values are served. sturdyc
// returns them with ErrOnlyCachedRecords and calls the source again on the
// next request; Strata (fail-safe) returns them with no error and
// throttles: "each key with a stale value and fail-safe on gets that
// value, kept in memory as fresh for FailSafeThrottleDuration"
// (docs/batch.md, Fail-safe, timeouts, throttle: per key).
func TestSturdycBatchSynchronousRefreshFailureGivesLatestValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: 10 * time.Second, FailSafe: true, FailSafeThrottleDuration: 5 * time.Second,
		}})
		ids := []string{"1", "2", "3", "4", "5"}
		src := newSCSource(ids...)
		scMany(t, c, ids, src.fetch)
		time.Sleep(11 * time.Second)
		src.fail(errDB)
		withNew := append(slices.Clone(ids), "6")
		res := scMany(t, c, withNew, src.fetch)
		for i, id := range ids {
			scWant(t, res[i], id, "value"+id)
		}
		if !errors.Is(res[5].Err, errDB) {
			t.Fatalf("6 (no stale value): %+v, want the source's error", res[5])
		}
		time.Sleep(time.Millisecond)
		res = scMany(t, c, ids, src.fetch)
		for i, id := range ids {
			scWant(t, res[i], id, "value"+id)
		}
		if n := src.callCount(); n != 2 {
			t.Fatalf("source called %d times, want 2 (throttled after the failure)", n)
		}
		time.Sleep(5 * time.Second)
		src.respond(ids...)
		src.mu.Lock()
		src.value = "new"
		src.mu.Unlock()
		res = scMany(t, c, ids, src.fetch)
		for i, id := range ids {
			scWant(t, res[i], id, "new"+id)
		}
	})
}

// TestSturdycBatchFactoryReturnsExtraKeys ports the "more records than
// asked" edge of sturdyc's batch fetch: ids the source returns without
// being asked (here: one the cache already holds, one never requested)
// are ignored, neither cached nor overwriting (docs/batch.md, Bad input:
// "the factory returns keys it was not asked for: ignored (not cached, not
// returned)").
func TestSturdycBatchFactoryReturnsExtraKeys(t *testing.T) {
	c := newCache(t, hybrid.Options{Logger: quietLogger()})
	ctx := context.Background()
	if err := hybrid.Set(ctx, c, "a", "cached"); err != nil {
		t.Fatal(err)
	}
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		if !slices.Equal(bc.Keys(), []string{"b"}) {
			t.Errorf("asked %v, want [b]", bc.Keys())
		}
		return map[string]string{"a": "overwritten", "b": "2", "z": "stray"}, nil
	}
	res := scMany(t, c, []string{"a", "b"}, f)
	scWant(t, res[0], "a", "cached")
	scWant(t, res[1], "b", "2")
	if v, ok := mustGet[string](t, c, "a"); !ok || v != "cached" {
		t.Fatalf("a after the batch: %q, %v", v, ok)
	}
	if v, ok := mustGet[string](t, c, "z"); ok {
		t.Fatalf("an unasked key was cached: %q", v)
	}
}

// TestSturdycBatchFactoryErrorDropsPartialMap: a source that returns some
// records and an error (sturdyc treats the error as the outcome) fails
// every key of the call, and the partial records are not cached
// (docs/batch.md, BatchFactory: "An error fails every key of the call").
func TestSturdycBatchFactoryErrorDropsPartialMap(t *testing.T) {
	c := newCache(t, hybrid.Options{Logger: quietLogger()})
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		return map[string]string{"a": "1"}, errDB
	}
	res := scMany(t, c, []string{"a", "b"}, f)
	for i, k := range []string{"a", "b"} {
		if !errors.Is(res[i].Err, errDB) || res[i].Found {
			t.Fatalf("%s: %+v, want the error", k, res[i])
		}
	}
	if v, ok := mustGet[string](t, c, "a"); ok {
		t.Fatalf("a partial result of a failed call was cached: %q", v)
	}
}

// TestSturdycBatchEmptyAndInvalidInput: an empty id list, a list of only
// invalid keys, and a nil fetch function (sturdyc's batch fetch guards the
// first; docs/batch.md "Bad input" specifies all three).
func TestSturdycBatchEmptyAndInvalidInput(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	ctx := context.Background()
	src := newSCSource("a")
	for _, keys := range [][]string{nil, {}} {
		res, err := hybrid.GetOrSetMany(ctx, c, keys, src.fetch)
		if err != nil || res == nil || len(res) != 0 {
			t.Fatalf("GetOrSetMany(%#v) = %#v, %v; want an empty slice, nil", keys, res, err)
		}
		tres, err := hybrid.TryGetMany[string](ctx, c, keys)
		if err != nil || len(tres) != 0 {
			t.Fatalf("TryGetMany(%#v) = %#v, %v", keys, tres, err)
		}
	}
	if _, err := hybrid.GetOrSetMany[string](ctx, c, nil, nil); !errors.Is(err, hybrid.ErrNilFactory) {
		t.Fatalf("nil factory, empty keys: %v, want ErrNilFactory", err)
	}
	long := strings.Repeat("x", hybrid.DefaultMaxKeyLength+1)
	bad := []string{"", long, "__strata:x", ""}
	res, err := hybrid.GetOrSetMany(ctx, c, bad, src.fetch)
	if err != nil || len(res) != len(bad) {
		t.Fatalf("all invalid: %v, %v", res, err)
	}
	for i, r := range res {
		if !errors.Is(r.Err, hybrid.ErrInvalidKey) || r.Found {
			t.Fatalf("bad[%d]: %+v, want ErrInvalidKey", i, r)
		}
	}
	if n := src.callCount(); n != 0 {
		t.Fatalf("source called %d times for no valid key", n)
	}
	// Exactly MaxBatchKeys is accepted, one more is not (duplicates count).
	many := make([]string, hybrid.MaxBatchKeys)
	for i := range many {
		many[i] = "same"
	}
	if res, err := hybrid.GetOrSetMany(ctx, c, many, src.fetch); err != nil || len(res) != len(many) {
		t.Fatalf("MaxBatchKeys duplicates: %d results, %v", len(res), err)
	}
	if _, err := hybrid.GetOrSetMany(ctx, c, append(many, "same"), src.fetch); !errors.Is(err, hybrid.ErrTooManyKeys) {
		t.Fatalf("MaxBatchKeys+1: %v, want ErrTooManyKeys", err)
	}
}

// TestSturdycBatchWrongType: sturdyc's generic GetOrFetchBatch on a cache
// of another type is a compile-time error; in Strata one cache holds any
// type, and a key read as another type is ErrTypeMismatch for that key
// only: the factory is not asked for it and its value is unchanged
// (docs/getorset.md "Type mismatch", docs/batch.md Result.Err).
func TestSturdycBatchWrongType(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	ctx := context.Background()
	if err := hybrid.SetMany(ctx, c, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	src := newSCSource("a", "b")
	res := scMany(t, c, []string{"a", "b"}, src.fetch)
	if !errors.Is(res[0].Err, hybrid.ErrTypeMismatch) || res[0].Found {
		t.Fatalf("a: %+v, want ErrTypeMismatch", res[0])
	}
	scWant(t, res[1], "b", "valueb")
	if got := src.lastAsked(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("asked %v, want only [b]", got)
	}
	tres, err := hybrid.TryGetMany[string](ctx, c, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(tres[0].Err, hybrid.ErrTypeMismatch) {
		t.Fatalf("TryGetMany a: %+v, want ErrTypeMismatch", tres[0])
	}
	if v, ok := mustGet[int](t, c, "a"); !ok || v != 1 {
		t.Fatalf("a after mismatches: %d, %v; want 1", v, ok)
	}
}

// TestSturdycBatchJoinedWithOtherType: a single-key read of another type
// that joins a key a batch is loading gets ErrTypeMismatch ("Waiters of a
// shared load with a different T get the same error", docs/getorset.md).
func TestSturdycBatchJoinedWithOtherType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{})
		release := make(chan struct{})
		var calls int
		go func() {
			hybrid.GetOrSetMany(context.Background(), c, []string{"k"}, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
				calls++
				<-release
				return map[string]string{"k": "v"}, nil
			})
		}()
		synctest.Wait() // the batch is in its factory
		errc := make(chan error, 1)
		go func() {
			_, err := hybrid.GetOrSet(context.Background(), c, "k", func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
				calls++
				return 1, nil
			})
			errc <- err
		}()
		synctest.Wait() // the GetOrSet waits on the batch's claim
		close(release)
		if err := <-errc; !errors.Is(err, hybrid.ErrTypeMismatch) {
			t.Fatalf("GetOrSet[int] joining a batch[string]: %v, want ErrTypeMismatch", err)
		}
		if calls != 1 {
			t.Fatalf("%d factory calls, want 1", calls)
		}
	})
}

// TestSturdycBatchCancelledContext: a batch call with a context already
// done does nothing and returns ctx.Err() (docs/batch.md: the call's error
// is "ctx.Err() on entry"; SetMany/RemoveMany check everything first).
func TestSturdycBatchCancelledContext(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	if err := hybrid.Set(context.Background(), c, "kept", "v"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src := newSCSource("a")
	if _, err := hybrid.GetOrSetMany(ctx, c, []string{"a"}, src.fetch); !errors.Is(err, context.Canceled) {
		t.Errorf("GetOrSetMany: %v", err)
	}
	if _, err := hybrid.TryGetMany[string](ctx, c, []string{"kept"}); !errors.Is(err, context.Canceled) {
		t.Errorf("TryGetMany: %v", err)
	}
	if err := hybrid.SetMany(ctx, c, map[string]string{"a": "x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("SetMany: %v", err)
	}
	if err := c.RemoveMany(ctx, []string{"kept"}); !errors.Is(err, context.Canceled) {
		t.Errorf("RemoveMany: %v", err)
	}
	if src.callCount() != 0 {
		t.Error("the source was called with a cancelled context")
	}
	if _, ok := mustGet[string](t, c, "a"); ok {
		t.Error("a cancelled batch stored a value")
	}
	if _, ok := mustGet[string](t, c, "kept"); !ok {
		t.Error("a cancelled RemoveMany removed a key")
	}
}

// TestSturdycBatchClosedCache: every batch operation after Close returns
// ErrClosed ("any operation after Close", docs/errors.md).
func TestSturdycBatchClosedCache(t *testing.T) {
	c, err := hybrid.New(hybrid.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	src := newSCSource("a")
	_, errs := hybrid.GetOrSetMany(ctx, c, []string{"a"}, src.fetch)
	_, errt := hybrid.TryGetMany[string](ctx, c, []string{"a"})
	checks := map[string]error{
		"GetOrSetMany": errs,
		"TryGetMany":   errt,
		"SetMany":      hybrid.SetMany(ctx, c, map[string]string{"a": "x"}),
		"RemoveMany":   c.RemoveMany(ctx, []string{"a"}),
	}
	for op, err := range checks {
		if !errors.Is(err, hybrid.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", op, err)
		}
	}
	if src.callCount() != 0 {
		t.Error("the source was called on a closed cache")
	}
}

// TestSturdycEvictionKeepsServing ports the capacity/eviction tests of
// sturdyc's cache_test.go: with a memory tier far smaller than the data,
// every key is still answered correctly, and with a distributed tier the
// evicted keys come back from it without asking the source.
func TestSturdycEvictionKeepsServing(t *testing.T) {
	srv := redistest.Start(t)
	c := newCache(t, hybrid.Options{Name: "evict", L1MaxEntries: 16, L2: hybrid.NewRedisL2(srv.FastClient(t, "")),
		Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Hour}})
	all := make([]string, 600)
	for i := range all {
		all[i] = fmt.Sprint(i)
	}
	src := newSCSource(all...)
	for chunk := range slices.Chunk(all, 100) {
		scMany(t, c, chunk, src.fetch)
	}
	calls := src.callCount()
	for chunk := range slices.Chunk(all, 100) {
		res := scMany(t, c, chunk, src.fetch)
		for i, id := range chunk {
			scWant(t, res[i], id, "value"+id)
		}
	}
	if n := src.callCount(); n != calls {
		t.Fatalf("source called %d more times: evicted keys should come from the distributed tier", n-calls)
	}
}

// TestSturdycDistributedStorageBatch ports distribution_test.go's batch
// scenarios (TestDistributedStorageBatch...): a second node reads what the
// first loaded from the shared store, and asks its source only for the ids
// the store does not have.
func TestSturdycDistributedStorageBatch(t *testing.T) {
	srv := redistest.Start(t)
	mk := func() *hybrid.Cache {
		return newCache(t, hybrid.Options{Name: "dist", L2: hybrid.NewRedisL2(srv.FastClient(t, "")), Logger: quietLogger(),
			Entry: hybrid.EntryOptions{Duration: time.Minute}})
	}
	a, b := mk(), mk()
	srcA := newSCSource("1", "2", "3")
	scMany(t, a, []string{"1", "2", "3"}, srcA.fetch)
	srcB := newSCSource("1", "2", "3", "4")
	srcB.value = "b"
	res := scMany(t, b, []string{"1", "2", "3", "4"}, srcB.fetch)
	if got := srcB.lastAsked(); !slices.Equal(got, []string{"4"}) || srcB.callCount() != 1 {
		t.Fatalf("node b asked %v (%d calls), want only [4]", got, srcB.callCount())
	}
	for i, id := range []string{"1", "2", "3"} {
		scWant(t, res[i], id, "value"+id)
	}
	scWant(t, res[3], "4", "b4")
	// And the other way round, memory skipped: one read of the store.
	tres, err := hybrid.TryGetMany[string](context.Background(), a, []string{"4", "1", "5"},
		hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true }))
	if err != nil {
		t.Fatal(err)
	}
	scWant(t, tres[0], "4", "b4")
	scWant(t, tres[1], "1", "value1")
	scWantMiss(t, tres[2], "5")
}

// TestSturdycDistributedStorageMissingRecords ports distribution_test.go's
// missing-record scenario: a not found cached by one node is answered by
// another from the shared store, without asking its source
// (docs/getorset.md: "so other nodes answer ErrNotFound without calling the
// source either"; docs/batch.md: cached "as a single-key NotFound").
func TestSturdycDistributedStorageMissingRecords(t *testing.T) {
	srv := redistest.Start(t)
	mk := func() *hybrid.Cache {
		return newCache(t, hybrid.Options{Name: "missing", L2: hybrid.NewRedisL2(srv.FastClient(t, "")), Logger: quietLogger(),
			Entry: hybrid.EntryOptions{Duration: time.Minute, NotFoundDuration: time.Minute}})
	}
	a, b := mk(), mk()
	srcA := newSCSource("1")
	res := scMany(t, a, []string{"1", "2"}, srcA.fetch)
	scWant(t, res[0], "1", "value1")
	scWantMiss(t, res[1], "2")
	srcB := newSCSource("1", "2")
	res = scMany(t, b, []string{"1", "2"}, srcB.fetch)
	if n := srcB.callCount(); n != 0 {
		t.Fatalf("node b asked its source %d times (%v), want 0", n, srcB.lastAsked())
	}
	scWant(t, res[0], "1", "value1")
	scWantMiss(t, res[1], "2")
	if _, err := hybrid.GetOrSet(context.Background(), b, "2", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		t.Error("single-key factory ran for a not found cached by another node")
		return "", nil
	}); !errors.Is(err, hybrid.ErrNotFound) {
		t.Fatalf("GetOrSet on node b: %v, want ErrNotFound", err)
	}
}

// TestSturdycDistributedStorageWrongType: the shared store holds an id
// written as another type by another node (sturdyc's distributed storage
// decodes into the cache's type and treats a failure as a miss). The
// envelope of another type is a miss (docs/l2.md, "or that holds another
// type ... is a miss"), so the source is asked and its value replaces it.
func TestSturdycDistributedStorageWrongType(t *testing.T) {
	srv := redistest.Start(t)
	mk := func() *hybrid.Cache {
		return newCache(t, hybrid.Options{Name: "types", L2: hybrid.NewRedisL2(srv.FastClient(t, "")), Logger: quietLogger(),
			Entry: hybrid.EntryOptions{Duration: time.Minute}})
	}
	a, b := mk(), mk()
	ctx := context.Background()
	if err := hybrid.SetMany(ctx, a, map[string]int{"1": 1, "2": 2}); err != nil {
		t.Fatal(err)
	}
	src := newSCSource("1", "2")
	res := scMany(t, b, []string{"1", "2"}, src.fetch)
	if got := src.lastAsked(); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("asked %v, want [1 2]: an entry of another type is a miss", got)
	}
	scWant(t, res[0], "1", "value1")
	scWant(t, res[1], "2", "value2")
	c := mk() // a third node reads the store: the newer string won
	tres, err := hybrid.TryGetMany[string](ctx, c, []string{"1", "2"})
	if err != nil {
		t.Fatal(err)
	}
	scWant(t, tres[0], "1", "value1")
	scWant(t, tres[1], "2", "value2")
}

// TestSturdycGetOrFetchConvertsDeletedRecordsToMissingRecords ports the
// test of that name: a background (eager) refresh whose source says the
// record no longer exists turns the entry into a cached "not found"
// (fc.NotFound, docs/getorset.md "Caching \"not found\"").
func TestSturdycGetOrFetchConvertsDeletedRecordsToMissingRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{
			Duration: 10 * time.Second, EagerRefreshThreshold: 0.5, NotFoundDuration: time.Minute,
		}})
		ctx := context.Background()
		var calls int
		deleted := false
		f := func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			calls++
			if deleted {
				return fc.NotFound()
			}
			return "value1", nil
		}
		if _, err := hybrid.GetOrSet(ctx, c, "1", f); err != nil {
			t.Fatal(err)
		}
		time.Sleep(6 * time.Second)
		deleted = true
		if v, err := hybrid.GetOrSet(ctx, c, "1", f); err != nil || v != "value1" {
			t.Fatalf("the hit that starts the refresh: %q, %v", v, err)
		}
		synctest.Wait()
		if v, ok := mustGet[string](t, c, "1"); ok {
			t.Fatalf("after the refresh said not found: %q still served", v)
		}
		if _, err := hybrid.GetOrSet(ctx, c, "1", f); !errors.Is(err, hybrid.ErrNotFound) || calls != 2 {
			t.Fatalf("GetOrSet: %v (%d calls), want the cached ErrNotFound", err, calls)
		}
	})
}

// TestSturdycBatchSynchronousRefreshExplicitNotFound: as
// TestSturdycBatchSynchronousRefreshMissingRecords, with the source saying
// bc.For(id).NotFound() instead of leaving the id out (docs/batch.md: "A
// key the factory leaves out, or answers with bc.For(key).NotFound(), is a
// \"not found\"").
func TestSturdycBatchSynchronousRefreshExplicitNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: 10 * time.Second, NotFoundDuration: time.Minute}})
		ctx := context.Background()
		if err := hybrid.SetMany(ctx, c, map[string]string{"1": "value1", "2": "value2"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(11 * time.Second)
		calls := 0
		f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			calls++
			bc.For("2").NotFound()
			return map[string]string{"1": "new1"}, nil
		}
		res := scMany(t, c, []string{"1", "2"}, f)
		scWant(t, res[0], "1", "new1")
		scWantMiss(t, res[1], "2")
		res = scMany(t, c, []string{"1", "2"}, f)
		scWantMiss(t, res[1], "2")
		if calls != 1 {
			t.Fatalf("source called %d times, want 1", calls)
		}
	})
}

// TestSturdycBatchEarlyRefreshConvertsDeletedToMissing ports sturdyc's
// TestGetFetchBatchConvertsDeletedRecordsToMissingRecords (fetch_test.go):
// a background (eager) batch refresh in which the source says an id no
// longer exists stores that id as a missing record. In Strata the factory
// marks it with bc.For(k).NotFound() and leaves it out of the map, and the
// "not found" replaces the entry, as in a single-key eager refresh (an
// eager refresh that merely leaves a key out keeps the entry). This failed
// before: the old value stayed.
func TestSturdycBatchEarlyRefreshConvertsDeletedToMissing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{
			Duration: 10 * time.Second, EagerRefreshThreshold: 0.5, NotFoundDuration: time.Minute,
		}})
		ctx := context.Background()
		ids := []string{"1", "2", "3"}
		if _, err := hybrid.GetOrSetMany(ctx, c, ids, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			return map[string]string{"1": "value1", "2": "value2", "3": "value3"}, nil
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(6 * time.Second) // past the eager threshold, still fresh
		calls := 0
		if _, err := hybrid.GetOrSetMany(ctx, c, ids, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			calls++
			bc.For("3").NotFound() // deleted at the source
			return map[string]string{"1": "new1", "2": "new2"}, nil
		}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the background refresh is done
		if calls != 1 {
			t.Fatalf("eager refresh ran %d times, want 1", calls)
		}
		res, err := hybrid.TryGetMany[string](ctx, c, ids)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Value != "new1" || res[1].Value != "new2" {
			t.Fatalf("refreshed ids: %+v", res[:2])
		}
		if res[2].Found {
			t.Errorf("id 3 after an eager refresh that answered NotFound: %+v, want a miss (a cached not found)", res[2])
		}
		if _, err := hybrid.GetOrSet(ctx, c, "3", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			return "", errors.New("the source was asked again")
		}); !errors.Is(err, hybrid.ErrNotFound) {
			t.Errorf("GetOrSet of id 3: %v, want ErrNotFound (cached for NotFoundDuration)", err)
		}
	})
}
