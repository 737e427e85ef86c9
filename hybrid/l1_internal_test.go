package hybrid

import (
	"fmt"
	"sync"
	"testing"
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
		wg.Go(func() { <-start; m.set(newer, 1) })
		wg.Go(func() { <-start; m.set(older, 1) })
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
		m.set(&entry{key: key, ts: int64(i + 1), value: i, physUntil: nowNano() + 1e12}, 1)
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
	m.set(&entry{key: "k", ts: 5, value: "new", physUntil: far}, 1)
	m.set(&entry{key: "k", ts: 3, value: "old", physUntil: far}, 1) // a slow load
	if e := m.get("k"); e == nil || e.value != "new" {
		t.Fatalf("after an older write: %+v, want the newer", e)
	}
	m.rc.Wait()
	m.set(&entry{key: "k", ts: 7, value: "newest", physUntil: far}, 1) // present: applied at once
	if e := m.recent[stripe("k")].get("k"); e != nil {
		t.Fatalf("the window still holds %+v after ristretto took a newer write", e)
	}
	m.rc.Del("k") // as an eviction would
	if e := m.get("k"); e != nil {
		t.Fatalf("after an eviction the window served %+v", e)
	}
}
