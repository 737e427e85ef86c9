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
		wg.Go(func() { <-start; m.setMany(newer) })
		wg.Go(func() { <-start; m.setMany(reversed) })
		for _, e := range older {
			wg.Go(func() { <-start; m.set(e) })
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

// batchKeys against a plain map: distinct keys in order of first
// appearance, each key mapped to its distinct key, invalid keys -1, and
// idx nil exactly when distinct is keys itself.
func TestBatchKeysMatchesMap(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	for round := range 300 {
		n := round % 260 // past the 128 keys of the stack table
		keys := make([]string, n)
		for i := range keys {
			switch r := (i*7919 + round*31) % 97; {
			case r == 0 && round%3 == 0:
				keys[i] = "" // invalid
			case r < 10 && round%2 == 0:
				keys[i] = fmt.Sprint("k", r) // duplicates
			default:
				keys[i] = fmt.Sprint("k", round, ":", i)
			}
		}
		distinct, idx, errs, err := c.batchKeys(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		wantIdx := make([]int, n)
		seen := map[string]int{}
		aligned := true
		for i, k := range keys {
			if k == "" {
				wantIdx[i] = -1
				aligned = false
				continue
			}
			if j, ok := seen[k]; ok {
				wantIdx[i] = j
				aligned = false
				continue
			}
			seen[k] = len(want)
			wantIdx[i] = len(want)
			want = append(want, k)
		}
		if fmt.Sprint(distinct) != fmt.Sprint(want) {
			t.Fatalf("round %d: distinct %q, want %q", round, distinct, want)
		}
		if aligned != (idx == nil) {
			t.Fatalf("round %d: idx nil %v, want %v", round, idx == nil, aligned)
		}
		if idx != nil && fmt.Sprint(idx) != fmt.Sprint(wantIdx) {
			t.Fatalf("round %d: idx %v, want %v", round, idx, wantIdx)
		}
		for i, j := range wantIdx {
			if (j < 0) != (errs[i] != nil) {
				t.Fatalf("round %d: key %d: error %v", round, i, errs[i])
			}
		}
	}
}
