package hybrid

import (
	"fmt"
	"sync"
	"testing"
)

// setMany races first writes of its keys by set and by another setMany
// (over the same stripes in another order): the newest entry of each key
// stays, and nothing deadlocks.
func TestL1SetManyConcurrentFirstWritesNewestWins(t *testing.T) {
	m, err := newL1(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	for i := range 500 {
		var newer, older, reversed []*entry
		for j := range 8 {
			key := fmt.Sprint("k", i, ":", j)
			newer = append(newer, &entry{key: key, ts: 3, value: "newer", physUntil: nowNano() + 1e12})
			older = append(older, &entry{key: key, ts: 1, value: "older", physUntil: nowNano() + 1e12})
			reversed = append([]*entry{{key: key, ts: 2, value: "middle", physUntil: nowNano() + 1e12}}, reversed...)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() { <-start; m.setMany(newer, 1) })
		wg.Go(func() { <-start; m.setMany(reversed, 1) })
		for _, e := range older {
			wg.Go(func() { <-start; m.set(e, 1) })
		}
		close(start)
		wg.Wait()
		for _, want := range newer {
			if e := m.get(want.key); e == nil || e.ts != 3 {
				t.Fatalf("round %d: L1 holds %+v for %s; want the newest entry", i, e, want.key)
			}
		}
	}
}
