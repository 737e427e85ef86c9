package strata_test

import (
	"context"
	"testing"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// TestStatsMatchOperationsAcrossAnOutage: two nodes on a real Redis, which
// is killed and restarted; each node's Stats count exactly the reads,
// factory runs, L2 errors and recovered writes it did.
func TestStatsMatchOperationsAcrossAnOutage(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	// Without a breaker every L2 call reaches the dead server: each error
	// is counted, whatever the timing.
	noBreaker := func(o *hybrid.Options) { o.DisableL2CircuitBreaker = true }
	n1 := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, noBreaker)
	n2 := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, noBreaker)
	var k counter

	hybrid.GetOrSet(ctx, n1, "a", k.factory("A", nil)) // n1: L1 miss, L2 miss, factory
	hybrid.GetOrSet(ctx, n2, "a", k.factory("A", nil)) // n2: L1 miss, L2 hit
	hybrid.GetOrSet(ctx, n2, "a", k.factory("A", nil)) // n2: L1 hit
	for range 3 {
		mustGet[string](t, n1, "a") // n1: L1 hit
	}
	mustGet[string](t, n2, "absent") // n2: L1 miss, L2 miss

	srv.Kill(t)
	hybrid.GetOrSet(ctx, n1, "b", k.factory("B", nil))  // n1: L1 miss, L2 error + miss, factory, write error, queued
	hybrid.GetOrSet(ctx, n1, "c", k.factory("", errDB)) // n1: L1 miss, L2 error + miss, factory error
	hybrid.GetOrSet(ctx, n2, "a", k.factory("A", nil))  // n2: L1 hit

	wantStats(t, "n1 during the outage", n1.Stats(), hybrid.Stats{
		L1Hits: 3, L1Misses: 3, L2Misses: 3, FactoryCalls: 3, FactoryErrors: 1,
		L2Errors: 3, RecoveryQueued: 1, RecoveryPending: 1,
	})
	wantStats(t, "n2 during the outage", n2.Stats(), hybrid.Stats{L1Hits: 2, L1Misses: 2, L2Hits: 1, L2Misses: 1})

	srv.Restart(t)
	redistest.Eventually(t, "n1's queued write to be replayed", func() bool { return n1.Stats().RecoveryPending == 0 })
	if v, ok := mustGet[string](t, n2, "b"); !ok || v != "B" { // n2: L1 miss, L2 hit
		t.Fatalf("n2 after the restart: %q, %v; want n1's replayed write", v, ok)
	}
	wantStats(t, "n1 after the restart", n1.Stats(), hybrid.Stats{
		L1Hits: 3, L1Misses: 3, L2Misses: 3, FactoryCalls: 3, FactoryErrors: 1,
		L2Errors: 3, RecoveryQueued: 1, Recovered: 1,
	})
	wantStats(t, "n2 after the restart", n2.Stats(), hybrid.Stats{L1Hits: 2, L1Misses: 3, L2Hits: 2, L2Misses: 1})
}

func wantStats(t *testing.T, what string, got, want hybrid.Stats) {
	t.Helper()
	if got != want {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}
