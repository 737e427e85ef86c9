package strata_test

// Set messages that carry the entry (at most BackplaneValueMaxSize) against
// those that do not, seen from the receivers: what they serve, for how long,
// and how later invalidations treat an entry installed from a message
// (docs/backplane.md, "Set messages that carry the entry").

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

var huntSizes = []struct {
	name string
	n    int
}{{"small", 16}, {"large", 16 << 10}}

// A new value of a key the receivers hold: small ones are served from
// memory at once, large ones from L2 on the next read; the factory is not
// called in either case, also when the receiver's copy is a fail-safe
// fallback.
func TestHuntNodesCarriedAndLargeValuesNoFactory(t *testing.T) {
	for _, sz := range huntSizes {
		t.Run(sz.name, func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
			v1, v2 := "1:"+strings.Repeat("x", sz.n), "2:"+strings.Repeat("y", sz.n)
			if err := hybrid.Set(ctx, a, "k", v1); err != nil {
				t.Fatal(err)
			}
			for _, n := range []*hybrid.Cache{b, c} {
				if v, _ := get(t, n, "k"); v != v1 {
					t.Fatalf("setup: %.10q", v)
				}
			}
			if err := hybrid.Set(ctx, a, "k", v2); err != nil {
				t.Fatal(err)
			}
			heard(t, b, a)
			heard(t, c, a)
			v, ok := get(t, b, "k", l1Only)
			switch {
			case sz.n < hybrid.DefaultBackplaneValueMaxSize && (!ok || v != v2):
				t.Errorf("B from memory: %.10q, %v; want the carried value", v, ok)
			case sz.n > hybrid.DefaultBackplaneValueMaxSize && ok:
				t.Errorf("B from memory: %.10q; want a miss (marked stale, not carried)", v)
			}
			for name, n := range map[string]*hybrid.Cache{"B": b, "C": c} {
				calls := n.Stats().FactoryCalls
				got, err := hybrid.GetOrSet(ctx, n, "k", failing[string]())
				if err != nil || got != v2 {
					t.Errorf("node %s GetOrSet = %.10q, %v; want A's new value", name, got, err)
				}
				if d := n.Stats().FactoryCalls - calls; d != 0 {
					t.Errorf("node %s called its factory %d times for a value L2 holds", name, d)
				}
			}
		})
	}
}

// A value installed from a message (never read on the receiver), then
// expired by a third node: the receiver still has it as a fail-safe
// fallback, and a tag invalidation of the carried entry applies to it.
func TestHuntNodesCarriedEntryExpiredThenFallback(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
	if err := hybrid.Set(ctx, a, "k", "v1", hybrid.WithTags("t1")); err != nil {
		t.Fatal(err)
	}
	get(t, b, "k")
	if err := hybrid.Set(ctx, a, "k", "v2", hybrid.WithTags("t2")); err != nil {
		t.Fatal(err)
	}
	heard(t, b, a)
	if err := c.Expire(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	heard(t, b, a, c)
	if v, ok := get(t, b, "k", l1Only); ok {
		t.Fatalf("B serves %q as fresh after C's Expire", v)
	}
	if v, ok := get(t, b, "k", l1Only, allowStale); !ok || v != "v2" {
		t.Fatalf("B's stale copy from memory = %q, %v; want v2", v, ok)
	}
	// The old tag t1 no longer concerns the key; t2 does.
	if err := c.RemoveByTag(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	heard(t, b, a, c)
	if v, err := hybrid.GetOrSet(ctx, b, "k", failing[string]()); err != nil || v != "v2" {
		t.Fatalf("B GetOrSet with a failing factory = %q, %v; want the fallback v2", v, err)
	}
	if err := c.RemoveByTagWith(ctx, hybrid.DeleteTagged, "t2"); err != nil {
		t.Fatal(err)
	}
	heard(t, b, a, c)
	if v, err := hybrid.GetOrSet(ctx, b, "k", failing[string]()); err == nil {
		t.Fatalf("B GetOrSet after DeleteTagged(t2) = %q; want the factory's error, no fallback", v)
	}
}

// The same key written by two nodes with different tags: only the tags of
// the newest write count, on every node, whether the write's message
// carried it or not.
func TestHuntNodesSameKeyDifferentTagsAcrossNodes(t *testing.T) {
	for _, sz := range huntSizes {
		t.Run(sz.name, func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
			va, vb := "a:"+strings.Repeat("a", sz.n), "b:"+strings.Repeat("b", sz.n)
			if err := hybrid.Set(ctx, a, "k", va, hybrid.WithTags("ta")); err != nil {
				t.Fatal(err)
			}
			for _, n := range []*hybrid.Cache{b, c} {
				get(t, n, "k")
			}
			if err := hybrid.Set(ctx, b, "k", vb, hybrid.WithTags("tb")); err != nil {
				t.Fatal(err)
			}
			heard(t, a, b)
			heard(t, c, a, b) // C also received A's message: count it, or this waits for nothing
			for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
				if v, _ := get(t, n, "k"); v != vb {
					t.Fatalf("node %s serves %.6q; want B's newer write", name, v)
				}
			}
			if err := c.RemoveByTag(ctx, "ta"); err != nil {
				t.Fatal(err)
			}
			heard(t, a, b, c)
			heard(t, b, a, c)
			for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
				if v, ok := get(t, n, "k"); !ok || v != vb {
					t.Errorf("node %s after RemoveByTag(ta) = %.6q, %v; B's write carries tb only", name, v, ok)
				}
			}
			if err := a.RemoveByTag(ctx, "tb"); err != nil {
				t.Fatal(err)
			}
			heard(t, b, a, c)
			heard(t, c, a, b)
			for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
				if v, ok := get(t, n, "k"); ok {
					t.Errorf("node %s after RemoveByTag(tb) serves %.6q as fresh", name, v)
				}
			}
		})
	}
}

// A receiver's L1Duration bounds how long it trusts an entry installed from
// a message, as one read from L2: after it, a change that reached L2
// without a message (SkipBackplane) is picked up.
func TestHuntNodesCarriedEntryHonoursReceiverL1Duration(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := bpNode(t, srv.FastClient(t, ""))
	b := bpNode(t, srv.FastClient(t, ""), func(s *strata.CacheSettings) { s.Entry.L1Duration = 300 * time.Millisecond })
	if err := hybrid.Set(ctx, a, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	get(t, b, "k")
	if err := hybrid.Set(ctx, a, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	heard(t, b, a)
	if v, ok := get(t, b, "k", l1Only); !ok || v != "v2" {
		t.Fatalf("B from memory = %q, %v; want the carried v2", v, ok)
	}
	skip := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipBackplane = true })
	if err := hybrid.Set(ctx, a, "k", "v3", skip); err != nil {
		t.Fatal(err)
	}
	redistest.EventuallyWithin(t, 5*time.Second, "B to pick up v3 after its L1Duration", func() bool {
		v, _ := get(t, b, "k")
		return v == "v3"
	})
}

// A Set with a short Duration on A: B's copy installed from the message
// expires when A's does, not later.
func TestHuntNodesCarriedEntryKeepsWritersDuration(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
	if err := hybrid.Set(ctx, a, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	get(t, b, "k")
	start := time.Now()
	if err := hybrid.Set(ctx, a, "k", "v2", hybrid.WithDuration(400*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	heard(t, b, a)
	if v, ok := get(t, b, "k", l1Only); !ok || v != "v2" {
		t.Fatalf("B from memory = %q, %v; want the carried v2", v, ok)
	}
	redistest.Eventually(t, "the 400ms Duration to pass", func() bool { return time.Since(start) > 450*time.Millisecond })
	for name, n := range map[string]*hybrid.Cache{"A": a, "B": b} {
		if v, ok := get(t, n, "k"); ok {
			t.Errorf("node %s serves %q as fresh %v after a Set with Duration 400ms", name, v, time.Since(start).Round(time.Millisecond))
		}
		if v, ok := get(t, n, "k", allowStale); !ok || v != "v2" {
			t.Errorf("node %s stale read = %q, %v; want v2 as a fallback", name, v, ok)
		}
	}
}

// Nodes with different BackplaneValueMaxSize: a value between the two
// limits is carried from one node and not from the other; both ways the
// receiver ends up serving the new value.
func TestHuntNodesDifferentValueLimits(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	small := bpNode(t, srv.FastClient(t, ""), func(s *strata.CacheSettings) { s.BackplaneValueMaxSize = 64 })
	big := bpNode(t, srv.FastClient(t, ""), func(s *strata.CacheSettings) { s.BackplaneValueMaxSize = 64 << 10 })
	for round := range 4 {
		from, to := small, big
		if round%2 == 1 {
			from, to = big, small
		}
		v := fmt.Sprint(round, ":", strings.Repeat("z", 2000))
		if err := hybrid.Set(ctx, from, "k", v); err != nil {
			t.Fatal(err)
		}
		heard(t, to, from)
		if got, ok := get(t, to, "k"); !ok || got != v {
			t.Fatalf("round %d: receiver serves %.6q, %v", round, got, ok)
		}
	}
	if small.Stats().BackplaneValues == 0 {
		t.Errorf("the node with the small limit never installed a carried value from the other: %+v", small.Stats())
	}
}
