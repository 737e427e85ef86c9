package strata_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/redistest"
)

// These tests run the provider against real redis-server processes started
// by redistest. Each provider stands for one process of a service.

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// noBackplane is the configure func every cache of these tests gets: they
// test the distributed tier alone.
func noBackplane(s *strata.CacheSettings) { s.DisableBackplane = true }

// redisProvider returns a provider on the shared Redis r, with production
// defaults (background L2 writes: readers must poll) and a quiet logger.
func redisProvider(t *testing.T, r *strata.RedisSettings) *strata.Provider {
	t.Helper()
	return newProvider(t, strata.Settings{Redis: r, Logger: quietLogger()})
}

func mustRegister(t *testing.T, p *strata.Provider, name string, configure ...func(*strata.CacheSettings)) *hybrid.Cache {
	t.Helper()
	c, err := p.Register(name, append([]func(*strata.CacheSettings){noBackplane}, configure...)...)
	if err != nil {
		t.Fatalf("Register(%q): %v", name, err)
	}
	return c
}

// waitValue polls TryGet on c until key holds want.
func waitValue(t *testing.T, c *hybrid.Cache, key, want string) {
	t.Helper()
	var last string
	var lastErr error
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, ok, err := hybrid.TryGet[string](context.Background(), c, key)
		if ok && err == nil && v == want {
			return
		}
		last, lastErr = v, err
		if time.Now().After(deadline) {
			t.Fatalf("cache %q key %q: last read %q (err %v), want %q", c.Name(), key, last, lastErr, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exists reports whether rdb holds key.
func exists(t *testing.T, rdb redis.UniversalClient, key string) bool {
	t.Helper()
	n, err := rdb.Exists(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}

// removedInRedis reports whether rdb holds a removal record at key (what
// Remove leaves in Redis, so that an older write is refused), rather than
// a value.
func removedInRedis(t *testing.T, rdb redis.UniversalClient, key string) bool {
	t.Helper()
	b, err := rdb.Get(context.Background(), key).Bytes()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	env, err := envelope.Decode(b)
	return err == nil && env.Removed && len(env.Value) == 0
}

// neverCalled is a factory that fails the test if it runs.
func neverCalled(t *testing.T) hybrid.Factory[string] {
	return func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		t.Error("factory called, want the value from Redis")
		return "", errors.New("unexpected factory call")
	}
}

func TestProviderSharedRedisAcrossProcesses(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	url := &strata.RedisSettings{URL: srv.URL()}
	users1 := mustRegister(t, redisProvider(t, url), "users")
	users2 := mustRegister(t, redisProvider(t, url), "users")

	if err := hybrid.Set(ctx, users1, "42", "ada"); err != nil {
		t.Fatal(err)
	}
	// Production defaults write to Redis in the background: poll process 2,
	// whose L1 has never seen the key.
	waitValue(t, users2, "42", "ada")
	if v, err := hybrid.GetOrSet(ctx, users2, "42", neverCalled(t)); err != nil || v != "ada" {
		t.Fatalf("GetOrSet in process 2 = %q, %v; want ada without a factory call", v, err)
	}
	// And the other way: a factory result of process 2 reaches process 1.
	v, err := hybrid.GetOrSet(ctx, users2, "7", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "grace", nil
	})
	if err != nil || v != "grace" {
		t.Fatalf("GetOrSet = %q, %v", v, err)
	}
	waitValue(t, users1, "7", "grace")
}

func TestProviderIsolationOnSharedClient(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	url := &strata.RedisSettings{URL: srv.URL()}
	p1 := redisProvider(t, url)
	a1, b1 := mustRegister(t, p1, "a"), mustRegister(t, p1, "b")
	hybrid.Set(ctx, a1, "k", "from a")
	hybrid.Set(ctx, b1, "k", "from b")
	hybrid.Set(ctx, a1, "only-a", "x")
	raw := srv.Client(t)
	redistest.Eventually(t, "the three writes to reach Redis", func() bool {
		n, _ := raw.Exists(ctx, "a:k", "b:k", "a:only-a").Result()
		return n == 3
	})

	// A second process: empty L1s, so every read goes to Redis.
	p2 := redisProvider(t, url)
	a2, b2 := mustRegister(t, p2, "a"), mustRegister(t, p2, "b")
	waitValue(t, a2, "k", "from a")
	waitValue(t, b2, "k", "from b")
	if v, ok, err := hybrid.TryGet[string](ctx, b2, "only-a"); ok || err != nil {
		t.Fatalf("cache b read a's key: %q, %v, %v", v, ok, err)
	}
	if exists(t, raw, "b:only-a") {
		t.Fatal("b:only-a exists in Redis")
	}
}

func TestProviderIsolatedClient(t *testing.T) {
	srv1, srv2 := redistest.Start(t), redistest.Start(t)
	ctx := context.Background()
	raw1, raw2 := srv1.Client(t), srv2.Client(t)
	// Both caches use the same key prefix: only the client keeps them apart.
	iso := func(s *strata.CacheSettings) {
		s.Redis = &strata.RedisSettings{URL: srv2.URL()}
		s.KeyPrefix = "app:"
	}
	samePrefix := func(s *strata.CacheSettings) { s.KeyPrefix = "app:" }

	p1 := redisProvider(t, &strata.RedisSettings{URL: srv1.URL()})
	isoCache := mustRegister(t, p1, "iso", iso)
	if err := hybrid.Set(ctx, isoCache, "k", "on srv2"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "app:k on srv2", func() bool { return exists(t, raw2, "app:k") })
	if exists(t, raw1, "app:k") {
		t.Fatal("the isolated cache wrote to the shared Redis")
	}

	// A cache on the shared Redis, in another process, does not see it.
	p2 := redisProvider(t, &strata.RedisSettings{URL: srv1.URL()})
	shared := mustRegister(t, p2, "shared", samePrefix)
	if v, ok, err := hybrid.TryGet[string](ctx, shared, "k"); ok || err != nil {
		t.Fatalf("a cache on the shared Redis read %q, %v, %v", v, ok, err)
	}
	// Another process's isolated cache does.
	isoCache2 := mustRegister(t, p2, "iso", iso)
	waitValue(t, isoCache2, "k", "on srv2")
	if n, _ := raw1.DBSize(ctx).Result(); n != 0 {
		t.Fatalf("shared Redis holds %d keys, want 0", n)
	}
}

func TestProviderNeverClosesCallerClient(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c := srv.Client(t)
	p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{Client: c}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	users := mustRegister(t, p, "users", func(s *strata.CacheSettings) {
		s.Redis = &strata.RedisSettings{Client: c} // isolated, but still the caller's
	})
	orders := mustRegister(t, p, "orders")
	hybrid.Set(ctx, users, "1", "ada", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.BackgroundL2Operations = false }))
	hybrid.Set(ctx, orders, "1", "book", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.BackgroundL2Operations = false }))
	if !exists(t, c, "users:1") || !exists(t, c, "orders:1") {
		t.Fatal("writes through the caller's client did not reach Redis")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("the caller's client after Provider.Close: %v", err)
	}
	if err := hybrid.Set(ctx, users, "2", "x"); !errors.Is(err, hybrid.ErrClosed) {
		t.Fatalf("Set after Close: err = %v, want hybrid.ErrClosed", err)
	}
}

// connectedClients returns how many connections srv has, besides the one
// asking.
func connectedClients(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(strings.TrimSpace(list), "\n") // one line per client, ours included
}

func TestProviderClosesClientsItCreated(t *testing.T) {
	srv, iso := redistest.Start(t), redistest.Start(t)
	ctx := context.Background()
	raw, rawIso := srv.Client(t), iso.Client(t)
	if err := raw.Ping(ctx).Err(); err != nil { // open the raw connections first
		t.Fatal(err)
	}
	if err := rawIso.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	base := goleak.IgnoreCurrent()

	p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	shared := mustRegister(t, p, "shared")
	own := mustRegister(t, p, "own", func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{URL: iso.URL()} })
	sync := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.BackgroundL2Operations = false })
	hybrid.Set(ctx, shared, "k", "v", sync)
	hybrid.Set(ctx, own, "k", "v", sync)
	if !exists(t, raw, "shared:k") || !exists(t, rawIso, "own:k") {
		t.Fatal("writes did not reach Redis")
	}
	if connectedClients(t, raw) == 0 || connectedClients(t, rawIso) == 0 {
		t.Fatal("the provider's clients hold no connection")
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*hybrid.Cache{shared, own} {
		if _, err := hybrid.GetOrSet(ctx, c, "k", neverCalled(t)); !errors.Is(err, hybrid.ErrClosed) {
			t.Errorf("GetOrSet on %q after Close: err = %v, want hybrid.ErrClosed", c.Name(), err)
		}
	}
	// The clients the provider created are closed: their connections go away.
	redistest.Eventually(t, "the shared client's connections to close", func() bool { return connectedClients(t, raw) == 0 })
	redistest.Eventually(t, "the isolated client's connections to close", func() bool { return connectedClients(t, rawIso) == 0 })
	goleak.VerifyNone(t, base)
}

func TestProviderDisableL2(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	p := redisProvider(t, &strata.RedisSettings{URL: srv.URL()})
	sync := func(s *strata.CacheSettings) { s.Entry.BackgroundL2Operations = false }
	mem := mustRegister(t, p, "mem", sync, func(s *strata.CacheSettings) { s.DisableL2 = true })
	if err := hybrid.Set(ctx, mem, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := hybrid.GetOrSet(ctx, mem, "loaded", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "x", nil
	}); err != nil || v != "x" {
		t.Fatalf("GetOrSet = %q, %v", v, err)
	}
	mem.Remove(ctx, "k")
	if err := mem.Ping(ctx); err != nil {
		t.Fatalf("Ping of a memory-only cache: %v", err)
	}
	if n, err := raw.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE = %d, %v; want 0 with DisableL2", n, err)
	}
	// The same provider still writes for a cache that has L2.
	on := mustRegister(t, p, "on", sync)
	hybrid.Set(ctx, on, "k", "v")
	keys, _ := raw.Keys(ctx, "*").Result()
	if !slices.Equal(keys, []string{"on:k"}) {
		t.Fatalf("keys in Redis = %v, want [on:k]", keys)
	}
}

// countErrors counts log records at level Error or above.
type countErrors struct{ n *atomic.Int64 }

func (h countErrors) Enabled(context.Context, slog.Level) bool { return true }
func (h countErrors) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.n.Add(1)
	}
	return nil
}
func (h countErrors) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countErrors) WithGroup(string) slog.Handler      { return h }

func TestProviderACLUser(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--user", "cacheapp", "on", ">secret", "~users:*", "+@all"))
	ctx := context.Background()
	url := &strata.RedisSettings{URL: fmt.Sprintf("redis://cacheapp:secret@127.0.0.1:%d", srv.Port())}
	var logged atomic.Int64
	p1 := newProvider(t, strata.Settings{Redis: url, Logger: slog.New(countErrors{&logged})})
	users := mustRegister(t, p1, "users")
	orders := mustRegister(t, p1, "orders")

	if err := users.Ping(ctx); err != nil {
		t.Fatalf("Ping of users (inside the ACL key pattern): %v", err)
	}
	hybrid.Set(ctx, users, "1", "ada")
	users2 := mustRegister(t, redisProvider(t, url), "users")
	waitValue(t, users2, "1", "ada")

	err := orders.Ping(ctx)
	if !errors.Is(err, hybrid.ErrL2Config) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Ping of orders (outside the ACL key pattern): err = %v, want ErrL2Config with NOPERM", err)
	}
	v, err := hybrid.GetOrSet(ctx, orders, "1", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "book", nil
	})
	if err != nil || v != "book" {
		t.Fatalf("GetOrSet on orders = %q, %v; want the factory's value despite NOPERM", v, err)
	}
	redistest.Eventually(t, "the permission error to be logged", func() bool { return logged.Load() > 0 })
	if st := orders.Stats(); st.L2Errors == 0 {
		t.Fatalf("orders stats %+v: want the L2 errors counted", st)
	}
	if st := orders.Stats(); st.L2CircuitOpen {
		t.Fatal("a permission error opened the circuit breaker: it is not transient")
	}
}

// TestProviderLeastPrivilegeACL checks the ACL line docs/redis.md gives: only
// the commands a cache and its backplane need, on its keys and channel.
func TestProviderLeastPrivilegeACL(t *testing.T) {
	// The provider names a cache's backplane channel after its key prefix
	// (wire.go): "strata:{users:}:bp" for the cache "users".
	channel := backplane.ChannelName("", "users:")
	srv := redistest.Start(t, redistest.WithArgs(
		"--user", "cacheapp", "on", ">secret", "resetchannels",
		"~users:*", "&"+channel,
		"-@all", "+get", "+mget", "+set", "+del", "+pexpire", "+evalsha", "+eval",
		"+publish", "+subscribe", "+unsubscribe", "+ping",
	))
	ctx := context.Background()
	url := fmt.Sprintf("redis://cacheapp:secret@127.0.0.1:%d", srv.Port())
	p := redisProvider(t, &strata.RedisSettings{URL: url})
	users := mustRegister(t, p, "users")
	if err := users.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// The script cache may be empty (a restart, SCRIPT FLUSH): EVAL is the
	// fallback of EVALSHA.
	if err := srv.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	hybrid.Set(ctx, users, "1", "ada")
	users2 := mustRegister(t, redisProvider(t, &strata.RedisSettings{URL: url}), "users")
	waitValue(t, users2, "1", "ada")
	users.Remove(ctx, "1", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.BackgroundL2Operations = false }))
	if !removedInRedis(t, srv.Client(t), "users:1") {
		t.Fatal("users:1 in Redis after Remove is not a removal record")
	}

	// The backplane's channel: allowed for this cache, refused for another.
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	sub := rdb.Subscribe(ctx, channel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("SUBSCRIBE %s: %v", channel, err)
	}
	if err := rdb.Publish(ctx, channel, "x").Err(); err != nil {
		t.Fatalf("PUBLISH %s: %v", channel, err)
	}
	other := backplane.ChannelName("", "orders:")
	if err := rdb.Publish(ctx, other, "x").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("PUBLISH %s: err = %v, want NOPERM", other, err)
	}
}

func TestProviderKeyPrefix(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	p := redisProvider(t, &strata.RedisSettings{URL: srv.URL()})
	sync := func(s *strata.CacheSettings) { s.Entry.BackgroundL2Operations = false }
	def := mustRegister(t, p, "users", sync)
	custom := mustRegister(t, p, "orders", sync, func(s *strata.CacheSettings) { s.KeyPrefix = "shop/v2/orders|" })
	hybrid.Set(ctx, def, "1", "ada")
	hybrid.Set(ctx, custom, "1", "book")
	if !exists(t, raw, "users:1") {
		t.Error(`default prefix: "users:1" not in Redis`)
	}
	if !exists(t, raw, "shop/v2/orders|1") {
		t.Error(`custom prefix: "shop/v2/orders|1" not in Redis`)
	}
	if exists(t, raw, "orders:1") {
		t.Error(`custom prefix: "orders:1" written too`)
	}
	// A second process with the same custom prefix reads it.
	custom2 := mustRegister(t, redisProvider(t, &strata.RedisSettings{URL: srv.URL()}), "orders",
		func(s *strata.CacheSettings) { s.KeyPrefix = "shop/v2/orders|" })
	waitValue(t, custom2, "1", "book")
}

func TestProviderCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	raw := cl.Client(t)
	addrs := &strata.RedisSettings{Addrs: cl.Addrs()}
	p1, p2 := redisProvider(t, addrs), redisProvider(t, addrs)
	users1, orders1 := mustRegister(t, p1, "users"), mustRegister(t, p1, "orders")
	users2, orders2 := mustRegister(t, p2, "users"), mustRegister(t, p2, "orders")
	if err := users1.Ping(ctx); err != nil {
		t.Fatalf("Ping on the cluster: %v", err)
	}
	// Keys spread over the slots of every master.
	for i := range 20 {
		k := fmt.Sprint(i)
		hybrid.Set(ctx, users1, k, "u"+k)
		hybrid.Set(ctx, orders2, k, "o"+k)
	}
	for i := range 20 {
		k := fmt.Sprint(i)
		waitValue(t, users2, k, "u"+k)
		waitValue(t, orders1, k, "o"+k)
	}
	if !exists(t, raw, "users:0") || !exists(t, raw, "orders:0") {
		t.Fatal("keys not found through a raw cluster client")
	}
}

// Two caches on one Redis client whose key prefixes overlap (one is the
// other, or begins it) would read and overwrite each other's keys: "a:" +
// "b:k" is "a:b:" + "k". Register refuses the second, naming both; caches
// without an L2, or on a client of their own to another Redis, are not
// compared (TestPeerProviderSameRedisOwnClientsOverlap: the same Redis
// given to a cache as its own is).
func TestProviderRefusesOverlappingKeyPrefixes(t *testing.T) {
	srv := redistest.Start(t)
	p := redisProvider(t, &strata.RedisSettings{URL: srv.URL()})
	mustRegister(t, p, "a")
	for _, c := range []struct {
		name   string
		config func(*strata.CacheSettings)
	}{
		{"a:b", nil}, // default prefix "a:b:" begins with "a:"
		{"other", func(s *strata.CacheSettings) { s.KeyPrefix = "a:" }},
		{"shorter", func(s *strata.CacheSettings) { s.KeyPrefix = "a" }}, // begins "a:"
	} {
		_, err := p.Register(c.name, c.config)
		if !errors.Is(err, strata.ErrInvalidSettings) || !strings.Contains(err.Error(), `cache "a"`) {
			t.Fatalf("Register(%q) = %v; want ErrInvalidSettings naming cache \"a\"", c.name, err)
		}
		if _, err := p.GetCache(c.name); !errors.Is(err, strata.ErrCacheNotFound) {
			t.Fatalf("GetCache(%q) after a refused Register = %v", c.name, err)
		}
	}
	mustRegister(t, p, "ab")                                                          // "ab:" and "a:" do not overlap
	mustRegister(t, p, "a:mem", func(s *strata.CacheSettings) { s.DisableL2 = true }) // no L2: no keys in Redis
	other := redistest.Start(t)                                                       // another server: its keys cannot mix with "a"'s
	mustRegister(t, p, "a:own", func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{URL: other.URL()} })

	// A KeyPrefix in Defaults gives every cache the same prefix: the
	// second is refused rather than sharing the first one's keys.
	d := strata.ProductionDefaults()
	d.KeyPrefix = "myapp:"
	p2, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Defaults: &d, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p2.Close() })
	mustRegister(t, p2, "users")
	if _, err := p2.Register("orders"); !errors.Is(err, strata.ErrInvalidSettings) {
		t.Fatalf("a second cache with the Defaults' KeyPrefix: %v; want ErrInvalidSettings", err)
	}
}

// A Register that waits for its backplane subscription (on a Redis that
// accepts connections and never answers) holds nothing up: GetCache and
// Names of the caches already registered answer while it waits.
func TestProviderRegisterDoesNotBlock(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	connected := make(chan struct{}, 64)
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never answered
			connected <- struct{}{}
		}
	}()
	t.Cleanup(func() { l.Close() })
	p := redisProvider(t, &strata.RedisSettings{URL: "redis://" + l.Addr().String()})
	mustRegister(t, p, "ready", func(s *strata.CacheSettings) { s.DisableL2 = true }) // connects nowhere (and noBackplane)
	registered := make(chan error, 1)
	go func() {
		_, err := p.Register("slow", func(s *strata.CacheSettings) { s.WaitForInitialBackplaneSubscribe = 3 * time.Second })
		registered <- err
	}()
	<-connected // "slow" is subscribing: it waits for an answer that does not come
	for range 20 {
		if _, err := p.GetCache("ready"); err != nil {
			t.Fatal(err)
		}
		if n := p.Names(); len(n) != 1 || n[0] != "ready" {
			t.Fatalf("Names while a cache is being registered = %v; want [ready]", n)
		}
	}
	select {
	case err := <-registered:
		t.Fatalf("the slow Register returned (%v) before the reads above: the test proves nothing", err)
	default:
	}
	if err := <-registered; err != nil {
		t.Fatalf("the slow Register: %v", err)
	}
	if _, err := p.Register("slow"); !errors.Is(err, strata.ErrDuplicateName) {
		t.Fatalf("a second Register of slow: %v", err)
	}
}
