package strata_test

// Scenarios ported from Bitwarden's caching SDK test suites, the model of
// Strata's provider (SPEC.md: "Bitwarden's ExtendedCache ... is the shape of
// the provider"):
//
//   - bitwarden/dotnet-extensions,
//     extensions/Bitwarden.Server.Sdk.Caching/tests/Bitwarden.Server.Sdk.Caching.Tests/
//     BitwardenCachingServiceCollectionExtensionsTests.cs (with RedisFixture.cs:
//     a real Redis in a container; here a redis-server from internal/redistest);
//   - bitwarden/server, test/Core.Test/Utilities/
//     ExtendedCacheServiceCollectionExtensionsTests.cs (AddExtendedCache).
//
// Each test names its source. Where Strata documents a different behaviour,
// the test asserts Strata's and cites the doc line.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/testlog"
	"github.com/strata-cache/strata/serializer"
)

// bwSyncL2 makes L2 writes block the caller, so that a test can look at
// Redis right after Set returns (production defaults write in the
// background).
func bwSyncL2(s *strata.CacheSettings) { s.Entry.BackgroundL2Operations = false }

// bwLogs returns a logger writing text records into a buffer the test reads.
func bwLogs() (*slog.Logger, *testlog.Buffer) {
	buf := &testlog.Buffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// bwRegister is Register that fails the test on an error.
func bwRegister(t *testing.T, p *strata.Provider, name string, configure ...func(*strata.CacheSettings)) *hybrid.Cache {
	t.Helper()
	c, err := p.Register(name, configure...)
	if err != nil {
		t.Fatalf("Register(%q): %v", name, err)
	}
	return c
}

// bwKeys returns the keys of the Redis at srv, sorted.
func bwKeys(t *testing.T, srv *redistest.Server) []string {
	t.Helper()
	rdb := redis.NewClient(srv.Options())
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// bwNumSub returns the number of subscribers of channel, asked through
// rdb (numSub opens a client per call, which would count as a connection).
func bwNumSub(t *testing.T, rdb *redis.Client, channel string) int64 {
	t.Helper()
	n, err := rdb.PubSubNumSub(context.Background(), channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[channel]
}

// bwChannel is the backplane channel of the cache with key prefix prefix.
func bwChannel(prefix string) string { return backplane.ChannelName("", prefix) }

// Source: BitwardenCachingServiceCollectionExtensionsTests.MakesSeparateFusionInstancesAvailableViaKeyedService,
// ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_MultipleDifferentCaches_AddsAll.
func TestBitwardenSeparateInstancesPerName(t *testing.T) {
	srv := redistest.Start(t)
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	one := bwRegister(t, p, "CacheOne")
	two := bwRegister(t, p, "CacheTwo")
	if one == two {
		t.Fatal("two names gave the same cache")
	}
	for name, want := range map[string]*hybrid.Cache{"CacheOne": one, "CacheTwo": two} {
		got, err := p.GetCache(name)
		if err != nil || got != want {
			t.Fatalf("GetCache(%q) = %p, %v; want the registered cache %p", name, got, err, want)
		}
		if p.MustGetCache(name) != want {
			t.Fatalf("MustGetCache(%q) is not the registered cache", name)
		}
		if got.Name() != name {
			t.Fatalf("Name() = %q, want %q", got.Name(), name)
		}
	}
	if names := p.Names(); !slices.Equal(names, []string{"CacheOne", "CacheTwo"}) {
		t.Fatalf("Names() = %v", names)
	}
}

// Source: BitwardenCachingServiceCollectionExtensionsTests.ValueRoundTrips.
// The cache waits for its backplane subscription: without the wait, a Set
// made before the confirmation is sometimes lost to the next GetOrSet
// (suspected bug, see /tmp/bitwarden-bugs/read_your_writes_before_subscribe_test.go).
func TestBitwardenValueRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	url := &strata.RedisSettings{URL: srv.URL()}
	c := bwRegister(t, newProvider(t, strata.Settings{Redis: url, Logger: quiet}), "MyFeature",
		func(s *strata.CacheSettings) { s.WaitForInitialBackplaneSubscribe = 10 * time.Second })
	if err := hybrid.Set(ctx, c, "Value", true); err != nil {
		t.Fatal(err)
	}
	v, err := hybrid.GetOrSet(ctx, c, "Value", func(context.Context, *hybrid.FactoryContext[bool]) (bool, error) {
		return false, nil
	})
	if err != nil || !v {
		t.Fatalf("GetOrSet after Set(true) = %v, %v; want true from the cache", v, err)
	}
	// The value round-trips through Redis too: a second process (empty
	// memory tier) reads it. Production defaults write in the background.
	c2 := bwRegister(t, newProvider(t, strata.Settings{Redis: url, Logger: quiet}), "MyFeature")
	redistest.Eventually(t, "process 2 to read true from Redis", func() bool {
		v, ok, err := hybrid.TryGet[bool](ctx, c2, "Value")
		return err == nil && ok && v
	})
}

// Source: ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_DefaultSettings_ConfiguresExpectedValues.
// The values, then their effect: the Redis TTL of an entry of a cache
// with nil Defaults is the 2h FailSafeMaxDuration (docs/l2.md: "max(Duration
// + jitter, FailSafeMaxDuration) with fail-safe"), and fail-safe serves.
func TestBitwardenProductionDefaults(t *testing.T) {
	e := strata.ProductionDefaults().Entry
	checks := []struct {
		field     string
		got, want any
	}{
		{"Duration", e.Duration, 30 * time.Minute},
		{"FailSafe", e.FailSafe, true},
		{"FailSafeMaxDuration", e.FailSafeMaxDuration, 2 * time.Hour},
		{"FailSafeThrottleDuration", e.FailSafeThrottleDuration, 30 * time.Second},
		{"EagerRefreshThreshold", e.EagerRefreshThreshold, 0.9},
		{"FactorySoftTimeout", e.FactorySoftTimeout, 100 * time.Millisecond},
		{"FactoryHardTimeout", e.FactoryHardTimeout, 1500 * time.Millisecond},
		{"L2SoftTimeout", e.L2SoftTimeout, time.Second},
		{"L2HardTimeout", e.L2HardTimeout, 2 * time.Second},
		{"BackgroundL2Operations", e.BackgroundL2Operations, true},
		{"JitterMaxDuration", e.JitterMaxDuration, 2 * time.Second},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("ProductionDefaults().Entry.%s = %v, want %v", c.field, c.got, c.want)
		}
	}

	srv := redistest.Start(t)
	ctx := context.Background()
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	c := bwRegister(t, p, "TestCache", bwSyncL2)
	if err := hybrid.Set(ctx, c, "k", "v"); err != nil {
		t.Fatal(err)
	}
	ttl, err := srv.Client(t).PTTL(ctx, "TestCache:k").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 2*time.Hour-time.Minute || ttl > 2*time.Hour+time.Second {
		t.Fatalf("Redis TTL of a production-default entry = %v, want about FailSafeMaxDuration (2h)", ttl)
	}
	if err := c.Expire(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	v, err := hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "", errDB
	})
	if err != nil || v != "v" {
		t.Fatalf("fail-safe of the production defaults: %q, %v; want the stale v", v, err)
	}
}

// Source: ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_CustomSettings_OverridesDefaults.
// Overrides, including an explicit false over a true default, reach the
// cache; a sibling cache keeps the production defaults.
func TestBitwardenCustomSettingsOverrideDefaults(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	custom := bwRegister(t, p, "Custom", func(s *strata.CacheSettings) {
		s.Entry.Duration = 12 * time.Minute
		s.Entry.FailSafe = false
		s.Entry.FailSafeMaxDuration = 90 * time.Minute
		s.Entry.FailSafeThrottleDuration = time.Minute
		s.Entry.EagerRefreshThreshold = 0.75
		s.Entry.FactorySoftTimeout = 20 * time.Millisecond
		s.Entry.FactoryHardTimeout = 3 * time.Second
		s.Entry.L2SoftTimeout = 500 * time.Millisecond
		s.Entry.L2HardTimeout = 1500 * time.Millisecond
		s.Entry.JitterMaxDuration = 5 * time.Second
		s.Entry.BackgroundL2Operations = false
	})
	plain := bwRegister(t, p, "Plain")

	// BackgroundL2Operations=false: the write is in Redis when Set returns.
	if err := hybrid.Set(ctx, custom, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if !exists(t, raw, "Custom:k") {
		t.Fatal("BackgroundL2Operations=false: Custom:k not in Redis when Set returned")
	}
	// FailSafe=false: the TTL is Duration + jitter, not FailSafeMaxDuration.
	ttl, err := raw.PTTL(ctx, "Custom:k").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 11*time.Minute || ttl > 12*time.Minute+5*time.Second {
		t.Fatalf("Redis TTL = %v, want Duration (12m) + jitter (< 5s) with fail-safe off", ttl)
	}
	// FailSafe=false: no stale value served.
	custom.Expire(ctx, "k")
	if _, err := hybrid.GetOrSet(ctx, custom, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "", errDB
	}); !errors.Is(err, errDB) {
		t.Fatalf("FailSafe=false override: err = %v, want the factory's error", err)
	}

	// The sibling keeps production defaults: fail-safe serves the stale value.
	hybrid.Set(ctx, plain, "k", "v", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.BackgroundL2Operations = false }))
	plain.Expire(ctx, "k")
	if v, err := hybrid.GetOrSet(ctx, plain, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "", errDB
	}); err != nil || v != "v" {
		t.Fatalf("sibling cache with production defaults: %q, %v; want the stale v", v, err)
	}
}

// Source: BitwardenCachingServiceCollectionExtensionsTests.AddBitwardenCaching_AppliesDefaults
// (first version): provider-wide entry defaults (SkipDistributedCacheRead
// true, SkipDistributedCacheWrite false); "One" keeps them, "Two" flips
// both and changes Duration, "Three" has no distributed cache.
func TestBitwardenAppliesDefaultsAndPerCacheOverrides(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	defaults := strata.CacheSettings{Entry: hybrid.EntryOptions{SkipL2Read: true, SkipL2Write: false}}
	settings := strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Defaults: &defaults, Logger: quiet}
	two := func(s *strata.CacheSettings) {
		s.Entry.SkipL2Read = false
		s.Entry.SkipL2Write = true
		s.Entry.Duration = time.Minute
	}
	// Strata has no "Redis: null" per cache (nil means the shared Redis,
	// docs/settings.md "Redis | nil: the provider's shared Redis"); a cache
	// without a distributed tier is DisableL2.
	three := func(s *strata.CacheSettings) { s.DisableL2 = true }

	p1 := newProvider(t, settings)
	one1 := bwRegister(t, p1, "One")
	two1 := bwRegister(t, p1, "Two", two)
	three1 := bwRegister(t, p1, "Three", three)
	for _, c := range []*hybrid.Cache{one1, two1, three1} {
		if err := hybrid.Set(ctx, c, "k", c.Name()); err != nil {
			t.Fatal(err)
		}
	}
	// Library defaults (non-nil Defaults) write synchronously.
	if keys := bwKeys(t, srv); !slices.Equal(keys, []string{"One:k"}) {
		t.Fatalf("keys in Redis = %v, want [One:k] (Two skips L2 writes, Three has no L2)", keys)
	}
	// Two reads L2 (its override); put something there for it.
	if err := hybrid.Set(ctx, two1, "shared", "via L2", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Write = false })); err != nil {
		t.Fatal(err)
	}

	p2 := newProvider(t, settings)
	one2 := bwRegister(t, p2, "One")
	two2 := bwRegister(t, p2, "Two", two)
	if v, ok := mustGet[string](t, one2, "k"); ok {
		t.Fatalf("One (SkipL2Read from the defaults) read %q from Redis", v)
	}
	if v, ok := mustGet[string](t, one2, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = false })); !ok || v != "One" {
		t.Fatalf("One with SkipL2Read=false for the call: %q, %v; want One", v, ok)
	}
	if v, ok := mustGet[string](t, two2, "shared"); !ok || v != "via L2" {
		t.Fatalf("Two (SkipL2Read=false override) = %q, %v; want the value from Redis", v, ok)
	}
}

// Source: BitwardenCachingServiceCollectionExtensionsTests.OneDistributedCache_Isolated.
// Two caches on one shared Redis, one key: two Redis keys, each cache
// reads its own value (SPEC.md §3 "Isolation").
func TestBitwardenSharedRedisKeysArePrefixedPerCache(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	url := &strata.RedisSettings{URL: srv.URL()}
	p1 := newProvider(t, strata.Settings{Redis: url, Logger: quiet})
	one, two := bwRegister(t, p1, "One", bwSyncL2), bwRegister(t, p1, "Two", bwSyncL2)
	hybrid.Set(ctx, one, "Key", true)
	hybrid.Set(ctx, two, "Key", false)
	if keys := bwKeys(t, srv); !slices.Equal(keys, []string{"One:Key", "Two:Key"}) {
		t.Fatalf("keys in Redis = %v, want [One:Key Two:Key]", keys)
	}
	// A fresh process reads each from Redis.
	p2 := newProvider(t, strata.Settings{Redis: url, Logger: quiet})
	one2, two2 := bwRegister(t, p2, "One"), bwRegister(t, p2, "Two")
	if v, ok := mustGet[bool](t, one2, "Key"); !ok || !v {
		t.Fatalf("One:Key = %v, %v; want true", v, ok)
	}
	if v, ok := mustGet[bool](t, two2, "Key"); !ok || v {
		t.Fatalf("Two:Key = %v, %v; want false", v, ok)
	}
}

// Source: BitwardenCachingServiceCollectionExtensionsTests.CanConfigureCacheKeyPrefix.
// A KeyPrefix of the user's is the Redis prefix, and names the backplane
// channel (docs/guide.md: "strata:{<KeyPrefix>}:bp").
func TestBitwardenCustomKeyPrefix(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	c := bwRegister(t, p, "One", bwSyncL2, func(s *strata.CacheSettings) {
		s.KeyPrefix = "custom/"
		s.WaitForInitialBackplaneSubscribe = 10 * time.Second
	})
	if err := hybrid.Set(ctx, c, "MyKey", ""); err != nil {
		t.Fatal(err)
	}
	if keys := bwKeys(t, srv); !slices.Equal(keys, []string{"custom/MyKey"}) {
		t.Fatalf("keys in Redis = %v, want [custom/MyKey]", keys)
	}
	if n := numSub(t, srv, bwChannel("custom/")); n != 1 {
		t.Fatalf("subscribers of %s = %d, want 1", bwChannel("custom/"), n)
	}
	if n := numSub(t, srv, bwChannel("One:")); n != 0 {
		t.Fatalf("subscribers of the default channel %s = %d, want 0", bwChannel("One:"), n)
	}
}

// Source: ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_NoRedis_DisablesDistributedCacheAndBackplane,
// AddExtendedCache_NoDistributedCacheRegistered_WorksWithMemoryOnly,
// AddExtendedCache_NoSharedRedisButNoConnectionString_DisablesDistributedCacheAndBackplane.
func TestBitwardenNoRedisIsMemoryOnly(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t, strata.Settings{Logger: quiet})
	c := bwRegister(t, p, "TestCache")
	if err := hybrid.Set(ctx, c, "key", "value"); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet[string](t, c, "key"); !ok || v != "value" {
		t.Fatalf("TryGet = %q, %v; want value", v, ok)
	}
	var k counter
	if v, err := hybrid.GetOrSet(ctx, c, "loaded", k.factory("x", nil)); err != nil || v != "x" {
		t.Fatalf("GetOrSet = %q, %v", v, err)
	}
	if v, err := hybrid.GetOrSet(ctx, c, "loaded", k.factory("y", nil)); err != nil || v != "x" || k.calls.Load() != 1 {
		t.Fatalf("second GetOrSet = %q, %v after %d factory calls; want x from memory", v, err, k.calls.Load())
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping of a memory-only cache: %v", err)
	}
	if c.BackplaneSubscribed() {
		t.Fatal("a memory-only cache reports a backplane subscription")
	}
	st := c.Stats()
	if st.L2Hits+st.L2Misses+st.L2Errors != 0 || st.BackplanePublished+st.BackplaneErrors != 0 {
		t.Fatalf("a memory-only cache used a distributed tier or backplane: %+v", st)
	}
}

// Source: ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_DisabledDistributedCache_DoesNotRegisterBackplaneOrRedis
// (EnableDistributedCache = false, with Redis configured).
// Difference, documented: in Strata DisableL2 alone keeps the backplane
// (docs/backplane.md: "`DisableL2` does not turn the backplane off"), so
// the port sets DisableL2 and DisableBackplane, and checks the DisableL2-only
// cache does subscribe.
func TestBitwardenDisabledDistributedCache(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	off := bwRegister(t, p, "Off", bwSyncL2, func(s *strata.CacheSettings) { s.DisableL2, s.DisableBackplane = true, true })
	l1bp := bwRegister(t, p, "L1bp", bwSyncL2, func(s *strata.CacheSettings) {
		s.DisableL2 = true
		s.WaitForInitialBackplaneSubscribe = 10 * time.Second
	})
	for _, c := range []*hybrid.Cache{off, l1bp} {
		if err := hybrid.Set(ctx, c, "k", "v"); err != nil {
			t.Fatal(err)
		}
		if err := c.Remove(ctx, "k2"); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := srv.Client(t).DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE = %d, %v; want 0 with DisableL2", n, err)
	}
	if off.BackplaneSubscribed() || numSub(t, srv, bwChannel("Off:")) != 0 {
		t.Fatal("DisableL2+DisableBackplane: the cache subscribed to a backplane")
	}
	if off.Stats().BackplanePublished != 0 {
		t.Fatalf("DisableBackplane: %d messages published", off.Stats().BackplanePublished)
	}
	if !l1bp.BackplaneSubscribed() || numSub(t, srv, bwChannel("L1bp:")) != 1 {
		t.Fatal("DisableL2 alone: want the backplane kept (docs/backplane.md)")
	}
}

// Source: ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_WithRedis_EnablesDistributedCacheAndBackplane,
// AddExtendedCache_SharedRedisWithMockedMultiplexer_ReusesExistingMultiplexer.
func TestBitwardenWithRedisEnablesL2AndBackplane(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	c := bwRegister(t, p, "TestCache", bwSyncL2)
	redistest.Eventually(t, "the backplane subscription", c.BackplaneSubscribed)
	if n := numSub(t, srv, bwChannel("TestCache:")); n != 1 {
		t.Fatalf("subscribers of the cache's channel = %d, want 1", n)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	hybrid.Set(ctx, c, "k", "v")
	if !exists(t, srv.Client(t), "TestCache:k") {
		t.Fatal("the cache did not write to the shared Redis")
	}
	if st := c.Stats(); st.BackplanePublished == 0 {
		t.Fatalf("Set published no backplane message: %+v", st)
	}
}

// Source: ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_KeyedRedis_UsesSeparateMultiplexers,
// AddExtendedCache_KeyedRedisWithConnectionString_CreatesIsolatedInfrastructure,
// AddExtendedCache_MultipleKeyedCachesWithDifferentTypes_EachHasCorrectConfig.
// Isolated caches: own client, own L2 and own backplane on their server,
// nothing on the shared one; a cache beside them on the shared Redis
// without a backplane.
func TestBitwardenIsolatedRedisPerCache(t *testing.T) {
	shared, srvA, srvB := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	ctx := context.Background()
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: shared.URL()}, Logger: quiet})
	iso := func(srv *redistest.Server) func(*strata.CacheSettings) {
		return func(s *strata.CacheSettings) {
			s.Redis = &strata.RedisSettings{URL: srv.URL()}
			s.WaitForInitialBackplaneSubscribe = 10 * time.Second
		}
	}
	a := bwRegister(t, p, "CacheA", bwSyncL2, iso(srvA))
	b := bwRegister(t, p, "CacheB", bwSyncL2, iso(srvB))
	plain := bwRegister(t, p, "Plain", bwSyncL2, noBackplane)
	for _, c := range []*hybrid.Cache{a, b, plain} {
		if err := hybrid.Set(ctx, c, "k", c.Name()); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		srv     *redistest.Server
		keys    []string
		channel string
	}{
		{srvA, []string{"CacheA:k"}, bwChannel("CacheA:")},
		{srvB, []string{"CacheB:k"}, bwChannel("CacheB:")},
		{shared, []string{"Plain:k"}, ""},
	} {
		if keys := bwKeys(t, tc.srv); !slices.Equal(keys, tc.keys) {
			t.Errorf("keys on %s = %v, want %v", tc.srv.Addr(), keys, tc.keys)
		}
		if tc.channel != "" && numSub(t, tc.srv, tc.channel) != 1 {
			t.Errorf("%s: no subscriber of %s on its own server", tc.keys[0], tc.channel)
		}
	}
	for _, ch := range []string{bwChannel("CacheA:"), bwChannel("CacheB:"), bwChannel("Plain:")} {
		if n := numSub(t, shared, ch); n != 0 {
			t.Errorf("shared Redis: %d subscribers of %s, want 0", n, ch)
		}
	}
	if !a.BackplaneSubscribed() || !b.BackplaneSubscribed() || plain.BackplaneSubscribed() {
		t.Errorf("BackplaneSubscribed: A %v, B %v, Plain %v; want true, true, false",
			a.BackplaneSubscribed(), b.BackplaneSubscribed(), plain.BackplaneSubscribed())
	}
	// The isolated client of A is not shared with B: each server sees
	// connections of its own.
	if connectedClients(t, srvA.Client(t)) == 0 || connectedClients(t, srvB.Client(t)) == 0 {
		t.Error("an isolated cache holds no connection to its server")
	}
}

// Source: BitwardenCachingServiceCollectionExtensionsTests.MultipleInstances_Works.
// Two processes on one Redis: a value set on one is read on the other;
// a later change reaches the other through the backplane, whose received
// message is applied to memory before the event fires (hybrid/events.go:
// "another instance's message was applied here").
func TestBitwardenMultipleInstancesBackplane(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	url := &strata.RedisSettings{URL: srv.URL()}
	got := make(chan struct{}, 16)
	events := &hybrid.Events{BackplaneMessage: func(e hybrid.BackplaneMessageEvent) {
		if e.Direction == hybrid.DirectionReceived && e.Kind == backplane.KindSet && e.Key == "Key" && e.Cache == "Test" {
			got <- struct{}{}
		}
	}}
	wait := func(s *strata.CacheSettings) { s.WaitForInitialBackplaneSubscribe = 10 * time.Second }
	one := bwRegister(t, newProvider(t, strata.Settings{Redis: url, Logger: quiet}), "Test", wait, bwSyncL2)
	two := bwRegister(t, newProvider(t, strata.Settings{Redis: url, Logger: quiet, Events: events}), "Test", wait)

	if err := hybrid.Set(ctx, one, "Key", true); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet[bool](t, two, "Key"); !ok || !v {
		t.Fatalf("instance two after Set(true) on one: %v, %v", v, ok)
	}
	// The first Set's message, before the second Set: taken for the
	// second's, a late one let the check below run before the second was
	// applied (failed CI once).
	select {
	case <-got:
	case <-time.After(redistest.EventuallyTimeout):
		t.Fatal("instance two received no backplane message for the first Set")
	}
	if err := hybrid.Set(ctx, one, "Key", false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(redistest.EventuallyTimeout):
		t.Fatal("instance two received no backplane message for the Set")
	}
	if v, ok := mustGet[bool](t, two, "Key", l1Only); ok && v {
		t.Fatal("instance two serves the old value from memory after the message was applied")
	}
	if v, ok := mustGet[bool](t, two, "Key"); !ok || v {
		t.Fatalf("instance two after Set(false) on one: %v, %v; want false", v, ok)
	}
}

// Source: BitwardenCachingServiceCollectionExtensionsTests.EmptyStrings_Throws,
// InvalidKey_Throws, NullKey_Throws, AnyKey_Throws;
// ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_EmptyCacheName_DoesNothing.
// Difference, documented: Bitwarden ignores an empty name at registration
// (AddExtendedCache does nothing); Strata's Register refuses it
// (docs/settings.md "Names": "ErrInvalidSettings for a bad name").
func TestBitwardenInvalidNames(t *testing.T) {
	p := newProvider(t, strata.Settings{Logger: quiet})
	for _, name := range []string{"", " ", "\t", " x", "x ", "a b", "a\nb", "caché", "a{b}", "a/b", "*", strings.Repeat("n", strata.MaxNameLength+1)} {
		c, err := p.Register(name)
		if !errors.Is(err, strata.ErrInvalidSettings) || c != nil {
			t.Errorf("Register(%q) = %v, %v; want nil, ErrInvalidSettings", name, c, err)
		}
		if _, err := p.GetCache(name); !errors.Is(err, strata.ErrCacheNotFound) {
			t.Errorf("GetCache(%q) after a refused Register: err = %v, want ErrCacheNotFound", name, err)
		}
	}
	if names := p.Names(); len(names) != 0 {
		t.Fatalf("Names() = %q after refused registrations, want none", names)
	}
	// The longest accepted name, and every allowed character.
	for _, name := range []string{strings.Repeat("n", strata.MaxNameLength), "a.b_c-d:E9"} {
		if _, err := p.Register(name); err != nil {
			t.Errorf("Register(%q): %v", name, err)
		}
	}
}

// Source: ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_MultipleCalls_OnlyAddsOneCacheService,
// BitwardenCachingServiceCollectionExtensionsTests.CalledMutlipleTimes_NoAdditionalServices.
// Difference, documented: Bitwarden's registration is idempotent; Strata's
// second Register of a name returns ErrDuplicateName (SPEC.md §2, docs/
// settings.md "Names"). The first cache stays as it was: same instance,
// same settings, same content.
func TestBitwardenRegisterTwice(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	first := bwRegister(t, p, "TestCache", bwSyncL2)
	hybrid.Set(ctx, first, "k", "v")
	for range 3 {
		c, err := p.Register("TestCache", func(s *strata.CacheSettings) {
			s.Entry.FailSafe = false
			s.KeyPrefix = "other:"
		})
		if !errors.Is(err, strata.ErrDuplicateName) || c != nil {
			t.Fatalf("second Register = %v, %v; want nil, ErrDuplicateName", c, err)
		}
		if !strings.Contains(err.Error(), "TestCache") {
			t.Fatalf("the error does not name the cache: %v", err)
		}
	}
	if got := p.MustGetCache("TestCache"); got != first {
		t.Fatal("a refused Register replaced the cache")
	}
	if names := p.Names(); !slices.Equal(names, []string{"TestCache"}) {
		t.Fatalf("Names() = %v", names)
	}
	if v, ok := mustGet[string](t, first, "k"); !ok || v != "v" {
		t.Fatalf("the first cache lost its entry: %q, %v", v, ok)
	}
	// Its settings are its own: fail-safe still on, keys still "TestCache:".
	first.Expire(ctx, "k")
	if v, err := hybrid.GetOrSet(ctx, first, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "", errDB
	}); err != nil || v != "v" {
		t.Fatalf("fail-safe of the first cache after a refused re-Register: %q, %v", v, err)
	}
	if keys := bwKeys(t, srv); !slices.Equal(keys, []string{"TestCache:k"}) {
		t.Fatalf("keys in Redis = %v, want [TestCache:k]", keys)
	}
}

// Concurrent registrations of one name: exactly one wins (a user's
// service wiring racing at start-up).
func TestBitwardenConcurrentRegisterSameName(t *testing.T) {
	p := newProvider(t, strata.Settings{Logger: quiet})
	const n = 16
	var wg sync.WaitGroup
	var won, dup atomic.Int64
	var mu sync.Mutex
	var winner *hybrid.Cache
	for range n {
		wg.Go(func() {
			c, err := p.Register("race")
			switch {
			case err == nil:
				won.Add(1)
				mu.Lock()
				winner = c
				mu.Unlock()
			case errors.Is(err, strata.ErrDuplicateName):
				dup.Add(1)
			default:
				t.Errorf("Register: %v", err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 || dup.Load() != n-1 {
		t.Fatalf("%d registrations won, %d got ErrDuplicateName; want 1 and %d", won.Load(), dup.Load(), n-1)
	}
	if p.MustGetCache("race") != winner {
		t.Fatal("GetCache does not return the winning cache")
	}
}

// Source: BitwardenCachingServiceCollectionExtensionsTests.NullKey_Throws
// (GetRequiredKeyedService of a key nobody registered).
func TestBitwardenGetUnknownCache(t *testing.T) {
	p := newProvider(t, strata.Settings{Logger: quiet})
	bwRegister(t, p, "known")
	for _, name := range []string{"unknown", "", "Known", "known "} {
		c, err := p.GetCache(name)
		if !errors.Is(err, strata.ErrCacheNotFound) || c != nil {
			t.Errorf("GetCache(%q) = %v, %v; want nil, ErrCacheNotFound", name, c, err)
		}
	}
	func() {
		defer func() {
			r := recover()
			err, ok := r.(error)
			if !ok || !errors.Is(err, strata.ErrCacheNotFound) || !strings.Contains(err.Error(), "unknown") {
				t.Errorf("MustGetCache(unknown) panicked with %v; want an error wrapping ErrCacheNotFound naming the cache", r)
			}
		}()
		p.MustGetCache("unknown")
	}()
}

// Source: ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_InvalidRedisConnection_LogsAndThrows,
// BitwardenCachingServiceCollectionExtensionsTests.CustomLogCategories_Work.
// Difference, documented: Bitwarden throws when the cache first reaches an
// unreachable Redis; Strata's Register never waits for Redis and the cache
// answers from memory and the factory (docs/redis.md: "NewProvider and
// Register create clients without contacting Redis"; docs/errors.md:
// "Errors of Redis itself ... are never returned by the cache operations:
// ... Cache.Ping returns them"). The failures are logged under the cache's
// name, and a URL's password appears in no log line and no error.
func TestBitwardenUnreachableRedisLogsWithCacheName(t *testing.T) {
	srv := redistest.Start(t)
	addr := srv.Addr()
	srv.Kill(t) // nothing listens there now
	ctx := context.Background()
	logger, logs := bwLogs()
	p := newProvider(t, strata.Settings{Logger: logger, RedactKeys: true})
	c, err := p.Register("CustomName", func(s *strata.CacheSettings) {
		s.Redis = &strata.RedisSettings{URL: "redis://app:hunter2secret@" + addr}
		s.L2CircuitBreakerDuration = time.Second
	})
	if err != nil {
		t.Fatalf("Register with an unreachable isolated Redis: %v (docs: Register does not contact Redis)", err)
	}
	v, err := hybrid.GetOrSet(ctx, c, "user-ssn-123456789", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "from factory", nil
	})
	if err != nil || v != "from factory" {
		t.Fatalf("GetOrSet with Redis down = %q, %v; want the factory's value, no error", v, err)
	}
	if err := hybrid.Set(ctx, c, "k", "v"); err != nil {
		t.Fatalf("Set with Redis down: %v", err)
	}
	perr := c.Ping(ctx)
	if !errors.Is(perr, hybrid.ErrL2Unavailable) {
		t.Fatalf("Ping with Redis down: err = %v, want ErrL2Unavailable", perr)
	}
	if strings.Contains(perr.Error(), "hunter2secret") {
		t.Fatalf("Ping's error leaks the password: %v", perr)
	}
	redistest.Eventually(t, "a log line of the cache about its distributed tier", func() bool {
		return strings.Contains(logs.String(), "cache=CustomName")
	})
	if err := p.Close(); err != nil && strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("Close's error leaks the password: %v", err)
	}
	if strings.Contains(logs.String(), "hunter2secret") {
		t.Fatalf("the log leaks the password:\n%s", logs)
	}
	if strings.Contains(logs.String(), "user-ssn-123456789") {
		t.Fatalf("RedactKeys: the log shows a key:\n%s", logs)
	}
}

// Bad Redis URLs, at NewProvider (shared) and at Register (isolated): a
// clear error naming the field, the password in neither the error nor the
// log, and nothing registered (docs/redis.md: "A password in an invalid
// URL is redacted from the error, whatever the parser rejects").
func TestBitwardenInvalidRedisURL(t *testing.T) {
	const secret = "Pa55w0rd-xyz"
	bad := []string{
		"redis://app:" + secret + "@localhost:notaport",
		"redis://:" + secret + "@host:6379/notadb",
		"redis://app:" + secret + "@host:6379/0?dial_timeout=soon",
		"ftp://app:" + secret + "@host:6379",
		"app:" + secret + "@host:6379",
		"redis://app:" + secret + "@[::1:6379",
		"localhost:6379", // Bitwarden's StackExchange form, not a URL
	}
	for _, raw := range bad {
		logger, logs := bwLogs()
		_, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: raw}, Logger: logger})
		if !errors.Is(err, strata.ErrInvalidSettings) || !strings.Contains(err.Error(), "Redis.URL") {
			t.Errorf("NewProvider(%q): err = %v, want ErrInvalidSettings naming Redis.URL", raw, err)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("NewProvider(%q): the error leaks the password: %v", raw, err)
		}

		p := newProvider(t, strata.Settings{Logger: logger})
		c, err := p.Register("iso", func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{URL: raw} })
		if !errors.Is(err, strata.ErrInvalidSettings) || c != nil {
			t.Errorf("Register with URL %q = %v, %v; want nil, ErrInvalidSettings", raw, c, err)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("Register(%q): the error leaks the password: %v", raw, err)
		}
		if len(p.Names()) != 0 {
			t.Errorf("Register(%q) failed but Names() = %v", raw, p.Names())
		}
		// The name is free again once the settings are fixed.
		if _, err := p.Register("iso"); err != nil {
			t.Errorf("Register after a refused one: %v", err)
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("%q: the log leaks the password:\n%s", raw, logs)
		}
	}
}

// Source: ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_WithExistingRedis_UsesExistingDistributedCacheAndBackplane,
// AddExtendedCache_SharedRedisWithMockedMultiplexer_ReusesExistingMultiplexer,
// AddExtendedCache_WithExistingKeyedDistributedCache_ReusesIt.
// A client the user passes is used for L2 and the backplane, shared or
// isolated, and the provider never closes it (SPEC.md §2 "a client the
// caller owns (never closed by us)").
func TestBitwardenCallerClientReusedNotClosed(t *testing.T) {
	srv, isoSrv := redistest.Start(t), redistest.Start(t)
	ctx := context.Background()
	mine, mineIso := srv.FastClient(t, ""), isoSrv.FastClient(t, "")
	p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{Client: mine}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	wait := func(s *strata.CacheSettings) { s.WaitForInitialBackplaneSubscribe = 10 * time.Second }
	shared := bwRegister(t, p, "Shared", bwSyncL2, wait)
	iso := bwRegister(t, p, "Iso", bwSyncL2, wait, func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{Client: mineIso} })
	hybrid.Set(ctx, shared, "k", "v")
	hybrid.Set(ctx, iso, "k", "v")
	if !exists(t, mine, "Shared:k") || !exists(t, mineIso, "Iso:k") {
		t.Fatal("writes did not go through the caller's clients")
	}
	if numSub(t, srv, bwChannel("Shared:")) != 1 || numSub(t, isoSrv, bwChannel("Iso:")) != 1 {
		t.Fatal("the backplanes do not run on the caller's clients")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mine.Ping(ctx).Err(); err != nil {
		t.Fatalf("the caller's shared client after Provider.Close: %v", err)
	}
	if err := mineIso.Ping(ctx).Err(); err != nil {
		t.Fatalf("the caller's isolated client after Provider.Close: %v", err)
	}
	// The caches' subscriptions on the caller's clients are gone.
	redistest.Eventually(t, "the shared cache's subscription to end", func() bool { return numSub(t, srv, bwChannel("Shared:")) == 0 })
	redistest.Eventually(t, "the isolated cache's subscription to end", func() bool { return numSub(t, isoSrv, bwChannel("Iso:")) == 0 })
}

// Disposal (xUnit's IAsyncLifetime/IDisposable of the fixtures, `using var
// provider`): Close closes every cache, ends their subscriptions and closes
// the clients the provider created, shared and isolated (SPEC.md §2
// "closes the caches and the clients the provider created"); it is
// idempotent; Register after it is ErrClosed; GetCache still returns the
// closed caches (docs/errors.md).
func TestBitwardenCloseDisposesEverything(t *testing.T) {
	srv, isoSrv := redistest.Start(t), redistest.Start(t)
	ctx := context.Background()
	raw, rawIso := srv.Client(t), isoSrv.Client(t)
	if err := raw.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rawIso.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	wait := func(s *strata.CacheSettings) { s.WaitForInitialBackplaneSubscribe = 10 * time.Second }
	shared := bwRegister(t, p, "Shared", bwSyncL2, wait)
	iso := bwRegister(t, p, "Iso", bwSyncL2, wait, func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{URL: isoSrv.URL()} })
	mem := bwRegister(t, p, "Mem", func(s *strata.CacheSettings) { s.DisableL2, s.DisableBackplane = true, true })
	for _, c := range []*hybrid.Cache{shared, iso, mem} {
		if err := hybrid.Set(ctx, c, "k", "v"); err != nil {
			t.Fatal(err)
		}
	}
	if bwNumSub(t, raw, bwChannel("Shared:")) != 1 || bwNumSub(t, rawIso, bwChannel("Iso:")) != 1 {
		t.Fatal("subscriptions missing before Close")
	}

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, c := range []*hybrid.Cache{shared, iso, mem} {
		if err := hybrid.Set(ctx, c, "k", "v"); !errors.Is(err, hybrid.ErrClosed) {
			t.Errorf("Set on %q after Close: err = %v, want hybrid.ErrClosed", c.Name(), err)
		}
		if _, _, err := hybrid.TryGet[string](ctx, c, "k"); !errors.Is(err, hybrid.ErrClosed) {
			t.Errorf("TryGet on %q after Close: err = %v, want hybrid.ErrClosed", c.Name(), err)
		}
		if got, err := p.GetCache(c.Name()); err != nil || got != c {
			t.Errorf("GetCache(%q) after Close = %p, %v; want the closed cache (docs/errors.md)", c.Name(), got, err)
		}
	}
	if c, err := p.Register("Late"); !errors.Is(err, strata.ErrClosed) || c != nil {
		t.Fatalf("Register after Close = %v, %v; want nil, strata.ErrClosed", c, err)
	}
	if c, err := p.Register("Late", func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{URL: isoSrv.URL()} }); !errors.Is(err, strata.ErrClosed) || c != nil {
		t.Fatalf("isolated Register after Close = %v, %v; want nil, strata.ErrClosed", c, err)
	}
	if slices.Contains(p.Names(), "Late") {
		t.Fatal("a Register after Close shows in Names()")
	}
	redistest.Eventually(t, "the subscriptions to end", func() bool {
		return bwNumSub(t, raw, bwChannel("Shared:")) == 0 && bwNumSub(t, rawIso, bwChannel("Iso:")) == 0
	})
	redistest.Eventually(t, "the provider's clients to close their connections", func() bool {
		return connectedClients(t, raw) == 0 && connectedClients(t, rawIso) == 0
	})
}

// Register racing Close: each Register either returns a cache that Close
// closed, or ErrClosed; nothing leaks (docs/settings.md: "A cache whose
// Register was still running when Close was called is closed, and Register
// returns ErrClosed"; goleak in TestMain checks the goroutines, connection
// counts check the clients).
func TestBitwardenRegisterRacingClose(t *testing.T) {
	srv, isoSrv := redistest.Start(t), redistest.Start(t)
	ctx := context.Background()
	raw, rawIso := srv.Client(t), isoSrv.Client(t)
	raw.Ping(ctx)
	rawIso.Ping(ctx)
	p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var caches sync.Map
	start := make(chan struct{})
	for i := range 12 {
		wg.Go(func() {
			<-start
			var cfg []func(*strata.CacheSettings)
			if i%2 == 1 {
				cfg = append(cfg, func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{URL: isoSrv.URL()} })
			}
			c, err := p.Register(fmt.Sprint("c", i), cfg...)
			switch {
			case err == nil:
				caches.Store(i, c)
			case !errors.Is(err, strata.ErrClosed):
				t.Errorf("Register racing Close: %v", err)
			}
		})
	}
	close(start)
	p.Close()
	wg.Wait()
	caches.Range(func(_, v any) bool {
		c := v.(*hybrid.Cache)
		if err := hybrid.Set(ctx, c, "k", "v"); !errors.Is(err, hybrid.ErrClosed) {
			t.Errorf("cache %q returned by a Register racing Close is open: Set err = %v", c.Name(), err)
		}
		return true
	})
	redistest.Eventually(t, "every client the provider created to close", func() bool {
		return connectedClients(t, raw) == 0 && connectedClients(t, rawIso) == 0
	})
}

// Source: ExtendedCacheServiceCollectionExtensionsTests.AddExtendedCache_MultipleKeyedCachesWithDifferentTypes_EachHasCorrectConfig,
// AddExtendedCache_KeyedNonRedisCache_UsesKeyedDistributedCacheWithoutBackplane.
// A provider without shared Redis: one cache on its own Redis (L2 and
// backplane), the others memory-only (docs/settings.md: "nil: memory-only
// caches (a cache may still have its own `Redis`)").
func TestBitwardenMemoryOnlyProviderWithIsolatedCache(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	p := newProvider(t, strata.Settings{Logger: quiet})
	iso := bwRegister(t, p, "Cache1", bwSyncL2, func(s *strata.CacheSettings) {
		s.Redis = &strata.RedisSettings{URL: srv.URL()}
		s.WaitForInitialBackplaneSubscribe = 10 * time.Second
	})
	l2only := bwRegister(t, p, "Cache2", bwSyncL2, noBackplane, func(s *strata.CacheSettings) {
		s.Redis = &strata.RedisSettings{URL: srv.URL()}
	})
	mem := bwRegister(t, p, "Cache3", bwSyncL2)
	for _, c := range []*hybrid.Cache{iso, l2only, mem} {
		if err := hybrid.Set(ctx, c, "k", c.Name()); err != nil {
			t.Fatal(err)
		}
	}
	if keys := bwKeys(t, srv); !slices.Equal(keys, []string{"Cache1:k", "Cache2:k"}) {
		t.Fatalf("keys = %v, want [Cache1:k Cache2:k]", keys)
	}
	if !iso.BackplaneSubscribed() || l2only.BackplaneSubscribed() || mem.BackplaneSubscribed() {
		t.Fatalf("BackplaneSubscribed: %v %v %v; want true false false",
			iso.BackplaneSubscribed(), l2only.BackplaneSubscribed(), mem.BackplaneSubscribed())
	}
	if numSub(t, srv, bwChannel("Cache1:")) != 1 || numSub(t, srv, bwChannel("Cache2:")) != 0 {
		t.Fatal("backplane subscriptions do not match the settings")
	}
}

// jsonCounter is a serializer.JSON that counts its Marshal calls: the
// port of the NSubstitute serializer that Bitwarden's test checks.
type jsonCounter struct {
	serializer.JSON
	marshals atomic.Int64
}

func (j *jsonCounter) Marshal(v any) ([]byte, error) {
	j.marshals.Add(1)
	return j.JSON.Marshal(v)
}

// Source: BitwardenCachingServiceCollectionExtensionsTests.CustomSerializer_IsUsed,
// NoCustomSerializer_ValueRoundTripsAsJson. Strata's default is msgpack
// (SPEC.md §3 "msgpack by default; JSON available"), so the JSON half sets
// the JSON serializer and reads the value inside the envelope as JSON.
func TestBitwardenCustomSerializerIsUsed(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	ser := &jsonCounter{}
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	c := bwRegister(t, p, "Test", bwSyncL2, func(s *strata.CacheSettings) { s.Serializer = ser })
	type msg struct{ Message string }
	if err := hybrid.Set(ctx, c, "Key", msg{"Hello!"}); err != nil {
		t.Fatal(err)
	}
	if ser.marshals.Load() == 0 {
		t.Fatal("the cache's serializer was not called")
	}
	b, err := srv.Client(t).Get(ctx, "Test:Key").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	env, err := envelope.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(env.Value, &got); err != nil || got["Message"] != "Hello!" {
		t.Fatalf("value in Redis = %q (%v); want the JSON of the value", env.Value, err)
	}
	// A fresh process with the same serializer reads it back.
	c2 := bwRegister(t, newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet}), "Test",
		func(s *strata.CacheSettings) { s.Serializer = serializer.JSON{} })
	if v, ok := mustGet[msg](t, c2, "Key"); !ok || v.Message != "Hello!" {
		t.Fatalf("process 2 read %+v, %v", v, ok)
	}
}

// Disposal with writes in flight: with the production defaults Set returns
// once memory is written and Redis is written in the background; Close
// waits for those writes (docs/l2.md: "`Close` waits for these writes"),
// so that a service that writes and shuts down leaves its changes in Redis
// for the next process.
func TestBitwardenCloseFlushesBackgroundWrites(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	for i := range 3 {
		rdb := srv.FastClient(t, "")
		p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{Client: rdb}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		c := bwRegister(t, p, fmt.Sprint("round", i))
		const n = 200
		for k := range n {
			if err := hybrid.Set(ctx, c, fmt.Sprint("k", k), k); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Remove(ctx, "k0"); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		keys, err := raw.Keys(ctx, fmt.Sprintf("round%d:*", i)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != n {
			t.Fatalf("round %d: %d of %d keys in Redis after Close returned; want every background write done", i, len(keys), n)
		}
		if !removedInRedis(t, raw, fmt.Sprintf("round%d:k0", i)) {
			t.Fatalf("round %d: the Remove before Close did not reach Redis", i)
		}
	}
}

// Source: BitwardenCachingServiceCollectionExtensionsTests.AddBitwardenCaching_AppliesDefaults
// ("One" without customization gets FusionCacheGlobalDefaults'
// Duration). In Strata non-nil Defaults are used as given, so an empty
// CacheSettings means library defaults (docs/settings.md:
// "`&strata.CacheSettings{}` means *library* defaults"), and a zero
// Duration in an override is the library's 30s, not the provider's 30m
// (docs/settings.md: "`Duration = 0` gives 30s, not the provider's 30m").
// Checked on the logical lifetime Redis stores.
func TestBitwardenZeroMeansLibraryDefault(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	lifetime := func(key string) time.Duration {
		t.Helper()
		b, err := raw.Get(ctx, key).Bytes()
		if err != nil {
			t.Fatalf("GET %s: %v", key, err)
		}
		env, err := envelope.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		// FreshUntil is computed a moment after the timestamp is taken:
		// round off that moment.
		return time.Duration(env.FreshUntil - env.Timestamp).Truncate(10 * time.Millisecond)
	}
	lib := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Defaults: &strata.CacheSettings{}, Logger: quiet})
	one := bwRegister(t, lib, "One")
	hybrid.Set(ctx, one, "k", 1)
	if d := lifetime("One:k"); d != hybrid.DefaultDuration {
		t.Errorf("empty Defaults: lifetime %v, want the library's %v", d, hybrid.DefaultDuration)
	}
	if ttl, _ := raw.PTTL(ctx, "One:k").Result(); ttl > hybrid.DefaultDuration {
		t.Errorf("empty Defaults (fail-safe off): Redis TTL %v, want at most %v", ttl, hybrid.DefaultDuration)
	}

	prod := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	zero := bwRegister(t, prod, "Zero", bwSyncL2, func(s *strata.CacheSettings) { s.Entry.Duration = 0 })
	hybrid.Set(ctx, zero, "k", 1)
	jitter := strata.ProductionDefaults().Entry.JitterMaxDuration
	if d := lifetime("Zero:k"); d < hybrid.DefaultDuration || d >= hybrid.DefaultDuration+jitter {
		t.Errorf("Duration=0 over production defaults: lifetime %v, want %v plus jitter below %v", d, hybrid.DefaultDuration, jitter)
	}
	keep := bwRegister(t, prod, "Keep", bwSyncL2)
	hybrid.Set(ctx, keep, "k", 1)
	if d := lifetime("Keep:k"); d < 30*time.Minute || d >= 30*time.Minute+jitter {
		t.Errorf("production defaults: lifetime %v, want 30m plus jitter below %v", d, jitter)
	}
	// Per call, on top of the cache's options.
	hybrid.Set(ctx, keep, "short", 1, hybrid.WithDuration(time.Minute), hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.JitterMaxDuration = 0 }))
	if d := lifetime("Keep:short"); d != time.Minute {
		t.Errorf("WithDuration(1m), no jitter: lifetime %v", d)
	}
}

// A KeyPrefix in Defaults gives every cache the same prefix: on a shared
// Redis the second cache is refused, naming both; memory-only caches are
// not compared (docs/settings.md "Key prefixes do not overlap").
func TestBitwardenDefaultKeyPrefixOverlap(t *testing.T) {
	srv := redistest.Start(t)
	d := strata.ProductionDefaults()
	d.KeyPrefix = "app:"
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Defaults: &d, Logger: quiet})
	bwRegister(t, p, "One")
	_, err := p.Register("Two")
	if !errors.Is(err, strata.ErrInvalidSettings) || !strings.Contains(err.Error(), "One") || !strings.Contains(err.Error(), "Two") {
		t.Fatalf("second cache with the same default KeyPrefix: err = %v, want ErrInvalidSettings naming both", err)
	}
	bwRegister(t, p, "Two", func(s *strata.CacheSettings) { s.KeyPrefix = "two:" })
	if names := p.Names(); !slices.Equal(names, []string{"One", "Two"}) {
		t.Fatalf("Names() = %v", names)
	}
	mem := newProvider(t, strata.Settings{Defaults: &d, Logger: quiet})
	bwRegister(t, mem, "One")
	bwRegister(t, mem, "Two")
}

// A Redis in Defaults makes every cache isolated: one client per cache,
// each closed by Provider.Close (docs/settings.md: "A non-nil `Redis`
// isolates the cache: its own client (created now, closed with the
// provider").
func TestBitwardenDefaultsRedisIsolatesEveryCache(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	raw.Ping(ctx)
	d := strata.ProductionDefaults()
	d.Redis = &strata.RedisSettings{URL: srv.URL()}
	d.Entry.BackgroundL2Operations = false
	d.DisableBackplane = true
	p, err := strata.NewProvider(strata.Settings{Defaults: &d, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	a, b := bwRegister(t, p, "A"), bwRegister(t, p, "B")
	hybrid.Set(ctx, a, "k", "a")
	hybrid.Set(ctx, b, "k", "b")
	if keys := bwKeys(t, srv); !slices.Equal(keys, []string{"A:k", "B:k"}) {
		t.Fatalf("keys = %v", keys)
	}
	list, err := raw.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n := connectedClients(t, raw); n < 2 {
		t.Fatalf("%d connections besides ours, want one client per cache:\n%s", n, list)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "every per-cache client to close", func() bool { return connectedClients(t, raw) == 0 })
}

// A wrong password (an ACL user) does not fail Register or the calls;
// Ping says it is a configuration error, and neither the logs nor Ping's
// error show the password (docs/l2.md: WRONGPASS is a "config" error,
// "log at Error"; docs/redis.md "Passwords are redacted").
func TestBitwardenWrongPasswordNeverLogged(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--user", "cacheapp", "on", ">right-one", "~*", "&*", "+@all"))
	ctx := context.Background()
	const wrong = "Wr0ng-P4ssw0rd"
	logger, logs := bwLogs()
	p := newProvider(t, strata.Settings{
		Redis:  &strata.RedisSettings{URL: fmt.Sprintf("redis://cacheapp:%s@127.0.0.1:%d", wrong, srv.Port())},
		Logger: logger,
	})
	c := bwRegister(t, p, "Secure")
	v, err := hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "v", nil })
	if err != nil || v != "v" {
		t.Fatalf("GetOrSet with a wrong password = %q, %v; want the factory's value", v, err)
	}
	perr := c.Ping(ctx)
	if !errors.Is(perr, hybrid.ErrL2Config) {
		t.Fatalf("Ping with a wrong password: err = %v, want ErrL2Config", perr)
	}
	redistest.Eventually(t, "the configuration error in the log", func() bool {
		return c.Stats().ConfigErrors > 0 && strings.Contains(logs.String(), "level=ERROR")
	})
	if strings.Contains(perr.Error(), wrong) {
		t.Fatalf("Ping's error leaks the password: %v", perr)
	}
	if err := p.Close(); err != nil && strings.Contains(err.Error(), wrong) {
		t.Fatalf("Close's error leaks the password: %v", err)
	}
	if strings.Contains(logs.String(), wrong) {
		t.Fatalf("the log leaks the password:\n%s", logs)
	}
}

// Source: bitwarden/dotnet-extensions, Bitwarden.Server.Sdk.Caching.Tests,
// BitwardenCachingServiceCollectionExtensionsTests.ValueRoundTrips: Set(true)
// then GetOrSet(factory returns false) must return true.
//
// SPEC.md §3 "Read your writes": "On one process, once Set or GetOrSet
// returns, a following read of the same key sees that value".
//
// This failed in a few percent of fresh caches with Redis + backplane + the
// production defaults (BackgroundL2Operations): when the backplane
// subscription was confirmed after the Set (Register does not wait for
// it), the Set's own copy became "unverified", the read checked L2 where the
// background write had not landed yet, missed, and ran the factory, whose
// result replaced the user's value. The loop made the race near-certain to
// show; the deterministic form is TestOwnPendingWriteSurvivesGap in hybrid.
func TestBitwardenValueRoundTripsRightAfterRegister(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	for i := range 300 {
		p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
		c, err := p.Register(fmt.Sprint("MyFeature", i)) // production defaults
		if err != nil {
			t.Fatal(err)
		}
		if err := hybrid.Set(ctx, c, "Value", true); err != nil {
			t.Fatal(err)
		}
		v, err := hybrid.GetOrSet(ctx, c, "Value", func(context.Context, *hybrid.FactoryContext[bool]) (bool, error) {
			return false, nil
		})
		if err != nil || !v {
			t.Fatalf("iteration %d: GetOrSet right after Set(true) = %v, %v; want true (read your writes). Stats: %+v",
				i, v, err, c.Stats())
		}
		p.Close()
	}
}
