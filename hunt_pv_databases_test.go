package strata_test

// Caches on different Redis databases of one server (redis://h/1 and
// redis://h/2) used to share a backplane channel. Redis keeps their keys
// apart, but pub/sub channels are global to the server, so a Set in
// database 1 put its value into the memory of the same-named cache of
// database 2, which then served it although its own Redis (database 2)
// held another value. The channel now names the database when it is not 0.

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// dbNode is a process whose cache "users" is on database db ("/1") of
// srv, with synchronous writes and its subscription awaited.
func dbNode(t *testing.T, srv *redistest.Server, db string) *hybrid.Cache {
	t.Helper()
	p, err := strata.NewProvider(strata.Settings{
		Redis:  &strata.RedisSettings{URL: srv.URL() + db},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := p.Register("users", func(s *strata.CacheSettings) {
		s.Entry.BackgroundL2Operations = false
		s.WaitForInitialBackplaneSubscribe = 10 * time.Second
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHuntPVDatabasesShareBackplane(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	node := func(db string) *hybrid.Cache { return dbNode(t, srv, db) }
	b := node("/2")
	a := node("/1")
	if err := hybrid.Set(ctx, b, "k", "db2"); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, a, "k", "db1"); err != nil {
		t.Fatal(err)
	}
	// Barrier: a change made on database 2 after A's, heard by B.
	b2 := node("/2")
	if err := hybrid.Set(ctx, b2, "barrier", "x"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "B to hear its own database's barrier", func() bool {
		v, ok, err := hybrid.TryGet[string](ctx, b, "barrier")
		return ok && err == nil && v == "x"
	})
	v, ok, err := hybrid.TryGet[string](ctx, b, "k")
	if err != nil || !ok || v != "db2" {
		t.Fatalf("the cache on database 2 reads %q (ok %v, err %v), want db2 (what database 2 holds); it applied %d backplane messages, want 1",
			v, ok, err, b.Stats().BackplaneReceived)
	}
}

// The same leak for invalidations: a Clear of the cache on database 1
// clears the same-named cache on database 2, whose own Redis never saw a
// Clear: a process that starts on database 2 still reads the value.
func TestHuntPVDatabasesShareClear(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	node := func(db string) *hybrid.Cache { return dbNode(t, srv, db) }
	b := node("/2")
	a := node("/1")
	if err := hybrid.Set(ctx, b, "k", "db2"); err != nil {
		t.Fatal(err)
	}
	if err := a.Clear(ctx, false); err != nil {
		t.Fatal(err)
	}
	b2 := node("/2")
	if err := hybrid.Set(ctx, b2, "barrier", "x"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "B to hear its own database's barrier", func() bool {
		v, ok, err := hybrid.TryGet[string](ctx, b, "barrier")
		return ok && err == nil && v == "x"
	})
	fresh := node("/2")
	if v, ok, err := hybrid.TryGet[string](ctx, fresh, "k"); !ok || err != nil || v != "db2" {
		t.Fatalf("test bug: a fresh process on database 2 reads %q, %v, %v", v, ok, err)
	}
	if v, ok, err := hybrid.TryGet[string](ctx, b, "k"); !ok || err != nil || v != "db2" {
		t.Fatalf("the cache on database 2 reads %q (ok %v, err %v) after a Clear of database 1's cache; its database holds db2", v, ok, err)
	}
}
