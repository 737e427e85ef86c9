package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// A node's connections cut (reset, then held) while another node changes a
// key it holds, and a writing transaction of some other session open on
// the same server the whole time (a migration, a batch job, a session left
// idle in transaction: pgx's tests of LISTEN across a reconnection with
// another transaction in progress). The feed's catch-up reads only the rows
// of transactions older than every running one, so that none can appear
// behind its position later; that open transaction holds that horizon
// back. The change's notification was lost with the connection: once back,
// the node must still hear of the change and stop serving its old copy,
// not serve it for as long as the other transaction stays open.
func TestPeerReconnectDuringLongTransactionServesNoStaleValue(t *testing.T) {
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

	// Another session's transaction, with a transaction id, left open.
	other, err := pgx.Connect(c, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close(context.Background()) })
	tx, err := other.Begin(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	var xid string
	if err := tx.QueryRow(c, `SELECT pg_current_xact_id()::text`).Scan(&xid); err != nil {
		t.Fatal(err)
	}

	proxy.Pause()
	proxy.ResetAll() // b's listening connection is gone; new ones hang
	if err := hybrid.Set(c, a, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	proxy.Resume()
	t0 := time.Now()
	waitFor(t, 20*time.Second, "b to hear of v2 while transaction "+xid+" is open", func() bool {
		v, ok := peek(b, "k")
		return ok && v == "v2"
	})
	t.Logf("b serves v2 %s after the reconnection (%d gaps)", time.Since(t0), b.Stats().BackplaneGaps)
	if err := tx.Commit(c); err != nil {
		t.Fatal(err)
	}
	// Delivery goes on, and the change is not applied twice in a way that
	// brings an old value back.
	if err := hybrid.Set(c, a, "k", "v3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b to hear of v3", func() bool { v, ok := peek(b, "k"); return ok && v == "v3" })
}
