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
