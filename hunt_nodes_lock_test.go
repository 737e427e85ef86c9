package strata_test

// Cluster-wide stampede protection (DistributedLock) while another node
// changes the key, and cached "not found" answers across nodes
// (docs/getorset.md).

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// B holds the key's lock and runs its factory; C waits for B's value; A
// sets the key meanwhile. C answers with A's value without calling its
// factory, B's older result loses, and every node ends on A's value.
func TestHuntNodesDistributedLockWaiterTakesRemoteSet(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	lock := func(s *strata.CacheSettings) {
		s.Entry.DistributedLock = true
		s.Entry.DistributedLockTimeout = 15 * time.Second
	}
	a, b, c := bpNode(t, srv.FastClient(t, ""), lock), bpNode(t, srv.FastClient(t, ""), lock), bpNode(t, srv.FastClient(t, ""), lock)
	finish := huntBlockedLoad(t, b, "k", "B's (older)")
	var cCalls atomic.Int64
	cDone := make(chan string, 1)
	go func() {
		v, err := hybrid.GetOrSet(ctx, c, "k", huntCountingFactory(&cCalls, "C's"))
		if err != nil {
			v = "error: " + err.Error()
		}
		cDone <- v
	}()
	// C is polling B's lock: give it a moment to be in that loop.
	redistest.Eventually(t, "C's load to miss L2 (then it polls B's lock)", func() bool { return c.Stats().L2Misses > 0 })
	if err := hybrid.Set(ctx, a, "k", "A's"); err != nil {
		t.Fatal(err)
	}
	var cv string
	select {
	case cv = <-cDone:
	case <-time.After(10 * time.Second):
		finish()
		t.Fatal("C still waits for B's lock after A's Set reached L2")
	}
	if cv != "A's" || cCalls.Load() != 0 {
		t.Errorf("C = %q with %d factory calls; want A's value from L2", cv, cCalls.Load())
	}
	finish()
	heard(t, a, b, c)
	heard(t, c, a, b)
	for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
		if v, _ := get(t, n, "k"); v != "A's" {
			t.Errorf("node %s serves %q; want A's newer Set", name, v)
		}
	}
}

// A "not found" answered on node A replaces the value other nodes held,
// and they answer ErrNotFound without calling their source; a later Set on
// a third node replaces the "not found" everywhere.
func TestHuntNodesNotFoundReplacesValuesAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b, c := bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, "")), bpNode(t, srv.FastClient(t, ""))
	if err := hybrid.Set(ctx, a, "k", "exists"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*hybrid.Cache{b, c} {
		if v, _ := get(t, n, "k"); v != "exists" {
			t.Fatalf("setup: %q", v)
		}
	}
	if err := a.Expire(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := hybrid.GetOrSet(ctx, a, "k", huntNotFound, huntNotFoundFor); !errors.Is(err, hybrid.ErrNotFound) {
		t.Fatalf("A: %v; want ErrNotFound", err)
	}
	heard(t, b, a)
	heard(t, c, a)
	for name, n := range map[string]*hybrid.Cache{"B": b, "C": c} {
		var calls atomic.Int64
		_, err := hybrid.GetOrSet(ctx, n, "k", huntCountingFactory(&calls, "from "+name), huntNotFoundFor)
		if !errors.Is(err, hybrid.ErrNotFound) || calls.Load() != 0 {
			t.Errorf("node %s: %v with %d factory calls; want the cached ErrNotFound", name, err, calls.Load())
		}
		if v, ok := get(t, n, "k", allowStale); ok {
			t.Errorf("node %s TryGet = %q; want a miss for a cached not found", name, v)
		}
	}
	if err := hybrid.Set(ctx, c, "k", "back"); err != nil {
		t.Fatal(err)
	}
	heard(t, a, b, c)
	heard(t, b, a, c)
	for name, n := range map[string]*hybrid.Cache{"A": a, "B": b, "C": c} {
		if v, err := hybrid.GetOrSet(ctx, n, "k", failing[string](), huntNotFoundFor); err != nil || v != "back" {
			t.Errorf("node %s = %q, %v; want C's Set", name, v, err)
		}
	}
}
