package strata_test

// Changes made on one node while a load of the same key is in flight on
// another: the load's factory started before the change, so its result is
// older than the change and must lose to it on every node and in L2
// (docs/backplane.md, "Receiving": the tombstone left for an in-flight
// read; docs/clear.md and docs/tags.md: a load whose factory started before
// the invalidation stores a value that is already invalidated).

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// huntBlockedLoad starts GetOrSet(key) on c in the background with a
// factory that signals when it has started, then waits for release before
// returning value (tagging its entry with tags). It returns once the
// factory is running, and a function that releases it and waits for the
// GetOrSet to end, returning its result.
func huntBlockedLoad(t *testing.T, c *hybrid.Cache, key, value string, tags ...string) func() (string, error) {
	t.Helper()
	started, release := make(chan struct{}), make(chan struct{})
	type result struct {
		v   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := hybrid.GetOrSet(context.Background(), c, key, func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			if len(tags) > 0 {
				fc.SetTags(tags...)
			}
			close(started)
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
			return value, nil
		})
		done <- result{v, err}
	}()
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("GetOrSet(%q) ended before its factory ran: %q, %v", key, r.v, r.err)
	case <-time.After(10 * time.Second):
		t.Fatalf("the factory of %q did not start", key)
	}
	return func() (string, error) {
		close(release)
		select {
		case r := <-done:
			return r.v, r.err
		case <-time.After(10 * time.Second):
			t.Fatalf("GetOrSet(%q) did not end after its factory was released", key)
			return "", nil
		}
	}
}

// huntCountingFactory returns v and counts its calls in n.
func huntCountingFactory(n *atomic.Int64, v string) hybrid.Factory[string] {
	return func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		n.Add(1)
		return v, nil
	}
}

// A Set on node A while node B's factory for the key runs: B's older result
// must not win anywhere (not in B's memory, not in L2, not on node C).
func TestHuntNodesSetWhileRemoteLoadInFlight(t *testing.T) {
	for _, size := range []int{8, 8 << 10} { // carried by the message, or not
		t.Run(fmt.Sprint("value bytes ", size), func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
			newer := "A:" + strings.Repeat("n", size)
			finish := huntBlockedLoad(t, b, "k", "B's factory (older)")
			if err := hybrid.Set(ctx, a, "k", newer); err != nil {
				t.Fatal(err)
			}
			heard(t, b, a)
			heard(t, c, a)
			finish()
			heard(t, a, b) // whatever B published, if anything
			heard(t, c, b)
			for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
				if v, ok := get(t, n, "k"); !ok || v != newer {
					t.Errorf("node %s serves %.20q, %v; want A's newer Set", name, v, ok)
				}
			}
			late := bpNode(t, srv.FastClient(t, ""))
			if v, ok := get(t, late, "k"); !ok || v != newer {
				t.Errorf("L2 (a new node) holds %.20q, %v; want A's newer Set", v, ok)
			}
		})
	}
}

// A Remove on node A while node B's factory for the key runs: the key stays
// removed everywhere; B's next GetOrSet loads afresh.
func TestHuntNodesRemoveWhileRemoteLoadInFlight(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
	if err := hybrid.Set(ctx, a, "other", "x"); err != nil { // the key itself is absent
		t.Fatal(err)
	}
	finish := huntBlockedLoad(t, b, "k", "B's factory (older)")
	if err := a.Remove(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	heard(t, b, a)
	finish()
	heard(t, a, b)
	heard(t, c, b)
	for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
		if v, ok := get(t, n, "k", allowStale); ok {
			t.Errorf("node %s serves %q after A's Remove that followed the factory's start", name, v)
		}
	}
	var calls atomic.Int64
	if v, err := hybrid.GetOrSet(ctx, b, "k", huntCountingFactory(&calls, "reloaded")); err != nil || v != "reloaded" || calls.Load() != 1 {
		t.Fatalf("B's next GetOrSet = %q, %v with %d factory calls; want a reload", v, err, calls.Load())
	}
}

// Clear(false) on node A while node B's factory runs: B's result, made
// before the Clear, is served to B's callers only; every node's next read
// reloads (docs/clear.md, "An entry written after the Clear survives").
func TestHuntNodesClearWhileRemoteLoadInFlight(t *testing.T) {
	for _, allowFailSafe := range []bool{false, true} {
		t.Run(fmt.Sprint("allowFailSafe=", allowFailSafe), func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
			finish := huntBlockedLoad(t, b, "k", "before the Clear")
			if err := a.Clear(ctx, allowFailSafe); err != nil {
				t.Fatal(err)
			}
			heard(t, b, a)
			heard(t, c, a)
			if v, err := finish(); err != nil || v != "before the Clear" {
				t.Fatalf("B's caller got %q, %v", v, err)
			}
			heard(t, a, b)
			heard(t, c, b)
			for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
				if v, ok := get(t, n, "k"); ok {
					t.Errorf("node %s serves %q as fresh: its factory started before the Clear", name, v)
				}
			}
			for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
				// The first of these loads; the others may take its result from L2.
				var calls atomic.Int64
				if v, err := hybrid.GetOrSet(ctx, n, "k", huntCountingFactory(&calls, "after "+name)); err != nil || v == "before the Clear" {
					t.Errorf("node %s GetOrSet = %q, %v (%d factory calls); want a reload", name, v, err, calls.Load())
				}
			}
		})
	}
}

// RemoveByTagWith(DeleteTagged) on node A while node B's factory runs and
// tags its result from inside the factory: the result, made before the
// invalidation, is not served again on any node, not even as a fallback.
func TestHuntNodesDeleteTaggedWhileRemoteLoadInFlight(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
	finish := huntBlockedLoad(t, b, "k", "tagged before", "grp")
	if err := a.RemoveByTagWith(ctx, hybrid.DeleteTagged, "grp"); err != nil {
		t.Fatal(err)
	}
	heard(t, b, a)
	heard(t, c, a)
	finish()
	heard(t, a, b)
	heard(t, c, b)
	for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
		if v, ok := get(t, n, "k", allowStale); ok {
			t.Errorf("node %s serves %q: tagged grp, created before DeleteTagged(grp)", name, v)
		}
	}
	late := bpNode(t, srv.FastClient(t, ""))
	if v, ok := get(t, late, "k", allowStale); ok {
		t.Errorf("a new node serves %q: tagged grp, created before DeleteTagged(grp)", v)
	}
}

// Expire on node A while node B's factory runs, with a value in L2 before:
// the load's older result does not come back as fresh anywhere.
func TestHuntNodesExpireWhileRemoteLoadInFlight(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
	finish := huntBlockedLoad(t, b, "k", "B's factory (older)")
	if err := hybrid.Set(ctx, a, "k", "A's"); err != nil {
		t.Fatal(err)
	}
	if err := a.Expire(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	heard(t, b, a)
	finish()
	heard(t, a, b)
	heard(t, c, b)
	for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
		if v, ok := get(t, n, "k"); ok {
			t.Errorf("node %s serves %q as fresh after A's Expire", name, v)
		}
		if v, ok := get(t, n, "k", allowStale); !ok || v != "A's" {
			t.Errorf("node %s stale read = %q, %v; want A's expired value", name, v, ok)
		}
	}
}
