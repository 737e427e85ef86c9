package hybrid

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Two first writes of a key race: the newer must stay, whichever reaches
// ristretto's buffer first (ristretto alone keeps the first).
func TestL1ConcurrentFirstWritesNewestWins(t *testing.T) {
	m, err := newL1(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	for i := range 2000 {
		key := fmt.Sprint("k", i)
		older := &entry{key: key, ts: 1, value: "older", physUntil: nowNano() + 1e12}
		newer := &entry{key: key, ts: 2, value: "newer", physUntil: nowNano() + 1e12}
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() { <-start; m.set(newer) })
		wg.Go(func() { <-start; m.set(older) })
		close(start)
		wg.Wait()
		if e := m.get(key); e == nil || e.ts != 2 {
			t.Fatalf("round %d: L1 holds %+v; want the newer entry", i, e)
		}
	}
}

// Every recent write is readable at once, also in a full tier whose
// admission policy refuses new keys: the window of recent writes answers.
func TestL1ReadYourWritesInAFullTier(t *testing.T) {
	m, err := newL1(100)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	for i := range 5000 {
		key := fmt.Sprint("k", i)
		m.set(&entry{key: key, ts: int64(i + 1), value: i, physUntil: nowNano() + 1e12})
		if e := m.get(key); e == nil || e.value != i {
			t.Fatalf("write %d not readable right after set: %+v", i, e)
		}
	}
}

// The window never serves an older entry than the newest written: an older
// write of a key the window holds is refused, and once ristretto holds the
// key the window forgets it, so an eviction cannot bring back an old copy.
func TestL1WindowKeepsNewestWins(t *testing.T) {
	m, err := newL1(1 << 10)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	far := nowNano() + 1e12
	m.set(&entry{key: "k", ts: 5, value: "new", physUntil: far})
	m.set(&entry{key: "k", ts: 3, value: "old", physUntil: far}) // a slow load
	if e := m.get("k"); e == nil || e.value != "new" {
		t.Fatalf("after an older write: %+v, want the newer", e)
	}
	m.rc.Wait()
	m.set(&entry{key: "k", ts: 7, value: "newest", physUntil: far}) // present: applied at once
	if e := m.recent[stripe("k")].get("k"); e != nil {
		t.Fatalf("the window still holds %+v after ristretto took a newer write", e)
	}
	m.rc.Del("k") // as an eviction would
	if e := m.get("k"); e != nil {
		t.Fatalf("after an eviction the window served %+v", e)
	}
}

// sameStripe returns n keys, prefixed by prefix, that share stripe s (and
// so one shard of the window of recent writes).
func sameStripe(prefix string, s, n int) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if k := fmt.Sprint(prefix, i); stripe(k) == s {
			keys = append(keys, k)
		}
	}
	return keys
}

// A write leaves the window of recent writes only once ristretto has taken
// its insertion: a key written, pushed out of its window shard by more
// than recentSlots other writes, then written again (a newer value, or a
// removal) keeps the newer write, even when ristretto's buffer had not
// reached the first insertion yet (ristretto drops a second insertion of a
// key when it reaches the first, and the window no longer held the first:
// the older value came back, in about one round in five).
func TestL1WindowLeavesOnlyWhatRistrettoTook(t *testing.T) {
	m, err := newL1(1 << 17)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	far := nowNano() + 1e12
	ts := int64(0)
	set := func(key string, v any) {
		ts++
		if v == nil {
			m.set(newTombstone(key, ts))
			return
		}
		m.set(&entry{key: key, ts: ts, value: v, physUntil: far})
	}
	for round := range 300 {
		k := fmt.Sprint("key", round)
		set(k, "old")
		for _, f := range sameStripe(fmt.Sprint("f", round, "-"), stripe(k), recentSlots+6) {
			set(f, 0)
		}
		var want any = "new"
		if round%2 == 1 {
			want = nil // a removal
		}
		set(k, want)
		for _, f := range sameStripe(fmt.Sprint("g", round, "-"), stripe(k), recentSlots+6) {
			set(f, 0)
		}
		e := m.get(k)
		if want == nil && e != nil && !e.tombstone() || want != nil && (e == nil || e.value != want) {
			t.Fatalf("round %d: after the newer write (%v) L1 holds %+v", round, want, e)
		}
	}
}

// An entry whose cost exceeds the tier's capacity is never stored, as a
// new key or as an update of a key ristretto holds; a removal at its
// timestamp takes its place, so that no older value is served either.
func TestL1EntryLargerThanCapacity(t *testing.T) {
	m, err := newL1(100)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	far := nowNano() + 1e12
	m.setAt(&entry{key: "new", ts: 1, value: "big", physUntil: far}, 1000)
	if e := m.get("new"); e != nil && !e.tombstone() {
		t.Fatalf("an entry of cost 1000 in a tier of 100 is readable: %+v", e)
	}
	m.set(&entry{key: "k", ts: 2, value: "small", physUntil: far})
	m.flush()
	if _, present := m.rc.GetTTL("k"); !present {
		t.Skip("ristretto's admission refused the key: nothing to update") // rare in an empty tier
	}
	m.setAt(&entry{key: "k", ts: 3, value: "big", physUntil: far}, 1000)
	if e := m.get("k"); e == nil || !e.tombstone() || e.ts != 3 {
		t.Fatalf("after an update of cost 1000 L1 holds %+v; want a removal at its timestamp", e)
	}
}

// A step of the wall clock does not make held entries look expired to
// the memory tier's newest-wins rule: physical expiry is reckoned on the
// monotonic clock (nowNano), and so is the comparison. Simulated by moving
// nowNano's anchor an hour behind the wall clock (the wall clock stepped
// an hour forward since start); no goroutine of a cache runs here.
func TestL1NewestWinsIgnoresWallClockSteps(t *testing.T) {
	m, err := newL1(1 << 10)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	saved := clockBaseUnix
	clockBaseUnix -= int64(time.Hour)
	defer func() { clockBaseUnix = saved }()
	far := nowNano() + int64(30*time.Minute) // still held for 30 min by nowNano
	for i := range 100 {
		key := fmt.Sprint("k", i)
		m.set(&entry{key: key, ts: 5, value: "new", physUntil: far})
		m.flush()
		m.set(&entry{key: key, ts: 4, value: "old", physUntil: far})
		m.flush()
		if e := m.get(key); e == nil || e.value != "new" {
			t.Fatalf("%s: L1 holds %+v after an older write; want the newer entry (ts 5)", key, e)
		}
	}
}

// A capacity in bytes (entries weighed by Size) does not make the memory
// tier allocate admission counters for every byte: L1MaxEntries 2^30 (a
// GiB) asked ristretto for ten billion counters (32 GiB) before anything
// was stored. Creating it now costs at most the 2^23 counters' ~32 MiB
// and its other fixed structures.
func TestL1CapacityInBytesAllocatesBoundedCounters(t *testing.T) {
	for _, n := range []int64{1 << 30, 1 << 40, math.MaxInt64} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m, err := newL1(n)
		if err != nil {
			t.Fatalf("newL1(%d): %v", n, err)
		}
		runtime.ReadMemStats(&after)
		m.setAt(&entry{key: "k", ts: 1, value: "v", physUntil: nowNano() + 1e12}, 1000)
		if e := m.get("k"); e == nil || e.value != "v" {
			t.Errorf("newL1(%d): a write is not readable: %+v", n, e)
		}
		m.close()
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 48<<20 {
			t.Errorf("newL1(%d) allocated %d MiB", n, grew>>20)
		}
	}
}

// A removal stamped by a clock more than tombstoneTTL behind this node's (a
// backplane message from a node whose clock is behind, or a removal read
// from the distributed tier) is still remembered for tombstoneTTL: an older
// write that raced it (a read of the old value) does not replace it.
func TestL1TombstoneFromABehindClockHoldsOffOlderWrites(t *testing.T) {
	m, err := newL1(100)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	removed := nowNano() - int64(2*tombstoneTTL)
	m.set(newTombstone("k", removed))
	m.set(&entry{key: "k", ts: removed - 1, value: "older", physUntil: nowNano() + int64(time.Hour)})
	if e := m.get("k"); e == nil || !e.tombstone() || e.ts != removed {
		t.Fatalf("memory holds %+v; want the removal, which is newer", e)
	}
	m.set(&entry{key: "k", ts: removed + 1, value: "newer", physUntil: nowNano() + int64(time.Hour)})
	if e := m.get("k"); e == nil || e.value != "newer" {
		t.Fatalf("memory holds %+v; want the write newer than the removal", e)
	}
}
