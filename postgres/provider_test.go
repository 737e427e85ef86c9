package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// Two providers (two nodes of a service) over one PostgreSQL: the table is
// shared, the notifications keep their memory tiers coherent, and two caches
// of different names never see each other's keys.
func TestProviderTwoNodes(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL()}
	n1 := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), "users")
	n2 := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), "users")
	other := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), "orders")
	c := context.Background()

	if err := hybrid.Set(c, n1, "42", "Ada"); err != nil {
		t.Fatal(err)
	}
	if v := get(t, n2, "42"); v != "Ada" {
		t.Fatalf("n2 reads %q, want Ada from the table", v)
	}
	if v := get(t, other, "42"); v != "factory" {
		t.Fatalf("another cache reads %q: it must not see users' keys", v)
	}
	// n2 holds "42" in memory: only a notification can tell it of n1's change.
	if err := hybrid.Set(c, n1, "42", "Grace", hybrid.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "n2 to take n1's change", func() bool { v, ok := peek(n2, "42"); return !ok || v == "Grace" })
	if v := get(t, n2, "42"); v != "Grace" {
		t.Fatalf("n2 reads %q after n1's Set, want Grace", v)
	}
	if err := n1.RemoveByTag(c, "t"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "n2 to drop the tagged entry", func() bool { _, ok := peek(n2, "42"); return !ok })
	if err := hybrid.Set(c, n1, "7", "x"); err != nil {
		t.Fatal(err)
	}
	_ = get(t, n2, "7")
	if err := n1.Remove(c, "7"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "n2 to drop the removed entry", func() bool { _, ok := peek(n2, "7"); return !ok })
	if v := get(t, n2, "7"); v != "factory" {
		t.Fatalf("n2 reads %q after the Remove, want a new load", v)
	}
	// Each write announced itself in its own statement: nothing was
	// published apart from the writes.
	if st := n1.Stats(); st.BackplanePublished == 0 || st.BackplaneErrors != 0 {
		t.Fatalf("n1 stats: %d published, %d errors", st.BackplanePublished, st.BackplaneErrors)
	}
}

// PostgreSQL killed and restarted: the first call after the restart
// succeeds (the pool's dead connections fail no call, so the circuit
// breaker stays closed), every node listens again and reads the feed from
// where it stopped (no gap), and hears later changes.
func TestRestartIsNotAGap(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL()}
	n1 := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), "users")
	n2 := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), "users")
	c := context.Background()
	if err := hybrid.Set(c, n1, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v := get(t, n2, "k"); v != "v1" {
		t.Fatal(v)
	}
	srv.Kill()
	srv.Restart(t)
	if err := hybrid.Set(c, n1, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	if st := n1.Stats(); st.L2Errors != 0 || st.L2CircuitOpen || st.RecoveryQueued != 0 {
		t.Fatalf("n1 after the restart: %d L2 errors, breaker open %v, %d queued for recovery; want none",
			st.L2Errors, st.L2CircuitOpen, st.RecoveryQueued)
	}
	waitFor(t, 10*time.Second, "n2 to read v2", func() bool {
		v, ok, err := hybrid.TryGet[string](c, n2, "k")
		return err == nil && ok && v == "v2"
	})
	if st := n2.Stats(); st.L2Errors != 0 || st.L2CircuitOpen {
		t.Fatalf("n2 after the restart: %d L2 errors, breaker open %v; want none", st.L2Errors, st.L2CircuitOpen)
	}
	if err := hybrid.Set(c, n1, "k", "v3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "n2 to hear v3", func() bool { v, ok := peek(n2, "k"); return !ok || v == "v3" })
	if g := n2.Stats().BackplaneGaps; g != 0 {
		t.Fatalf("n2 reported %d gaps; the feed resumes without one", g)
	}
}

// PostgreSQL down at start-up: Register does not wait for it, the cache
// serves from memory, Ping says why, and once the server is up the cache
// uses it.
func TestUnreachableAtStart(t *testing.T) {
	srv := pgtest.Start(t)
	srv.Kill()
	d := strata.ProductionDefaults()
	d.Entry.BackgroundL2Operations = false
	p := newProvider(t, strata.Settings{Tier: postgres.Settings(postgres.Config{ConnString: srv.URL() + "&connect_timeout=1"}), Defaults: &d})
	c := register(t, p, "users")
	if v := get(t, c, "k"); v != "factory" {
		t.Fatalf("GetOrSet with PostgreSQL down = %q, want the factory's value", v)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, hybrid.ErrL2Unavailable) {
		t.Fatalf("Ping with PostgreSQL down: %v", err)
	}
	srv.Restart(t)
	waitFor(t, 40*time.Second, "Ping to succeed once PostgreSQL is up", func() bool { return c.Ping(context.Background()) == nil })
	waitFor(t, 40*time.Second, "a write to reach the table", func() bool {
		return hybrid.Set(context.Background(), c, "after", "up") == nil && tableHas(t, srv, "users:after")
	})
}

// tableHas reports whether the entries table holds key.
func tableHas(t testing.TB, srv *pgtest.Server, key string) bool {
	t.Helper()
	tier := newTier(t, srv)
	l2 := newL2(t, tier, "users:")
	v, err := l2.Get(context.Background(), key)
	return err == nil && v != nil
}

// A database that does not exist is a configuration error: waiting will not
// fix it.
func TestUnknownDatabase(t *testing.T) {
	srv := pgtest.Start(t)
	tier, err := postgres.NewTier(postgres.Config{ConnString: strings.Replace(srv.URL(), "/postgres?", "/nope?", 1), PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	if err := tier.Ping(context.Background()); !errors.Is(err, hybrid.ErrL2Config) {
		t.Fatalf("Ping of an unknown database: %v; want hybrid.ErrL2Config", err)
	}
}
