package strata_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/serializer"
)

// engineNode is one process's view of a cache named "app" on the shared
// Redis, built with hybrid.New (no provider): the engine's own L2 tests.
func engineNode(t *testing.T, client redis.UniversalClient, entry hybrid.EntryOptions, mod ...func(*hybrid.Options)) *hybrid.Cache {
	t.Helper()
	o := hybrid.Options{Name: "app", Entry: entry, L2: hybrid.NewRedisL2(client), Logger: quiet}
	for _, m := range mod {
		m(&o)
	}
	return newCache(t, o)
}

func TestL2SharedBetweenNodes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	n1 := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{})
	n2 := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{})
	if err := hybrid.Set(ctx, n1, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet[string](t, n2, "k"); !ok || v != "v1" {
		t.Fatalf("node 2 after node 1's Set: got %q, %v; want v1 from L2", v, ok)
	}
	var k counter
	if v, err := hybrid.GetOrSet(ctx, n2, "k", k.factory("factory", nil)); err != nil || v != "v1" || k.calls.Load() != 0 {
		t.Fatalf("GetOrSet on node 2: %q, %v, %d factory calls", v, err, k.calls.Load())
	}
	// A factory result on node 2 reaches node 1 through L2 (node 1 never held it).
	hybrid.GetOrSet(ctx, n2, "other", k.factory("from n2", nil))
	if v, ok := mustGet[string](t, n1, "other"); !ok || v != "from n2" {
		t.Fatalf("node 1: got %q, %v; want node 2's factory result", v, ok)
	}
	// The key lives under the cache's prefix.
	if n, _ := srv.Client(t).Exists(ctx, "app:k").Result(); n != 1 {
		t.Fatalf("app:k not in Redis")
	}
}

func TestL1DurationPicksUpChanges(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	opts := hybrid.EntryOptions{Duration: time.Hour, L1Duration: 300 * time.Millisecond}
	n1 := engineNode(t, srv.FastClient(t, ""), opts)
	n2 := engineNode(t, srv.FastClient(t, ""), opts)
	hybrid.Set(ctx, n1, "k", "old")
	if v, _ := mustGet[string](t, n2, "k"); v != "old" {
		t.Fatalf("got %q", v)
	}
	hybrid.Set(ctx, n1, "k", "new")
	if v, _ := mustGet[string](t, n2, "k"); v != "old" {
		t.Fatalf("node 2 read %q at once: its L1 copy should still be fresh (no backplane)", v)
	}
	redistest.Eventually(t, "node 2 to read the new value after L1Duration", func() bool {
		v, _ := mustGet[string](t, n2, "k")
		return v == "new"
	})
}

func TestL2HitKeepsL2Expiry(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := srv.FastClient(t, "")
	n2 := engineNode(t, rc, hybrid.EntryOptions{Duration: time.Hour})
	// Another writer stored an entry fresh for 300ms only.
	v, _ := serializer.Msgpack{}.Marshal("short")
	now := time.Now()
	env := envelope.Envelope{Timestamp: now.UnixNano(), FreshUntil: now.Add(300 * time.Millisecond).UnixNano(), Type: "string", Value: v}
	if err := rc.Set(ctx, "app:k", env.Append(nil), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if got, ok := mustGet[string](t, n2, "k"); !ok || got != "short" {
		t.Fatalf("L2 hit: got %q, %v", got, ok)
	}
	time.Sleep(time.Until(now.Add(300 * time.Millisecond))) // wait for the clock, not for a goroutine
	l1Only := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true })
	if _, ok := mustGet[string](t, n2, "k", l1Only); ok {
		t.Fatal("the L1 copy outlived L2's expiration: it took the cache's own Duration")
	}
}

func TestFailSafeUsesStaleFromL2(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	opts := hybrid.EntryOptions{Duration: 100 * time.Millisecond, FailSafe: true}
	n1 := engineNode(t, srv.FastClient(t, ""), opts)
	hybrid.Set(ctx, n1, "k", "stale")
	time.Sleep(150 * time.Millisecond) // let the entry expire (logical time, not synchronization)
	n2 := engineNode(t, srv.FastClient(t, ""), opts)
	var k counter
	v, err := hybrid.GetOrSet(ctx, n2, "k", k.factory("", errDB))
	if err != nil || v != "stale" {
		t.Fatalf("got %q, %v; want the stale copy that only L2 holds", v, err)
	}
	if k.calls.Load() != 1 {
		t.Fatalf("factory calls = %d, want 1", k.calls.Load())
	}
}

func TestRedisDownFailSafeAndRecovery(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	n := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{Duration: 50 * time.Millisecond, FailSafe: true},
		func(o *hybrid.Options) { o.L2CircuitBreakerDuration = 200 * time.Millisecond })
	for _, k := range []string{"a", "b", "c"} {
		hybrid.Set(ctx, n, k, "v-"+k)
	}
	time.Sleep(60 * time.Millisecond) // expire them
	srv.Kill(t)
	var k counter
	for _, key := range []string{"a", "b", "c"} {
		v, err := hybrid.GetOrSet(ctx, n, key, k.factory("", errDB))
		if err != nil || v != "v-"+key {
			t.Fatalf("Redis down, DB down: got %q, %v; want the stale value", v, err)
		}
	}
	// The database works but Redis is down: GetOrSet still succeeds.
	if v, err := hybrid.GetOrSet(ctx, n, "d", k.factory("fresh", nil)); err != nil || v != "fresh" {
		t.Fatalf("Redis down: got %q, %v", v, err)
	}
	if err := hybrid.Set(ctx, n, "queued", "while down"); err != nil {
		t.Fatalf("Set with Redis down: %v", err)
	}
	st := n.Stats()
	if st.L2Errors == 0 || st.RecoveryPending == 0 {
		t.Fatalf("stats after the outage: %+v; want errors counted and writes queued", st)
	}
	srv.Restart(t)
	raw := srv.Client(t)
	redistest.Eventually(t, "queued writes to reach Redis", func() bool {
		n, _ := raw.Exists(ctx, "app:queued", "app:d").Result()
		return n == 2
	})
	redistest.Eventually(t, "the queue to drain and the breaker to close", func() bool {
		st := n.Stats()
		return st.RecoveryPending == 0 && !st.L2CircuitOpen
	})
	// The restarted Redis is used again: a value from another node arrives through it.
	other := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{Duration: time.Minute})
	hybrid.Set(ctx, other, "after", "restart")
	if v, ok := mustGet[string](t, n, "after"); !ok || v != "restart" {
		t.Fatalf("after recovery: got %q, %v", v, ok)
	}
}

func TestCircuitBreakerSkipsL2(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	n := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, func(o *hybrid.Options) { o.L2CircuitBreakerDuration = time.Hour })
	srv.Kill(t)
	hybrid.TryGet[string](ctx, n, "x")
	errs := n.Stats().L2Errors
	if errs == 0 || !n.Stats().L2CircuitOpen {
		t.Fatalf("stats %+v: want an error and an open breaker", n.Stats())
	}
	for range 10 {
		hybrid.TryGet[string](ctx, n, "x")
	}
	if got := n.Stats().L2Errors; got != errs {
		t.Fatalf("L2 errors went from %d to %d: the open breaker should skip L2", errs, got)
	}
}

func TestRecoveryIsNewestWins(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	n := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{Duration: time.Minute},
		func(o *hybrid.Options) { o.L2CircuitBreakerDuration = 100 * time.Millisecond })
	srv.Kill(t)
	hybrid.Set(ctx, n, "k", "queued-old")
	srv.Restart(t)
	// Another node writes a newer value before the queue is replayed.
	other := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{Duration: time.Minute})
	hybrid.Set(ctx, other, "k", "newer")
	redistest.Eventually(t, "the queue to drain", func() bool { return n.Stats().RecoveryPending == 0 })
	fresh := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{})
	if v, _ := mustGet[string](t, fresh, "k"); v != "newer" {
		t.Fatalf("L2 holds %q: the replayed older write overwrote the newer one", v)
	}
}

func TestL2TimeoutsCutSlowReads(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	proxy := srv.Proxy(t)
	n := engineNode(t, srv.FastClient(t, proxy.Addr()), hybrid.EntryOptions{L2HardTimeout: 100 * time.Millisecond})
	hybrid.Set(ctx, n, "warm", "up") // opens the connection
	proxy.Pause()
	defer proxy.Resume()
	var k counter
	done := make(chan string)
	go func() {
		v, _ := hybrid.GetOrSet(ctx, n, "k", k.factory("from factory", nil))
		done <- v
	}()
	select {
	case v := <-done:
		if v != "from factory" {
			t.Fatalf("got %q", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("GetOrSet waited on a hung Redis past the hard timeout")
	}
	if n.Stats().L2Timeouts == 0 {
		t.Fatalf("stats %+v: want the timed-out read counted", n.Stats())
	}
}

func TestBackgroundL2WritesDoNotBlock(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	proxy := srv.Proxy(t)
	n := engineNode(t, srv.FastClient(t, proxy.Addr()), hybrid.EntryOptions{BackgroundL2Operations: true, L2HardTimeout: 30 * time.Second})
	hybrid.Set(ctx, n, "warm", "up")
	proxy.Pause()
	returned := make(chan error)
	go func() { returned <- hybrid.Set(ctx, n, "k", "v") }()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Set blocked on a hung Redis despite BackgroundL2Operations")
	}
	if v, ok := mustGet[string](t, n, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true })); !ok || v != "v" {
		t.Fatalf("L1 after a background Set: %q, %v", v, ok)
	}
	proxy.Resume()
	raw := srv.Client(t)
	redistest.Eventually(t, "the background write to land", func() bool {
		n, _ := raw.Exists(ctx, "app:k").Result()
		return n == 1
	})
}

func TestCorruptL2PayloadIsAMiss(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := srv.FastClient(t, "")
	n := engineNode(t, rc, hybrid.EntryOptions{})
	for i, payload := range []string{"garbage", "", "\xa7\x01truncated", strings.Repeat("\xff", 100)} {
		key := "k" + string(rune('0'+i))
		rc.Set(ctx, "app:"+key, payload, time.Hour)
		if _, ok := mustGet[string](t, n, key); ok {
			t.Fatalf("payload %q: a hit", payload)
		}
		var k counter
		if v, err := hybrid.GetOrSet(ctx, n, key, k.factory("rebuilt", nil)); err != nil || v != "rebuilt" {
			t.Fatalf("payload %q: GetOrSet = %q, %v", payload, v, err)
		}
	}
	if n.Stats().L2Corrupt == 0 {
		t.Fatal("corrupt payloads were not counted")
	}
	// Another type stored by another node: a miss on this one, never a panic.
	other := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{})
	hybrid.Set(ctx, other, "typed", 42)
	if _, ok := mustGet[string](t, n, "typed"); ok {
		t.Fatal("an int read as a string from L2 was a hit")
	}
}

func TestIsolationSameKey(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := srv.FastClient(t, "")
	a := newCache(t, hybrid.Options{Name: "a", L2: hybrid.NewRedisL2(rc)})
	b := newCache(t, hybrid.Options{Name: "b", L2: hybrid.NewRedisL2(rc)})
	hybrid.Set(ctx, a, "k", "a's")
	if v, ok := mustGet[string](t, b, "k"); ok {
		t.Fatalf("cache b read %q from cache a", v)
	}
}

func TestValueTooLarge(t *testing.T) {
	srv := redistest.Start(t)
	n := engineNode(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, func(o *hybrid.Options) { o.MaxValueSize = 1024 })
	err := hybrid.Set(context.Background(), n, "big", strings.Repeat("x", 2048))
	if !errors.Is(err, hybrid.ErrValueTooLarge) {
		t.Fatalf("err = %v, want ErrValueTooLarge", err)
	}
	if _, ok := mustGet[string](t, n, "big"); ok {
		t.Fatal("a rejected value was stored")
	}
}

func TestTLSAndACL(t *testing.T) {
	srv := redistest.Start(t, redistest.WithTLS(), redistest.WithArgs(
		"--user", "default", "off",
		"--user", "cacheapp", "on", ">secret", "~users:*", "+@all",
	))
	o := srv.Options()
	o.Username, o.Password = "cacheapp", "secret"
	o.MaxRetries = -1
	client := redis.NewClient(o)
	t.Cleanup(func() { client.Close() })
	ctx := context.Background()
	var logged atomic.Int64
	users := newCache(t, hybrid.Options{Name: "users", L2: hybrid.NewRedisL2(client)})
	orders := newCache(t, hybrid.Options{Name: "orders", L2: hybrid.NewRedisL2(client), Logger: slog.New(countingHandler{&logged})})
	if err := users.Ping(ctx); err != nil {
		t.Fatalf("Ping of the allowed cache: %v", err)
	}
	hybrid.Set(ctx, users, "1", "ada")
	if v, ok := mustGet[string](t, newCache(t, hybrid.Options{Name: "users", L2: hybrid.NewRedisL2(client)}), "1"); !ok || v != "ada" {
		t.Fatalf("over TLS with an ACL user: got %q, %v", v, ok)
	}
	err := orders.Ping(ctx)
	if !errors.Is(err, hybrid.ErrL2Config) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Ping outside the ACL prefix: err = %v, want ErrL2Config with NOPERM", err)
	}
	// The cache still works from memory, and says why L2 is unused.
	if err := hybrid.Set(ctx, orders, "1", "x"); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if logged.Load() == 0 {
		t.Fatal("the permission error was not logged")
	}
}

type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// TestNotFoundSharedThroughL2: a "not found" cached by one node is read
// from Redis by another, which does not ask the source.
func TestNotFoundSharedThroughL2(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	entry := hybrid.EntryOptions{Duration: time.Hour, NotFoundDuration: time.Minute}
	n1 := engineNode(t, srv.FastClient(t, ""), entry)
	n2 := engineNode(t, srv.FastClient(t, ""), entry)
	if _, err := hybrid.GetOrSet(ctx, n1, "user:9", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		return fc.NotFound()
	}); !errors.Is(err, hybrid.ErrNotFound) {
		t.Fatalf("node 1: %v", err)
	}
	if _, err := hybrid.GetOrSet(ctx, n2, "user:9", neverCalled(t)); !errors.Is(err, hybrid.ErrNotFound) {
		t.Fatalf("node 2: err = %v, want the not found from Redis", err)
	}
}

// TestAutoCloneFromL2: an entry read from Redis into a cache with
// AutoClone gives each reader its own copy too.
func TestAutoCloneFromL2(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	entry := hybrid.EntryOptions{Duration: time.Hour, AutoClone: true}
	n1 := engineNode(t, srv.FastClient(t, ""), entry)
	n2 := engineNode(t, srv.FastClient(t, ""), entry)
	if err := hybrid.Set(ctx, n1, "k", map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	a, ok := mustGet[map[string]int](t, n2, "k")
	if !ok {
		t.Fatal("miss")
	}
	a["a"] = 99
	if b, _ := mustGet[map[string]int](t, n2, "k"); b["a"] != 1 {
		t.Fatalf("a reader's change reached the next reader on node 2: %v", b)
	}
}

// TestSlidingExtendsRedis: a read that extends a sliding entry also pushes
// its logical expiry (and TTL) forward in Redis, once per half window, so
// another node keeps seeing it fresh.
func TestSlidingExtendsRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rdb := srv.Client(t)
	entry := hybrid.EntryOptions{Duration: time.Hour, SlidingDuration: 2 * time.Second}
	n1 := engineNode(t, srv.FastClient(t, ""), entry)
	if err := hybrid.Set(ctx, n1, "k", "v"); err != nil {
		t.Fatal(err)
	}
	freshUntil := func() int64 {
		b, err := rdb.Get(ctx, "app:k").Bytes()
		if err != nil {
			t.Fatal(err)
		}
		env, err := envelope.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return env.FreshUntil
	}
	first := freshUntil()
	redistest.Eventually(t, "a read past the half window to extend the entry in Redis", func() bool {
		if _, ok := mustGet[string](t, n1, "k"); !ok {
			t.Fatal("the entry expired while being read")
		}
		return freshUntil() > first
	})
}
