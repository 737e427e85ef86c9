package strata_test

// More provider scenarios over real Redis, ported from Bitwarden's
// named-cache provider (bitwarden/server ExtendedCache and
// bitwarden/dotnet-extensions Bitwarden.Server.Sdk.Caching: named caches
// sharing or isolating a Redis connection, key prefixes, per-cache
// settings, disposal) and from sturdyc's and go-redis/cache's batch and
// "once" tests where they meet the provider. Each test names what it
// checks and the doc line that decides it.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// ppSync makes writes block the caller and Register wait for the
// backplane subscription, so that a test can look at Redis and at the
// other nodes right after a call returns.
func ppSync(s *strata.CacheSettings) {
	s.Entry.BackgroundL2Operations = false
	s.WaitForInitialBackplaneSubscribe = 10 * time.Second
}

// ppSource is a batch source: "<prefix><key>" for every key, counted.
type ppSource struct {
	prefix string
	calls  atomic.Int64
	keys   atomic.Int64
}

func (s *ppSource) fetch(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
	s.calls.Add(1)
	s.keys.Add(int64(len(bc.Keys())))
	out := make(map[string]string, len(bc.Keys()))
	for _, k := range bc.Keys() {
		out[k] = s.prefix + k
	}
	return out, nil
}

func ppMany(t *testing.T, c *hybrid.Cache, keys []string, f hybrid.BatchFactory[string]) []hybrid.Result[string] {
	t.Helper()
	res, err := hybrid.GetOrSetMany(context.Background(), c, keys, f)
	if err != nil {
		t.Fatalf("GetOrSetMany(%v) on %q: %v", keys, c.Name(), err)
	}
	return res
}

func ppWant(t *testing.T, r hybrid.Result[string], key, want string) {
	t.Helper()
	if r.Err != nil || !r.Found || r.Value != want {
		t.Fatalf("%s: got %+v, want %q", key, r, want)
	}
}

// A Redis in Defaults (Bitwarden's "every cache on its own connection")
// gives each cache a client of its own, but to one server: caches named
// "a" and "a:b" then get the prefixes "a:" and "a:b:" on the same keys
// ("a:" + "b:k" is "a:b:" + "k"), as on the shared client, where Register
// refuses the second. The provider compares the settings: the same Client
// value, the same URL or the same seeds reach the same keys, and the
// shared Redis given again to a cache as its own is the shared one
// (docs/settings.md "Key prefixes do not overlap"). Before, only caches
// on the shared client were compared, and both caches below wrote "a:b:k".
func TestPeerProviderSameRedisOwnClientsOverlap(t *testing.T) {
	srv, other := redistest.Start(t), redistest.Start(t)
	rdb := srv.Client(t)
	for _, tc := range []struct {
		name     string
		settings func() strata.Settings
		second   func(*strata.CacheSettings) // the configure of "a:b"
	}{
		{"Defaults.Redis.Client", func() strata.Settings {
			d := strata.ProductionDefaults()
			d.Redis = &strata.RedisSettings{Client: rdb}
			return strata.Settings{Defaults: &d, Logger: quiet}
		}, nil},
		{"Defaults.Redis.URL", func() strata.Settings {
			d := strata.ProductionDefaults()
			d.Redis = &strata.RedisSettings{URL: srv.URL()}
			return strata.Settings{Defaults: &d, Logger: quiet}
		}, nil},
		{"shared client given again", func() strata.Settings {
			return strata.Settings{Redis: &strata.RedisSettings{Client: rdb}, Logger: quiet}
		}, func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{Client: rdb} }},
		{"shared URL given again", func() strata.Settings {
			return strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet}
		}, func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{URL: srv.URL()} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, tc.settings())
			bwRegister(t, p, "a")
			_, err := p.Register("a:b", tc.second)
			if !errors.Is(err, strata.ErrInvalidSettings) || !strings.Contains(err.Error(), `cache "a"`) {
				t.Fatalf(`Register("a:b") on a's Redis: %v; want ErrInvalidSettings naming cache "a"`, err)
			}
			if _, err := p.GetCache("a:b"); !errors.Is(err, strata.ErrCacheNotFound) {
				t.Fatalf("GetCache after a refused Register: %v", err)
			}
			// Another server, or a prefix apart, is fine.
			bwRegister(t, p, "a:b", func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{URL: other.URL()} })
			bwRegister(t, p, "c", tc.second)
		})
	}
}

// Two services (two providers) on one Redis that both name a cache
// "users" but give it different prefixes are isolated: their keys, their
// batches and their backplanes never meet (docs/redis.md "Caches on one
// client are kept apart by their key prefix"; the channel is named after
// the prefix). A third node on the first prefix is the witness that the
// first service's removals were announced.
func TestPeerProviderTwoProvidersSameNameIsolatedByPrefix(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	url := &strata.RedisSettings{URL: srv.URL()}
	prefix := func(p string) func(*strata.CacheSettings) {
		return func(s *strata.CacheSettings) { s.KeyPrefix = p }
	}
	a := bwRegister(t, newProvider(t, strata.Settings{Redis: url, Logger: quiet}), "users", ppSync, prefix("svc-a:users:"))
	witness := bwRegister(t, newProvider(t, strata.Settings{Redis: url, Logger: quiet}), "users", ppSync, prefix("svc-a:users:"))
	b := bwRegister(t, newProvider(t, strata.Settings{Redis: url, Logger: quiet}), "users", ppSync, prefix("svc-b:users:"))

	srcA, srcB := &ppSource{prefix: "A"}, &ppSource{prefix: "B"}
	keys := []string{"1", "2", "3"}
	for i, r := range ppMany(t, a, keys, srcA.fetch) {
		ppWant(t, r, keys[i], "A"+keys[i])
	}
	// B's batch finds nothing of A's: its own source answers every key.
	for i, r := range ppMany(t, b, keys, srcB.fetch) {
		ppWant(t, r, keys[i], "B"+keys[i])
	}
	if srcB.keys.Load() != 3 {
		t.Fatalf("B's source was asked %d keys, want 3 (A's entries leaked into B)", srcB.keys.Load())
	}
	// The witness, on A's prefix, reads A's entries from Redis.
	for i, r := range ppMany(t, witness, keys, (&ppSource{prefix: "W"}).fetch) {
		ppWant(t, r, keys[i], "A"+keys[i])
	}
	if err := a.RemoveMany(ctx, []string{"1", "2"}); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "the witness to hear A's RemoveMany", func() bool {
		res, err := hybrid.TryGetMany[string](ctx, witness, []string{"1", "2"}, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true }))
		return err == nil && !res[0].Found && !res[1].Found
	})
	res, err := hybrid.TryGetMany[string](ctx, b, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		ppWant(t, r, "B's "+keys[i], "B"+keys[i])
	}
	keysInRedis := bwKeys(t, srv)
	for _, k := range keysInRedis {
		if !strings.HasPrefix(k, "svc-a:users:") && !strings.HasPrefix(k, "svc-b:users:") {
			t.Errorf("key %q outside both prefixes", k)
		}
	}
	if n := numSub(t, srv, bwChannel("svc-b:users:")); n != 1 {
		t.Errorf("%d subscribers of B's channel, want 1 (B only)", n)
	}
}

// Two replicas (two providers) with the same cache name and prefix share
// it: one batch's results serve the other replica from Redis without its
// source, and a RemoveMany on one drops the other's memory copies
// (docs/batch.md "one round trip", "one batch of notifications").
func TestPeerProviderTwoReplicasShareBatches(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	url := &strata.RedisSettings{URL: srv.URL()}
	n1 := bwRegister(t, newProvider(t, strata.Settings{Redis: url, Logger: quiet}), "users", ppSync)
	n2 := bwRegister(t, newProvider(t, strata.Settings{Redis: url, Logger: quiet}), "users", ppSync)
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = fmt.Sprint("u", i)
	}
	src1, src2 := &ppSource{prefix: "v"}, &ppSource{prefix: "other"}
	ppMany(t, n1, keys, src1.fetch)
	for i, r := range ppMany(t, n2, append(slices.Clone(keys), keys[0], ""), src2.fetch) {
		switch {
		case i == len(keys)+1:
			if !errors.Is(r.Err, hybrid.ErrInvalidKey) {
				t.Fatalf("empty key: %+v", r)
			}
		case i == len(keys):
			ppWant(t, r, "duplicate", "v"+keys[0])
		default:
			ppWant(t, r, keys[i], "v"+keys[i])
		}
	}
	if src2.calls.Load() != 0 {
		t.Fatalf("the second replica called its source %d times; Redis held every key", src2.calls.Load())
	}
	if err := n1.RemoveMany(ctx, keys[:10]); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "the second replica to drop the removed keys", func() bool {
		res, err := hybrid.TryGetMany[string](ctx, n2, keys[:10], hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true }))
		if err != nil {
			return false
		}
		for _, r := range res {
			if r.Found {
				return false
			}
		}
		return true
	})
	res, _ := hybrid.TryGetMany[string](ctx, n2, keys[10:])
	for i, r := range res {
		ppWant(t, r, keys[10+i], "v"+keys[10+i])
	}
}

// Bitwarden disposes the caches with the service provider. After Close:
// Register is refused with strata.ErrClosed and opens no connection; the
// caches GetCache still returns answer every batch call with
// hybrid.ErrClosed and reach Redis no more (docs/errors.md: "GetCache keeps
// returning the (closed) caches after Provider.Close").
func TestPeerProviderRegisterAfterCloseOverRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	raw.Ping(ctx)
	p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c := bwRegister(t, p, "users", ppSync)
	ppMany(t, c, []string{"k"}, (&ppSource{prefix: "v"}).fetch)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "the provider's connections to close", func() bool { return connectedClients(t, raw) == 0 })
	for _, cfg := range []func(*strata.CacheSettings){nil, func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{URL: srv.URL()} }} {
		if _, err := p.Register("late", cfg); !errors.Is(err, strata.ErrClosed) {
			t.Fatalf("Register after Close: %v, want strata.ErrClosed", err)
		}
	}
	if n := connectedClients(t, raw); n != 0 {
		t.Fatalf("Register after Close opened %d connections", n)
	}
	if names := p.Names(); !slices.Equal(names, []string{"users"}) {
		t.Fatalf("Names() after Close = %v", names)
	}
	got := p.MustGetCache("users")
	src := &ppSource{prefix: "v"}
	if _, err := hybrid.GetOrSetMany(ctx, got, []string{"k", "j"}, src.fetch); !errors.Is(err, hybrid.ErrClosed) {
		t.Errorf("GetOrSetMany on a closed provider's cache: %v", err)
	}
	if _, err := hybrid.TryGetMany[string](ctx, got, []string{"k"}); !errors.Is(err, hybrid.ErrClosed) {
		t.Errorf("TryGetMany: %v", err)
	}
	if err := hybrid.SetMany(ctx, got, map[string]string{"k": "x"}); !errors.Is(err, hybrid.ErrClosed) {
		t.Errorf("SetMany: %v", err)
	}
	if err := got.RemoveMany(ctx, []string{"k"}); !errors.Is(err, hybrid.ErrClosed) {
		t.Errorf("RemoveMany: %v", err)
	}
	if src.calls.Load() != 0 {
		t.Error("a closed cache called its source")
	}
	if n := connectedClients(t, raw); n != 0 {
		t.Fatalf("a closed cache opened %d connections", n)
	}
}

// Concurrent Registers of one name with an isolated Redis (Bitwarden's
// keyed services are registered once; a Go service may race two init
// paths): one wins, the others get ErrDuplicateName before anything is
// built, a Register of the name after the winner is refused the same way,
// and Close leaves no connection behind.
func TestPeerProviderConcurrentRegisterIsolated(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	raw.Ping(ctx)
	p := newProvider(t, strata.Settings{Logger: quiet})
	iso := func(s *strata.CacheSettings) {
		s.Redis = &strata.RedisSettings{URL: srv.URL()}
		s.DisableBackplane = true
		s.Entry.BackgroundL2Operations = false
	}
	const n = 12
	var wg sync.WaitGroup
	var won, dup atomic.Int64
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, err := p.Register("users", iso)
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, strata.ErrDuplicateName):
				dup.Add(1)
			default:
				t.Errorf("Register: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if won.Load() != 1 || dup.Load() != n-1 {
		t.Fatalf("%d won, %d duplicates; want 1 and %d", won.Load(), dup.Load(), n-1)
	}
	c := p.MustGetCache("users")
	ppMany(t, c, []string{"k"}, (&ppSource{prefix: "v"}).fetch)
	if !exists(t, raw, "users:k") {
		t.Fatal("the winner wrote nothing to its Redis")
	}
	if _, err := p.Register("users", iso); !errors.Is(err, strata.ErrDuplicateName) {
		t.Fatalf("Register after the winner: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "every connection to close with the provider", func() bool { return connectedClients(t, raw) == 0 })
}
