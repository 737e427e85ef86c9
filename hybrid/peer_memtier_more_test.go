package hybrid

// Scenarios of the memory tier ported from the test suites of
// dgraph-io/ristretto v2 (cache_test.go: set/del, update semantics, TTL,
// MaxCost and cost accounting, Clear, metrics, close) and maypok86/otter v2
// (expiry after write, size-based eviction with weights, overwrite,
// concurrent Set/Get/Delete), written against Strata's API and its
// documented behaviour (docs/getorset.md, docs/design.md, SPEC sections 2,
// 3, 6). Internal (package hybrid) so that the capacity tests can ask
// ristretto itself what it holds: the window of recent writes keeps up to
// 4,096 of the latest writes readable beyond capacity, which a black-box
// count cannot tell apart.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

func mtCache(t testing.TB, o Options) *Cache {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mtGet[T any](t testing.TB, c *Cache, key string, opts ...Option) (T, bool) {
	t.Helper()
	v, ok, err := TryGet[T](context.Background(), c, key, opts...)
	if err != nil {
		t.Fatalf("TryGet(%q): %v", key, err)
	}
	return v, ok
}

func mtSet[T any](t testing.TB, c *Cache, key string, v T, opts ...Option) {
	t.Helper()
	if err := Set(context.Background(), c, key, v, opts...); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func withSize(n int64) Option { return WithOptions(func(o *EntryOptions) { o.Size = n }) }

// mtHeld counts the keys ristretto itself holds (the window aside), once
// its buffer has been applied, and sums their cost as the entries' own
// sizes say (size(key)).
func mtHeld(c *Cache, keys []string, size func(string) int64) (n int, cost int64) {
	c.l1.rc.Wait()
	for _, k := range keys {
		if _, ok := c.l1.rc.GetTTL(k); ok {
			n++
			cost += size(k)
		}
	}
	return n, cost
}

// ristretto TestCacheDel / TestCacheSetDel: a key set and removed at once
// (its insertion still in ristretto's buffer) reads as a miss, and a Set
// right after the Remove is visible at once; for many new keys in a row.
func TestMemTierSetRemoveSetNewKeys(t *testing.T) {
	c := mtCache(t, Options{})
	ctx := context.Background()
	for i := range 3000 {
		k := fmt.Sprint("k", i)
		mtSet(t, c, k, i)
		if err := c.Remove(ctx, k); err != nil {
			t.Fatal(err)
		}
		if v, ok := mtGet[int](t, c, k); ok {
			t.Fatalf("key %d: read %d right after Remove", i, v)
		}
		mtSet(t, c, k, -i)
		if v, ok := mtGet[int](t, c, k); !ok || v != -i {
			t.Fatalf("key %d: after Remove and Set, read %d, %v; want %d", i, v, ok, -i)
		}
	}
	// Once ristretto has applied everything, the last write of each key is
	// still the one read.
	c.l1.rc.Wait()
	for i := range 3000 {
		k := fmt.Sprint("k", i)
		if v, ok := mtGet[int](t, c, k); ok && v != -i {
			t.Fatalf("key %d: read %d after the buffer was applied; want %d (or a miss)", i, v, -i)
		}
	}
}

// ristretto TestCacheSet (update of a key) / otter overwrite: a second Set
// of a new key right after the first (both possibly in ristretto's buffer)
// replaces the value, and so does a third once the key is admitted.
func TestMemTierOverwriteNewAndAdmittedKeys(t *testing.T) {
	c := mtCache(t, Options{})
	for i := range 2000 {
		k := fmt.Sprint("k", i)
		mtSet(t, c, k, "first")
		mtSet(t, c, k, "second")
		if v, _ := mtGet[string](t, c, k); v != "second" {
			t.Fatalf("key %d: read %q after two Sets; want second", i, v)
		}
	}
	c.l1.rc.Wait()
	for i := range 2000 {
		k := fmt.Sprint("k", i)
		mtSet(t, c, k, "third")
		if v, _ := mtGet[string](t, c, k); v != "third" {
			t.Fatalf("key %d: read %q after the third Set; want third", i, v)
		}
	}
}

// ristretto TestCacheSetWithTTL / TestCacheGetTTL, otter expire-after-write:
// an entry is fresh up to its Duration, exclusive, and a miss from then on,
// whether the hit clock runs or not; with PreciseHitClock too.
func TestMemTierExpiryToTheNanosecond(t *testing.T) {
	for _, precise := range []bool{false, true} {
		t.Run(fmt.Sprint("precise=", precise), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := mtCache(t, Options{PreciseHitClock: precise, HitClockResolution: 10 * time.Millisecond})
				mtSet(t, c, "k", "v", WithDuration(time.Second))
				// Enough hits to wake the hit clock, then past the margin.
				for range 3 * hitClockWakeReads {
					mtGet[string](t, c, "k")
				}
				time.Sleep(time.Second - time.Nanosecond)
				for range 200 {
					if _, ok := mtGet[string](t, c, "k"); !ok {
						t.Fatal("a miss 1ns before the entry's Duration ended")
					}
				}
				time.Sleep(time.Nanosecond)
				if _, ok := mtGet[string](t, c, "k"); ok {
					t.Fatal("a hit at the end of the entry's Duration")
				}
			})
		})
	}
}

// ristretto TestRecacheWithTTL / TestValueUpdateWithTTL: an update sets a
// new expiry from its own Duration, longer or shorter than the previous.
func TestMemTierUpdateMovesExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mtCache(t, Options{})
		mtSet(t, c, "longer", 1, WithDuration(time.Second))
		mtSet(t, c, "shorter", 1, WithDuration(time.Hour))
		time.Sleep(500 * time.Millisecond)
		mtSet(t, c, "longer", 2, WithDuration(2*time.Second)) // until 2.5s
		mtSet(t, c, "shorter", 2, WithDuration(time.Second))  // until 1.5s
		time.Sleep(time.Second)                               // 1.5s
		if v, ok := mtGet[int](t, c, "longer"); !ok || v != 2 {
			t.Fatalf("longer at 1.5s: %d, %v; want 2 (fresh until 2.5s)", v, ok)
		}
		if _, ok := mtGet[int](t, c, "shorter"); ok {
			t.Fatal("shorter at 1.5s: a hit; the update set its expiry to 1.5s")
		}
		time.Sleep(time.Second) // 2.5s
		if _, ok := mtGet[int](t, c, "longer"); ok {
			t.Fatal("longer at 2.5s: a hit past its updated expiry")
		}
	})
}

// otter expiry with jitter (docs/jitter.md): each entry expires within
// [Duration, Duration+JitterMaxDuration), and not all at once.
func TestMemTierJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mtCache(t, Options{Entry: EntryOptions{Duration: time.Second, JitterMaxDuration: 500 * time.Millisecond}})
		const n = 200
		for i := range n {
			mtSet(t, c, fmt.Sprint("k", i), i)
		}
		time.Sleep(time.Second - time.Nanosecond)
		for i := range n {
			if _, ok := mtGet[int](t, c, fmt.Sprint("k", i)); !ok {
				t.Fatalf("k%d expired before its Duration", i)
			}
		}
		time.Sleep(250 * time.Millisecond)
		alive := 0
		for i := range n {
			if _, ok := mtGet[int](t, c, fmt.Sprint("k", i)); ok {
				alive++
			}
		}
		if alive == 0 || alive == n {
			t.Fatalf("halfway through the jitter, %d of %d entries fresh; want some, not all", alive, n)
		}
		time.Sleep(250 * time.Millisecond)
		for i := range n {
			if _, ok := mtGet[int](t, c, fmt.Sprint("k", i)); ok {
				t.Fatalf("k%d fresh at Duration+JitterMaxDuration", i)
			}
		}
	})
}

// ristretto TestCacheMaxCost, otter size-based eviction: ristretto holds
// no more than L1MaxEntries units of Size, for entries of one size and of
// mixed sizes.
func TestMemTierCapacityHolds(t *testing.T) {
	for _, tc := range []struct {
		name string
		size func(i int) int64
	}{
		{"size=1", func(int) int64 { return 1 }},
		{"size=7", func(int) int64 { return 7 }},
		{"mixed", func(i int) int64 { return int64(1 + i%13) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mtCache(t, Options{L1MaxEntries: 500})
			sizes := map[string]int64{}
			var keys []string
			for i := range 20000 {
				k := fmt.Sprint("k", i)
				keys = append(keys, k)
				sizes[k] = tc.size(i)
				mtSet(t, c, k, i, withSize(sizes[k]))
				if i%50 == 0 {
					mtGet[int](t, c, fmt.Sprint("k", i/2)) // some reads, for the admission policy
				}
			}
			n, cost := mtHeld(c, keys, func(k string) int64 { return sizes[k] })
			if cost > 500 {
				t.Fatalf("ristretto holds %d entries of total Size %d; L1MaxEntries is 500", n, cost)
			}
		})
	}
}

// otter's weigher, with ristretto's cost: an entry's Size is its weight for
// as long as it stays in memory. A hit that extends a sliding entry stores
// a copy; the copy must weigh what the entry was written with, not the
// cache's default Size, or a tier of 1,000 units holds many more entries of
// Size 100 than 10.
func TestMemTierSlidingExtensionKeepsSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mtCache(t, Options{L1MaxEntries: 1000, Entry: EntryOptions{Duration: time.Hour, SlidingDuration: time.Minute}})
		var keys []string
		for i := range 10 {
			k := fmt.Sprint("s", i)
			keys = append(keys, k)
			mtSet(t, c, k, i, withSize(100))
		}
		c.l1.rc.Wait()
		time.Sleep(40 * time.Second) // past half the window: a hit extends
		for _, k := range keys {
			if _, ok := mtGet[int](t, c, k); !ok {
				t.Fatalf("%s: a miss within its window", k)
			}
		}
		for i := range 10 {
			k := fmt.Sprint("n", i)
			keys = append(keys, k)
			mtSet(t, c, k, i, withSize(100))
		}
		n, cost := mtHeld(c, keys, func(string) int64 { return 100 })
		if cost > 1000 {
			t.Fatalf("ristretto holds %d entries of Size 100 (%d units); L1MaxEntries is 1000", n, cost)
		}
	})
}

// ristretto TestCacheClear: after Clear every entry reads as a miss, and a
// Set after Clear is visible at once (Clear(true) and Clear(false)).
func TestMemTierClearThenSet(t *testing.T) {
	for _, failSafe := range []bool{false, true} {
		t.Run(fmt.Sprint("allowFailSafe=", failSafe), func(t *testing.T) {
			c := mtCache(t, Options{Entry: EntryOptions{FailSafe: true}})
			ctx := context.Background()
			for i := range 500 {
				mtSet(t, c, fmt.Sprint("k", i), i)
			}
			if err := c.Clear(ctx, failSafe); err != nil {
				t.Fatal(err)
			}
			for i := range 500 {
				if v, ok := mtGet[int](t, c, fmt.Sprint("k", i)); ok {
					t.Fatalf("k%d: read %d after Clear", i, v)
				}
			}
			for i := range 500 {
				k := fmt.Sprint("k", i)
				mtSet(t, c, k, -i)
				if v, ok := mtGet[int](t, c, k); !ok || v != -i {
					t.Fatalf("%s: after Clear and Set, read %d, %v; want %d", k, v, ok, -i)
				}
			}
		})
	}
}

// ristretto TestCacheMetrics / otter stats: each read is one hit or one
// miss: a fresh value is a hit; a missing key, a removed one, an expired
// one are misses.
func TestMemTierStatsCountHitsAndMisses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mtCache(t, Options{})
		ctx := context.Background()
		mtSet(t, c, "a", 1)
		mtSet(t, c, "b", 2, WithDuration(time.Second))
		mtSet(t, c, "c", 3)
		c.Remove(ctx, "c")
		mtGet[int](t, c, "a")       // hit
		mtGet[int](t, c, "b")       // hit
		mtGet[int](t, c, "c")       // miss: removed
		mtGet[int](t, c, "missing") // miss
		time.Sleep(time.Second)
		mtGet[int](t, c, "b") // miss: expired
		if s := c.Stats(); s.L1Hits != 2 || s.L1Misses != 3 {
			t.Fatalf("L1Hits %d, L1Misses %d; want 2 and 3", s.L1Hits, s.L1Misses)
		}
	})
}

// ristretto TestSetAfterClose, TestGetAfterClose, TestDelAfterClose,
// TestClearAfterClose: after Close every operation returns ErrClosed and
// nothing panics.
func TestMemTierOperationsAfterClose(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mtSet(t, c, "k", 1)
	c.Close()
	c.Close()
	if err := Set(ctx, c, "k", 2); !errors.Is(err, ErrClosed) {
		t.Errorf("Set: %v", err)
	}
	if _, _, err := TryGet[int](ctx, c, "k"); !errors.Is(err, ErrClosed) {
		t.Errorf("TryGet: %v", err)
	}
	if err := c.Remove(ctx, "k"); !errors.Is(err, ErrClosed) {
		t.Errorf("Remove: %v", err)
	}
	if err := c.Expire(ctx, "k"); !errors.Is(err, ErrClosed) {
		t.Errorf("Expire: %v", err)
	}
	if err := c.Clear(ctx, false); !errors.Is(err, ErrClosed) {
		t.Errorf("Clear: %v", err)
	}
	if _, err := GetOrSet(ctx, c, "k", func(context.Context, *FactoryContext[int]) (int, error) { return 3, nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("GetOrSet: %v", err)
	}
}

// mtClock orders operations across goroutines for the stress checks: each
// write takes a number before it starts and records when it ended.
type mtClock struct {
	now atomic.Int64
	mu  sync.Mutex
	end map[int64]int64 // write id (its start) -> its end; absent: not ended yet
}

func (k *mtClock) start() int64 { return k.now.Add(1) }

func (k *mtClock) finish(id int64) int64 {
	e := k.now.Add(1)
	k.mu.Lock()
	k.end[id] = e
	k.mu.Unlock()
	return e
}

// endedBefore reports whether the write id ended before t.
func (k *mtClock) endedBefore(id, t int64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.end[id]
	return ok && e < t
}

// otter's concurrent Set/Get/Delete and ristretto's stress test, checked
// as linearizability of each goroutine's view: a read after a goroutine's
// own Set (or Remove) returned never sees a write that ended before that
// Set (or Remove) began (newest wins, read your writes, no resurrection),
// and never misses a key that is only ever set; on shared keys and keys of
// one goroutine, with capacity large enough that nothing is evicted.
func TestMemTierConcurrentNewestWins(t *testing.T) {
	c := mtCache(t, Options{L1MaxEntries: 1 << 20})
	ctx := context.Background()
	clock := &mtClock{end: map[int64]int64{}}
	const workers, rounds = 8, 1500
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			for i := range rounds {
				var key string
				switch i % 3 {
				case 0:
					key = fmt.Sprint("shared", i%7)
				case 1:
					key = fmt.Sprint("own", g, "-", i%50)
				default:
					key = fmt.Sprint("new", g, "-", i) // a new key each time
				}
				id := clock.start()
				if i%5 == 4 && i%3 != 0 { // shared keys are only set: a miss there is a bug
					if err := c.Remove(ctx, key); err != nil {
						errs <- err
						return
					}
					clock.finish(id)
					if v, ok, _ := TryGet[int64](ctx, c, key); ok && clock.endedBefore(v, id) {
						errs <- fmt.Errorf("%s: after a Remove, read the value of a write that ended before it began", key)
						return
					}
					continue
				}
				if err := Set(ctx, c, key, id); err != nil {
					errs <- err
					return
				}
				clock.finish(id)
				v, ok, err := TryGet[int64](ctx, c, key)
				switch {
				case err != nil:
					errs <- err
					return
				case !ok:
					errs <- fmt.Errorf("%s: a miss right after this goroutine's Set", key)
					return
				case v != id && clock.endedBefore(v, id):
					errs <- fmt.Errorf("%s: read write %d, which ended before this goroutine's Set %d began", key, v, id)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The same under capacity pressure and a small tier: reads may miss (the
// capacity evicted them), but never return an older value than one a
// goroutine's own Set or Remove replaced.
func TestMemTierConcurrentSmallTierNoResurrection(t *testing.T) {
	c := mtCache(t, Options{L1MaxEntries: 16})
	ctx := context.Background()
	clock := &mtClock{end: map[int64]int64{}}
	const workers, rounds = 8, 3000
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			for i := range rounds {
				key := fmt.Sprint("k", (i*workers+g)%61)
				id := clock.start()
				var err error
				if i%4 == 3 {
					err = c.Remove(ctx, key)
				} else {
					err = Set(ctx, c, key, id)
				}
				if err != nil {
					errs <- err
					return
				}
				clock.finish(id)
				if v, ok, _ := TryGet[int64](ctx, c, key); ok && v != id && clock.endedBefore(v, id) {
					errs <- fmt.Errorf("%s: read write %d, which ended before this goroutine's change %d began", key, v, id)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// ristretto TestCacheMaxCost with updates (its store refuses an update
// through ShouldUpdate but still sends the item to its policy as a new
// one, which records the refused item's cost for the key): a write that
// loses to a newer entry (a load that started before a Set, with another
// Size) must change neither the value nor the weight the tier counts for
// it, or the tier holds more than L1MaxEntries.
func TestMemTierRefusedOlderWriteKeepsWeight(t *testing.T) {
	c := mtCache(t, Options{L1MaxEntries: 1000})
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	loaded := make(chan error, 1)
	go func() {
		_, err := GetOrSet(ctx, c, "big", func(context.Context, *FactoryContext[string]) (string, error) {
			close(started)
			<-release
			return "older, small", nil
		}) // Size 1
		loaded <- err
	}()
	<-started
	mtSet(t, c, "big", "newer, large", withSize(500))
	c.l1.rc.Wait()
	mtSet(t, c, "big", "newer, large", withSize(500)) // an update: ristretto holds it now
	close(release)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	if v, _ := mtGet[string](t, c, "big"); v != "newer, large" {
		t.Fatalf("read %q; the older load's value replaced the newer Set", v)
	}
	heldWithin1000(t, c)
}

// heldWithin1000 writes nine keys of Size 100 to c (L1MaxEntries 1000),
// which holds "big" at Size 500, and checks that ristretto holds no more
// than 1000 units by the entries' own sizes: a "big" counted at a smaller
// Size would let all nine in beside it.
func heldWithin1000(t *testing.T, c *Cache) {
	t.Helper()
	keys := []string{"big"}
	for i := range 9 {
		k := fmt.Sprint("n", i)
		keys = append(keys, k)
		mtSet(t, c, k, "x", withSize(100))
	}
	n, cost := mtHeld(c, keys, func(k string) int64 {
		if k == "big" {
			return 500
		}
		return 100
	})
	if cost > 1000 {
		t.Fatalf("ristretto holds %d entries of total Size %d; L1MaxEntries is 1000", n, cost)
	}
}

// A write refused as older goes to ristretto's buffer as an insertion; if
// capacity evicts the newer entry before ristretto reaches it, ristretto
// inserts the older one, and a value older than what the key held (a
// removal here) is served. An eviction is fine (a miss), an older value is
// not. ristretto's goroutine is held (a Cost function that blocks on a
// marker entry) so that the eviction comes between the refused write and
// its insertion, as it can under load.
func TestMemTierRefusedOlderWriteNotInsertedAfterEviction(t *testing.T) {
	gate, held := make(chan struct{}), make(chan struct{})
	rc, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters: 100, MaxCost: 2, BufferItems: 64, IgnoreInternalCost: true, ShouldUpdate: newestWins,
		Cost: func(e *entry) int64 {
			if e.key == "marker" {
				close(held)
				<-gate
			}
			return 1
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := &l1{rc: rc}
	defer m.close()
	far := nowNano() + int64(time.Hour)
	m.set(&entry{key: "k", ts: 10, value: "first", physUntil: far})
	m.rc.Wait()
	m.set(&entry{key: "k", ts: 12, verified: 12, physUntil: far}) // a removal: an update, applied at once
	m.setAt(&entry{key: "marker", ts: 1, value: 0, physUntil: far}, 0)
	<-held // ristretto's goroutine waits on the marker
	for i := range 12 {
		m.set(&entry{key: fmt.Sprint("f", i), ts: 1, value: i, physUntil: far}) // buffered: they will evict
	}
	m.set(&entry{key: "k", ts: 11, value: "older", physUntil: far}) // older than the removal: refused
	close(gate)
	m.rc.Wait()
	if e := m.get("k"); e != nil && e.ts < 12 {
		t.Fatalf("memory holds %q (ts %d), older than the removal it held (ts 12)", e.value, e.ts)
	}
}

// ristretto's stress test / otter's concurrent writers against a bound:
// many goroutines writing distinct keys never make the tier hold more than
// L1MaxEntries units, and no more keys stay readable than that plus the
// window of recent writes (4,096: docs/settings.md).
func TestMemTierConcurrentWritesStayBounded(t *testing.T) {
	c := mtCache(t, Options{L1MaxEntries: 1000})
	ctx := context.Background()
	const workers, per = 8, 4000
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range per {
				k := fmt.Sprint("g", g, "-", i)
				if err := Set(ctx, c, k, i); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					TryGet[int](ctx, c, fmt.Sprint("g", (g+1)%workers, "-", i/2))
				}
			}
		})
	}
	wg.Wait()
	var keys []string
	for g := range workers {
		for i := range per {
			keys = append(keys, fmt.Sprint("g", g, "-", i))
		}
	}
	held, _ := mtHeld(c, keys, func(string) int64 { return 1 })
	if held > 1000 {
		t.Fatalf("ristretto holds %d keys; L1MaxEntries is 1000", held)
	}
	readable := 0
	for _, k := range keys {
		if _, ok := mtGet[int](t, c, k); ok {
			readable++
		}
	}
	if readable > 1000+64*recentSlots {
		t.Fatalf("%d keys readable; at most L1MaxEntries (1000) + the window (%d)", readable, 64*recentSlots)
	}
}

// ristretto TestBlockOnClear / TestCacheClear under concurrent writers:
// Clear (both kinds) racing Sets and reads. A read never returns a value
// whose Set ended before a Clear that ended before the read began, and a
// goroutine's own Set is read back unless a Clear overlapped it.
func TestMemTierConcurrentClear(t *testing.T) {
	for _, allowFailSafe := range []bool{false, true} {
		t.Run(fmt.Sprint("allowFailSafe=", allowFailSafe), func(t *testing.T) {
			c := mtCache(t, Options{Entry: EntryOptions{FailSafe: true}})
			ctx := context.Background()
			clock := &mtClock{end: map[int64]int64{}}
			var (
				mu       sync.Mutex
				clears   [][2]int64 // start, end of each ended Clear
				clearing atomic.Int32
				lastEnd  atomic.Int64
			)
			// clearedAfter reports whether write id ended before a Clear
			// that began after it and ended before t.
			clearedAfter := func(id, t int64) bool {
				mu.Lock()
				defer mu.Unlock()
				for _, cl := range clears {
					if cl[1] < t && clock.endedBefore(id, cl[0]) {
						return true
					}
				}
				return false
			}
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for range 40 {
					select {
					case <-done:
						return
					default:
					}
					clearing.Add(1)
					s := clock.start()
					if err := c.Clear(ctx, allowFailSafe); err != nil {
						t.Error(err)
					}
					e := clock.start()
					mu.Lock()
					clears = append(clears, [2]int64{s, e})
					mu.Unlock()
					lastEnd.Store(e)
					clearing.Add(-1)
					time.Sleep(time.Millisecond) // pacing, not synchronization
				}
			})
			errs := make(chan error, 6)
			var writers sync.WaitGroup
			for g := range 6 {
				writers.Go(func() {
					for i := range 1500 {
						key := fmt.Sprint("k", (i+g)%40)
						id := clock.start()
						if err := Set(ctx, c, key, id); err != nil {
							errs <- err
							return
						}
						clock.finish(id)
						readStart := clock.start()
						v, ok, err := TryGet[int64](ctx, c, key)
						switch {
						case err != nil:
							errs <- err
							return
						case ok && clearedAfter(v, readStart):
							errs <- fmt.Errorf("%s: read write %d, cleared by a Clear that ended before the read", key, v)
							return
						case !ok && clearing.Load() == 0 && lastEnd.Load() < id:
							// A miss needs a Clear that overlapped: or
							// another goroutine's Set of the key, which
							// a read would have returned.
							errs <- fmt.Errorf("%s: a miss right after this goroutine's Set, with no Clear since it began", key)
							return
						}
					}
				})
			}
			writers.Wait()
			close(done)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// ristretto TestCacheMaxCost (an item costlier than MaxCost is never
// stored) / otter's weigher over the maximum: a Size above L1MaxEntries is
// not stored, neither as a new key nor over a key memory holds, and no
// older value of the key is served instead (docs/getorset.md, Traps).
func TestMemTierEntryAboveCapacity(t *testing.T) {
	c := mtCache(t, Options{L1MaxEntries: 100})
	mtSet(t, c, "new", "huge", withSize(101))
	if v, ok := mtGet[string](t, c, "new"); ok {
		t.Fatalf("a new key of Size 101 in a tier of 100 read %q", v)
	}
	mtSet(t, c, "held", "small")
	c.l1.rc.Wait()
	mtSet(t, c, "held", "huge", withSize(101))
	if v, ok := mtGet[string](t, c, "held"); ok {
		t.Fatalf("after a write of Size 101, the key read %q; want a miss (not the older value)", v)
	}
	mtSet(t, c, "held", "small again")
	if v, _ := mtGet[string](t, c, "held"); v != "small again" {
		t.Fatalf("a later write that fits read %q", v)
	}
}

// A copy of an entry that a call stores in its place (Expire's stale
// copy, a fail-safe throttle) costs what the entry was written with, not
// the Size of the call that makes the copy (the cache's default here): a
// Size 500 entry expired by a plain Expire counted as 1, and the tier
// held 1,400 units of 1,000.
func TestMemTierCopiesKeepTheEntrysSize(t *testing.T) {
	ctx := context.Background()
	failing := func(context.Context, *FactoryContext[string]) (string, error) { return "", errors.New("db down") }
	for _, tc := range []struct {
		name string
		copy func(t *testing.T, c *Cache)
	}{
		{"Expire", func(t *testing.T, c *Cache) {
			if err := c.Expire(ctx, "big"); err != nil {
				t.Fatal(err)
			}
		}},
		{"fail-safe throttle", func(t *testing.T, c *Cache) {
			if err := c.Expire(ctx, "big"); err != nil {
				t.Fatal(err)
			}
			v, err := GetOrSet(ctx, c, "big", failing, WithFailSafe(true))
			if err != nil || v != "large" {
				t.Fatalf("GetOrSet with fail-safe = %q, %v; want the stale value", v, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mtCache(t, Options{L1MaxEntries: 1000})
			mtSet(t, c, "big", "large", withSize(500), WithFailSafe(true))
			c.l1.rc.Wait()
			tc.copy(t, c)
			if v, _, _, _ := TryGetInfo[string](ctx, c, "big", WithOptions(func(o *EntryOptions) { o.AllowStaleOnRead = true })); v != "large" {
				t.Fatalf("the copy reads %q; want %q", v, "large")
			}
			heldWithin1000(t, c)
		})
	}
}
