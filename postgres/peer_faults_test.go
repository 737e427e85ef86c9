package postgres_test

// Scenarios ported from pgx/pgxpool's own test suites (server restart, a
// backend terminated with pg_terminate_backend, pool exhaustion, context
// cancellation, a lost LISTEN connection) and applied to what the tier
// promises in docs/postgres.md: no lost change, newest wins, calm under
// faults, Close ends everything, bad input refused cleanly.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/internal/tiertest"
	"github.com/strata-cache/strata/postgres"
	"github.com/strata-cache/strata/serializer"
)

// admin runs sql on srv as the superuser, on a connection of its own.
func admin(t testing.TB, srv *pgtest.Server, sql string, args ...any) int64 {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(c, srv.URL())
	if err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(c, sql, args...).Scan(&n); err != nil {
		t.Fatalf("admin %q: %v", sql, err)
	}
	return n
}

// terminate ends, with pg_terminate_backend, the backends that match where
// (a condition on pg_stat_activity) and returns how many it ended.
func terminate(t testing.TB, srv *pgtest.Server, where string) int64 {
	t.Helper()
	return admin(t, srv, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND `+where)
}

// pgNode is a provider's cache on PostgreSQL, with its own tier.
func pgNode(t testing.TB, cfg postgres.Config, name string, f ...func(*strata.CacheSettings)) *hybrid.Cache {
	t.Helper()
	return register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), name, f...)
}

// tableValue returns the decoded value and timestamp of key in the table.
func tableValue(t testing.TB, srv *pgtest.Server, key string) (string, int64, bool) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(c, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var b []byte
	err = conn.QueryRow(c, `SELECT value FROM strata_cache WHERE key = $1`, key).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	e, err := envelope.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := (serializer.Msgpack{}).Unmarshal(e.Value, &s); err != nil {
		return string(e.Value), e.Timestamp, true
	}
	return s, e.Timestamp, true
}

// The listening backends terminated by an operator (pg_terminate_backend,
// pgx's TestConnWaitForNotificationAfterTerminate) while another node
// writes: every change reaches the listener once it listens again, and
// that is not a gap (docs/postgres.md: "a cut connection lose nothing, and
// are not gaps").
func TestPeerTerminatedListenerLosesNothing(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	a := pgNode(t, cfg, "users")
	b := pgNode(t, cfg, "users")
	c := ctx(t)
	const n = 100
	for i := range n {
		if err := hybrid.Set(c, a, fmt.Sprint("k", i), "v1"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if v := get(t, b, fmt.Sprint("k", i)); v != "v1" {
			t.Fatalf("b reads %q, want v1", v)
		}
	}
	waitFor(t, 5*time.Second, "both listeners", func() bool {
		return admin(t, srv, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'strata-backplane'`) >= 2
	})
	if k := terminate(t, srv, `application_name = 'strata-backplane'`); k < 2 {
		t.Fatalf("terminated %d listening backends; want 2", k)
	}
	for i := range n {
		if err := hybrid.Set(c, a, fmt.Sprint("k", i), "v2"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "b to hear every change", func() bool {
		for i := range n {
			if v, ok := peek(b, fmt.Sprint("k", i)); ok && v != "v2" {
				return false
			}
		}
		return true
	})
	for i := range n {
		if v := get(t, b, fmt.Sprint("k", i)); v != "v2" {
			t.Fatalf("b reads k%d = %q after the listener was terminated; want v2", i, v)
		}
	}
	if g := b.Stats().BackplaneGaps; g != 0 {
		t.Fatalf("%d gaps after a terminated listener; the feed resumes without one", g)
	}
}

// Every pooled backend terminated (pgxpool's "server closed the connection"
// tests): the next calls run on new connections, fail nothing, and leave
// the breaker closed (docs/postgres.md: "a session the server terminated
// ... the second try runs on a new connection").
func TestPeerTerminatedPoolFailsNoCall(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL() + "&pool_max_conns=4", PruneInterval: -1}
	a := pgNode(t, cfg, "users")
	c := ctx(t)
	var wg sync.WaitGroup
	for i := range 8 { // fill the pool
		wg.Go(func() { hybrid.Set(c, a, fmt.Sprint("k", i), "v1") })
	}
	wg.Wait()
	if k := terminate(t, srv, `application_name <> 'strata-backplane'`); k == 0 {
		t.Fatal("no pooled backend to terminate")
	}
	for i := range 8 {
		if err := hybrid.Set(c, a, fmt.Sprint("k", i), "v2"); err != nil {
			t.Fatal(err)
		}
		v, ok, err := hybrid.TryGet[string](c, a, fmt.Sprint("k", i), hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true }))
		if err != nil || !ok || v != "v2" {
			t.Fatalf("L2 read k%d after the terminations: %q, %v, %v", i, v, ok, err)
		}
	}
	if st := a.Stats(); st.L2Errors != 0 || st.L2CircuitOpen || st.RecoveryQueued != 0 {
		t.Fatalf("after pg_terminate_backend: %d L2 errors, breaker open %v, %d queued; want none", st.L2Errors, st.L2CircuitOpen, st.RecoveryQueued)
	}
}

// A node cut off (its connections reset and held) while another changes a
// key it holds, and the change's row pruned meanwhile: the node reports a
// gap and does not serve its old copy as fresh afterwards (verify before
// use).
func TestPeerPrunedWhileAwayServesNoStaleValue(t *testing.T) {
	srv := pgtest.Start(t)
	proxy, url := proxied(t, srv)
	a := pgNode(t, postgres.Config{ConnString: srv.URL(), PruneInterval: -1}, "users")
	b := pgNode(t, postgres.Config{ConnString: url, PruneInterval: -1}, "users")
	pruner, err := postgres.NewTier(postgres.Config{ConnString: srv.URL(), PruneInterval: -1, ChangeRetention: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pruner.Close() })
	c := ctx(t)
	for _, k := range []string{"k", "tagged"} {
		if err := hybrid.Set(c, a, k, "v1", hybrid.WithTags("t")); err != nil {
			t.Fatal(err)
		}
		if v := get(t, b, k); v != "v1" {
			t.Fatalf("b reads %q", v)
		}
	}

	proxy.Pause()
	proxy.ResetAll()
	if err := hybrid.Set(c, a, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveByTagWith(c, hybrid.DeleteTagged, "t"); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(c, a, "k", "v3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the changes to be older than the retention", func() bool {
		n, err := pruner.Prune(context.Background())
		_ = n
		return err == nil && admin(t, srv, `SELECT count(*) FROM strata_cache_changes`) == 0
	})
	proxy.Resume()
	waitFor(t, 20*time.Second, "b to report the gap", func() bool { return b.Stats().BackplaneGaps >= 1 })
	if v := get(t, b, "k"); v != "v3" {
		t.Fatalf("after the gap b serves k = %q; want v3 (its copy must be verified)", v)
	}
	if v := get(t, b, "tagged"); v != "factory" {
		t.Fatalf("after the gap b serves tagged = %q; the RemoveByTag sent during the gap must hold", v)
	}
}

// Two nodes write one key concurrently: the table keeps the newest write,
// and both memory tiers end up with the table's value.
func TestPeerConcurrentNodesNewestWins(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	nodes := []*hybrid.Cache{pgNode(t, cfg, "users"), pgNode(t, cfg, "users")}
	c := ctx(t)
	var wg sync.WaitGroup
	for ni, n := range nodes {
		for g := range 4 {
			wg.Go(func() {
				for i := range 25 {
					if err := hybrid.Set(c, n, "k", fmt.Sprintf("n%d-g%d-%d", ni, g, i)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	want, _, ok := tableValue(t, srv, "users:k")
	if !ok {
		t.Fatal("the table lost the key")
	}
	for i, n := range nodes {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to hold %q", i, want), func() bool {
			v, _, err := hybrid.TryGet[string](c, n, "k")
			return err == nil && v == want
		})
	}
}

// Fail-safe while the server is down: the cache keeps answering with its
// stale value (no error, within its timeouts), takes a new value from the
// factory, and once the server is back the table is used again.
func TestPeerFailSafeWhileServerDown(t *testing.T) {
	srv := pgtest.Start(t)
	d := tiertest.Defaults()
	d.Entry.Duration = 300 * time.Millisecond
	d.Entry.JitterMaxDuration = 0
	d.Entry.FailSafeThrottleDuration = 200 * time.Millisecond
	d.L2CircuitBreakerDuration = 500 * time.Millisecond
	p := newProvider(t, strata.Settings{Tier: postgres.Settings(postgres.Config{ConnString: srv.URL() + "&connect_timeout=1", PruneInterval: -1}), Defaults: &d})
	cache := register(t, p, "users")
	c := ctx(t)
	fail := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "", errors.New("database down")
	}
	if v, err := hybrid.GetOrSet(c, cache, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "v1", nil }); err != nil || v != "v1" {
		t.Fatal(v, err)
	}
	srv.Kill()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		t0 := time.Now()
		v, err := hybrid.GetOrSet(c, cache, "k", fail)
		if err != nil || v != "v1" {
			t.Fatalf("GetOrSet with the server down = %q, %v; want the stale v1 and no error", v, err)
		}
		if d := time.Since(t0); d > 3*time.Second {
			t.Fatalf("GetOrSet with the server down took %s", d)
		}
		time.Sleep(50 * time.Millisecond) // paces the calls across expiries
	}
	if v, err := hybrid.GetOrSet(c, cache, "fresh", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "f", nil }); err != nil || v != "f" {
		t.Fatalf("a new key with the server down = %q, %v", v, err)
	}
	srv.Restart(t)
	waitFor(t, 30*time.Second, "a write to reach the table after the restart", func() bool {
		hybrid.Set(context.Background(), cache, "after", "up")
		v, _, ok := tableValue(t, srv, "users:after")
		return ok && v == "up"
	})
	waitFor(t, 30*time.Second, "a new value to be loaded after the restart", func() bool {
		v, err := hybrid.GetOrSet(c, cache, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "v2", nil })
		return err == nil && v == "v2"
	})
}

// Close while the server is down ends every goroutine (the listener's
// retries, the pruning loop, the pool) and does not wait for the server.
func TestPeerCloseWhileServerDown(t *testing.T) {
	opts := goleak.IgnoreCurrent()
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL() + "&connect_timeout=1", PruneInterval: 50 * time.Millisecond}
	p, err := strata.NewProvider(strata.Settings{Tier: postgres.Settings(cfg), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Register("users")
	if err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx(t), c, "k", "v"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the listener", func() bool {
		return admin(t, srv, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'strata-backplane'`) >= 1
	})
	srv.Kill()
	hybrid.Set(context.Background(), c, "k2", "v") // a write queued for recovery
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s with the server down")
	}
	goleak.VerifyNone(t, opts)
}

// All the connections of the caller's pool in use (pgxpool's pool
// exhaustion tests): the cache's calls end at its L2 timeouts and the
// factory answers; once a connection is free again the table is used.
func TestPeerPoolExhausted(t *testing.T) {
	srv := pgtest.Start(t)
	pool, err := pgxpool.New(context.Background(), srv.URL()+"&pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	d := tiertest.Defaults()
	d.Entry.L2SoftTimeout = 200 * time.Millisecond
	d.Entry.L2HardTimeout = 400 * time.Millisecond
	p := newProvider(t, strata.Settings{Tier: postgres.PoolSettings(pool, ""), Defaults: &d})
	cache := register(t, p, "users", func(s *strata.CacheSettings) { s.DisableBackplane = true })
	c := ctx(t)
	if err := hybrid.Set(c, cache, "warm", "x"); err != nil { // the schema exists
		t.Fatal(err)
	}
	held, err := pool.Acquire(c)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if v := get(t, cache, "k"); v != "factory" {
		t.Fatalf("GetOrSet with the pool exhausted = %q", v)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("GetOrSet with the pool exhausted took %s", d)
	}
	held.Release()
	waitFor(t, 40*time.Second, "the table to be used again", func() bool {
		return hybrid.Set(context.Background(), cache, "after", "up") == nil && tableHas(t, srv, "users:after")
	})
}

// Bad input: a key with bytes PostgreSQL's text cannot hold (NUL, invalid
// UTF-8) fails that key's call or is stored, but never opens the breaker
// for the other keys; a huge value round-trips between nodes; a cancelled
// context returns at once and changes nothing.
func TestPeerBadInput(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	a := pgNode(t, cfg, "users")
	b := pgNode(t, cfg, "users")
	c := ctx(t)
	for _, k := range []string{"nul\x00key", "bad\xff\xfeutf8", "ok/é\n\t key"} {
		hybrid.Set(c, a, k, "odd")
		if v := get(t, a, k); v != "odd" {
			t.Fatalf("Get %q on the writer = %q; want odd (read your writes)", k, v)
		}
	}
	if err := hybrid.Set(c, a, "plain", "v"); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.L2CircuitOpen {
		t.Fatalf("the breaker is open after odd keys: %+v", st)
	}
	if v := load(t, b, "plain"); v != "v" {
		t.Fatalf("b reads plain = %q", v)
	}
	if v := load(t, b, "ok/é\n\t key"); v != "odd" {
		t.Fatalf("b reads the odd but valid key = %q", v)
	}

	big := strings.Repeat("0123456789abcdef", 1<<19) // 8 MiB, below the default MaxValueSize (16 MiB)
	if err := hybrid.Set(c, a, "big", big); err != nil {
		t.Fatal(err)
	}
	if v := load(t, b, "big"); v != big {
		t.Fatalf("b reads big: %d bytes; want %d", len(v), len(big))
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := hybrid.Set(cancelled, a, "plain", "cancelled"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Set with a cancelled context = %v; want context.Canceled", err)
	}
	if v, _, _ := tableValue(t, srv, "users:plain"); v != "v" {
		t.Fatalf("a Set with a cancelled context changed the table: %q", v)
	}
	if st := a.Stats(); st.L2CircuitOpen {
		t.Fatalf("the breaker is open after a cancelled call: %+v", st)
	}
}

// load reads key through the cache; the factory must not be needed.
func load(t testing.TB, c *hybrid.Cache, key string) string {
	t.Helper()
	v, err := hybrid.GetOrSet(context.Background(), c, key, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "", fmt.Errorf("factory called for %q: the table should have it", key)
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A server that stops answering before the tier first used it (pgx's
// context-cancellation tests, with the schema not yet created): concurrent
// calls for different keys each end at the cache's L2 timeouts, not one
// after the other, and the factory answers.
func TestPeerHungServerBeforeSchemaConcurrentCalls(t *testing.T) {
	srv := pgtest.Start(t)
	proxy, url := proxied(t, srv)
	d := tiertest.Defaults()
	d.Entry.L2SoftTimeout = 200 * time.Millisecond
	d.Entry.L2HardTimeout = 300 * time.Millisecond
	d.DisableBackplane = true
	p := newProvider(t, strata.Settings{Tier: postgres.Settings(postgres.Config{ConnString: url, PruneInterval: -1}), Defaults: &d})
	cache := register(t, p, "users")
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	proxy.Pause() // connections are accepted, and then nothing answers
	const callers = 8
	var wg sync.WaitGroup
	durations := make([]time.Duration, callers)
	for i := range callers {
		wg.Go(func() {
			t0 := time.Now()
			v, err := hybrid.GetOrSet(c, cache, fmt.Sprint("k", i), func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "factory", nil })
			durations[i] = time.Since(t0)
			if err != nil || v != "factory" {
				t.Errorf("caller %d: %q, %v", i, v, err)
			}
		})
	}
	wg.Wait()
	proxy.Resume()
	for i, d := range durations {
		if d > 2*time.Second {
			t.Errorf("caller %d waited %s with L2 timeouts of 300 ms; all: %v", i, d, durations)
		}
	}
}
