package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// The feed table truncated by an operator (TRUNCATE keeps the table's OID,
// so it does not read as a table created again) while a node is away: the
// rows it had not read are gone, and it reports a gap instead of serving
// its old copies as fresh.
func TestTruncatedFeedWhileAwayIsAGap(t *testing.T) {
	srv := pgtest.Start(t)
	proxy, url := proxied(t, srv)
	a := pgNode(t, postgres.Config{ConnString: srv.URL(), PruneInterval: -1}, "users")
	b := pgNode(t, postgres.Config{ConnString: url, PruneInterval: -1}, "users")
	c := ctx(t)
	if err := hybrid.Set(c, a, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v := get(t, b, "k"); v != "v1" {
		t.Fatalf("b reads %q", v)
	}
	gaps := b.Stats().BackplaneGaps
	proxy.Pause()
	proxy.ResetAll()
	if err := hybrid.Set(c, a, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	adminExec(t, srv, `TRUNCATE strata_cache_changes`)
	proxy.Resume()
	waitFor(t, 20*time.Second, "b to report the gap", func() bool { return b.Stats().BackplaneGaps > gaps })
	if v := get(t, b, "k"); v != "v2" {
		t.Fatalf("after the gap b serves k = %q; want v2 (its copy must be verified)", v)
	}
}

// TRUNCATE ... RESTART IDENTITY while every node is connected: the new
// rows' ids start again at 1, and a node must not take them for changes it
// has already delivered (it remembers recent ids to drop duplicates).
func TestTruncatedFeedRestartIdentityLosesNothing(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	a := pgNode(t, cfg, "users")
	b := pgNode(t, cfg, "users")
	c := ctx(t)
	const n = 5
	for i := range n {
		if err := hybrid.Set(c, a, fmt.Sprint("k", i), "v1"); err != nil {
			t.Fatal(err)
		}
		if v := get(t, b, fmt.Sprint("k", i)); v != "v1" {
			t.Fatalf("b reads %q", v)
		}
	}
	waitFor(t, 5*time.Second, "b to have read the feed", func() bool { return b.Stats().BackplaneReceived >= n })
	adminExec(t, srv, `TRUNCATE strata_cache_changes RESTART IDENTITY`)
	for i := range n {
		if err := hybrid.Set(c, a, fmt.Sprint("k", i), "v2"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "b to read every new value", func() bool {
		for i := range n {
			if v, _, _ := hybrid.TryGet[string](context.Background(), b, fmt.Sprint("k", i)); v != "v2" {
				return false
			}
		}
		return true
	})
}
