package strata_test

// Batch operations across nodes: SetMany and RemoveMany on one node seen by
// the others' memory tiers, and a GetOrSetMany load on one node racing
// them (docs/batch.md, docs/backplane.md).

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

func huntKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint(prefix, i)
	}
	return keys
}

// huntValue is the value round r writes to key i: every third one too
// large to travel in the message.
func huntValue(r string, i int) string {
	if i%3 == 0 {
		return r + strings.Repeat("#", 5000)
	}
	return r
}

func TestHuntNodesSetManyRemoveManyAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
	keys := huntKeys("k", 60)
	write := func(n *hybrid.Cache, r string) {
		t.Helper()
		m := make(map[string]string, len(keys))
		for i, k := range keys {
			m[k] = huntValue(r, i)
		}
		if err := hybrid.SetMany(ctx, n, m); err != nil {
			t.Fatal(err)
		}
	}
	check := func(n *hybrid.Cache, name, r string, o ...hybrid.Option) {
		t.Helper()
		res, err := hybrid.TryGetMany[string](ctx, n, keys, o...)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range res {
			want := ""
			if r != "" {
				want = huntValue(r, i)
			}
			if x.Err != nil || x.Value != want || x.Found != (want != "") {
				t.Fatalf("node %s %s = %.8q, found %v, %v; want %.8q", name, keys[i], x.Value, x.Found, x.Err, want)
			}
		}
	}
	write(a, "r1")
	check(b, "B", "r1")
	check(c, "C", "r1")
	write(b, "r2") // from another node
	heard(t, a, b)
	heard(t, c, b)
	check(a, "A", "r2")
	check(c, "C", "r2")
	// The carried ones are in memory at once.
	res, err := hybrid.TryGetMany[string](ctx, c, keys, l1Only)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range res {
		if i%3 != 0 && x.Value != huntValue("r2", i) {
			t.Fatalf("C's memory %s = %.8q, want the carried r2", keys[i], x.Value)
		}
	}
	if err := c.RemoveMany(ctx, keys); err != nil {
		t.Fatal(err)
	}
	heard(t, a, b, c)
	heard(t, b, a, c)
	for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
		check(n, name, "", allowStale)
	}
	late := bpNode(t, srv.FastClient(t, ""))
	check(late, "late", "", allowStale)
}

// A GetOrSetMany load on B whose batch factory started before A's SetMany
// (half the keys) and RemoveMany (the other half): its older results lose
// on every node.
func TestHuntNodesGetOrSetManyRacingRemoteBatchWrites(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
	keys := huntKeys("g", 20)
	setKeys, removeKeys := keys[:10], keys[10:]
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := hybrid.GetOrSetMany(ctx, b, keys, func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			close(started)
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
			out := map[string]string{}
			for _, k := range bc.Keys() {
				out[k] = "B's batch (older)"
			}
			return out, nil
		})
		done <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch factory did not start")
	}
	m := map[string]string{}
	for i, k := range setKeys {
		m[k] = huntValue("A", i)
	}
	if err := hybrid.SetMany(ctx, a, m); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveMany(ctx, removeKeys); err != nil {
		t.Fatal(err)
	}
	heard(t, b, a)
	heard(t, c, a)
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("GetOrSetMany did not end")
	}
	heard(t, a, b)
	heard(t, c, b)
	late := bpNode(t, srv.FastClient(t, ""))
	for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c, "late": late} {
		res, err := hybrid.TryGetMany[string](ctx, n, keys, allowStale)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range res {
			if i < len(setKeys) {
				if want := huntValue("A", i); x.Value != want {
					t.Errorf("node %s %s = %.8q; want A's newer SetMany", name, keys[i], x.Value)
				}
			} else if x.Found {
				t.Errorf("node %s %s = %.8q; want a miss after A's RemoveMany", name, keys[i], x.Value)
			}
		}
	}
}

// GetOrSetMany on two nodes at once for the same cold keys, while a third
// node writes some of them: every node ends on the same value per key.
func TestHuntNodesConcurrentGetOrSetManyConverge(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
	nodes := []*hybrid.Cache{a, b, c}
	for round := range 10 {
		keys := huntKeys(fmt.Sprint("r", round, "-"), 30)
		errs := make(chan error, 3)
		for i, n := range nodes[:2] {
			go func() {
				_, err := hybrid.GetOrSetMany(ctx, n, keys, func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
					out := map[string]string{}
					for _, k := range bc.Keys() {
						out[k] = fmt.Sprint("loaded by ", i)
					}
					return out, nil
				})
				errs <- err
			}()
		}
		go func() {
			m := map[string]string{}
			for _, k := range keys[:10] {
				m[k] = "written by C"
			}
			errs <- hybrid.SetMany(ctx, c, m)
		}()
		for range 3 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		for j, n := range nodes {
			var others []*hybrid.Cache
			for o, m := range nodes {
				if o != j {
					others = append(others, m)
				}
			}
			heard(t, n, others...)
		}
		// The truth: what a node that never held the keys reads from L2.
		probe := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{})
		truth, err := hybrid.TryGetMany[string](ctx, probe, keys)
		if err != nil {
			t.Fatal(err)
		}
		for j, n := range nodes {
			res, err := hybrid.TryGetMany[string](ctx, n, keys)
			if err != nil {
				t.Fatal(err)
			}
			for i, x := range res {
				if x.Value != truth[i].Value {
					t.Errorf("round %d: node %d %s = %q; L2 holds %q", round, j, keys[i], x.Value, truth[i].Value)
				}
			}
		}
	}
}
