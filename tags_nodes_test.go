package strata_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// loads counts factory calls per key on one node.
type loads struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *loads) get(t *testing.T, c *hybrid.Cache, key string, tags ...string) string {
	t.Helper()
	v, err := hybrid.GetOrSet(context.Background(), c, key, func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.n == nil {
			l.n = map[string]int{}
		}
		l.n[key]++
		return fmt.Sprint(key, "#", l.n[key]), nil
	}, hybrid.WithTags(tags...))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (l *loads) count(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[key]
}

func TestRemoveByTagAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	nodes := []*hybrid.Cache{
		bpNode(t, srv.FastClient(t, "")),
		bpNode(t, srv.FastClient(t, "")),
		bpNode(t, srv.FastClient(t, "")),
	}
	per := make([]loads, len(nodes))
	read := func(i int) {
		per[i].get(t, nodes[i], "foo", "x", "y")
		per[i].get(t, nodes[i], "bar", "y", "z")
		per[i].get(t, nodes[i], "baz", "x", "z")
	}
	for i := range nodes {
		read(i)
	}
	// Node 1 computed the three values; the others found them in L2.
	if per[0].count("foo") != 1 || per[1].count("foo") != 0 {
		t.Fatalf("setup: node loads %v %v", per[0].n, per[1].n)
	}
	received := make([]uint64, len(nodes))
	for i, n := range nodes {
		received[i] = n.Stats().BackplaneReceived
	}
	if err := nodes[0].RemoveByTag(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(nodes); i++ {
		redistest.Eventually(t, fmt.Sprint("node ", i+1, " to hear RemoveByTag"), func() bool {
			return nodes[i].Stats().BackplaneReceived > received[i]
		})
	}
	// Every node: foo and baz are no longer fresh, bar is.
	for i, n := range nodes {
		for key, want := range map[string]bool{"foo": false, "bar": true, "baz": false} {
			if _, ok := get(t, n, key); ok != want {
				t.Errorf("node %d: %s fresh = %v, want %v", i+1, key, ok, want)
			}
		}
	}
	// The first node to read foo again recomputes it; bar is never recomputed.
	read(1)
	if per[1].count("foo") != 1 || per[1].count("baz") != 1 || per[1].count("bar") != 0 {
		t.Fatalf("node 2 loads after RemoveByTag(x): %v; want foo and baz recomputed, bar kept", per[1].n)
	}
	// A node started after the RemoveByTag honours it: the L2 copies of foo
	// and baz from before are not served fresh by it... but node 2 rewrote
	// them since, so check with a tag whose entries were not rewritten.
	per[0].get(t, nodes[0], "old", "w")
	nodes[0].RemoveByTag(ctx, "w")
	late := bpNode(t, srv.FastClient(t, ""))
	if _, ok := get(t, late, "old"); ok {
		t.Fatal("a node started after RemoveByTag(w) served an entry tagged w as fresh")
	}
	// Unknown tag: nothing changes.
	nodes[0].RemoveByTag(ctx, "nobody-uses-this")
	if _, ok := get(t, nodes[2], "bar"); !ok {
		t.Fatal("RemoveByTag of an unknown tag invalidated bar")
	}
}

func TestClearAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	nodes := []*hybrid.Cache{
		bpNode(t, srv.FastClient(t, "")),
		bpNode(t, srv.FastClient(t, "")),
		bpNode(t, srv.FastClient(t, "")),
	}
	for i := range 10 {
		hybrid.Set(ctx, nodes[0], fmt.Sprint("k", i), "before")
	}
	for _, n := range nodes[1:] {
		for i := range 10 {
			get(t, n, fmt.Sprint("k", i))
		}
	}
	received := make([]uint64, len(nodes))
	for i, n := range nodes {
		received[i] = n.Stats().BackplaneReceived
	}
	if err := nodes[1].Clear(ctx, true); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if i != 1 {
			redistest.Eventually(t, fmt.Sprint("node ", i+1, " to hear Clear"), func() bool { return n.Stats().BackplaneReceived > received[i] })
		}
	}
	for i, n := range nodes {
		for k := range 10 {
			if v, ok := get(t, n, fmt.Sprint("k", k)); ok {
				t.Fatalf("node %d served %q after Clear", i+1, v)
			}
		}
		// Clear(true) leaves fail-safe fallbacks.
		if v, ok := get(t, n, "k0", allowStale); !ok || v != "before" {
			t.Fatalf("node %d: stale read after Clear(true) = %q, %v", i+1, v, ok)
		}
	}
	// A fourth node, created after the Clear, misses too.
	late := bpNode(t, srv.FastClient(t, ""))
	if v, ok := get(t, late, "k3"); ok {
		t.Fatalf("a node started after Clear served %q", v)
	}
	// An entry written after the Clear survives it, everywhere.
	hybrid.Set(ctx, nodes[2], "after", "survives")
	for i, n := range append(nodes, late) {
		redistest.Eventually(t, fmt.Sprint("node ", i+1, " to read the entry written after Clear"), func() bool {
			v, ok := get(t, n, "after")
			return ok && v == "survives"
		})
	}
	// Clear(false) removes: no fallback either.
	nodes[0].Clear(ctx, false)
	late2 := bpNode(t, srv.FastClient(t, ""))
	if _, ok := get(t, late2, "after", allowStale); ok {
		t.Fatal("a node started after Clear(false) served a fallback")
	}
}

// Bugs found in review: a later expire must not downgrade an earlier
// removal, Expire must not revive through L2 what a Clear removed, and a
// RemoveByTag whose message was lost in a gap is still honoured after it.
func TestInvalidationEdgeCases(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	n1 := bpNode(t, srv.FastClient(t, ""))
	hybrid.Set(ctx, n1, "a", "v", hybrid.WithTags("t"))
	n1.RemoveByTagWith(ctx, hybrid.DeleteTagged, "t")
	n1.RemoveByTag(ctx, "t")
	if _, ok := get(t, n1, "a", allowStale); ok {
		t.Fatal("RemoveByTag after RemoveByTagWith(false) revived a removed entry")
	}
	if _, ok := get(t, bpNode(t, srv.FastClient(t, "")), "a", allowStale); ok {
		t.Fatal("a node started later revived a removed entry")
	}

	hybrid.Set(ctx, n1, "b", "v")
	n1.Clear(ctx, false)
	n1.Expire(ctx, "b")
	if _, ok := get(t, bpNode(t, srv.FastClient(t, "")), "b", allowStale); ok {
		t.Fatal("Expire after Clear(false) revived the entry through L2")
	}
}

func TestRemoveByTagLostInGap(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	proxy := srv.Proxy(t)
	n1 := bpNode(t, srv.FastClient(t, ""))
	n2 := bpNode(t, srv.FastClient(t, proxy.Addr()))
	hybrid.Set(ctx, n1, "k", "v", hybrid.WithTags("t"))
	if _, ok := get(t, n2, "k"); !ok {
		t.Fatal("setup")
	}
	proxy.Pause()
	proxy.ResetAll()
	n1.RemoveByTag(ctx, "t") // node 2 misses the message
	gaps := n2.Stats().BackplaneGaps
	proxy.Resume()
	redistest.Eventually(t, "node 2 to resubscribe", func() bool { return n2.Stats().BackplaneGaps > gaps })
	if v, ok := get(t, n2, "k"); ok {
		t.Fatalf("node 2 served %q after missing RemoveByTag in a gap", v)
	}
}
