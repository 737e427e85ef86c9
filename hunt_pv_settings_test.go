package strata_test

// Settings validation (docs/settings.md, docs/errors.md): every invalid
// value, in a configure func or in Settings.Defaults, is an error matching
// strata.ErrInvalidSettings (and hybrid.ErrInvalidOptions for the engine's
// fields) that names the field, never shows a password, and changes
// nothing: no cache, no name taken, no client or connection left behind.

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// pvSecret is the password of every URL these tests put in settings.
const pvSecret = "Sup3r-S3cret-pw"

// pvInvalid lists one invalid value per field, with the word the error
// must hold; engine says whether the error must match
// hybrid.ErrInvalidOptions too.
var pvInvalid = []struct {
	field  string
	engine bool
	set    func(*strata.CacheSettings)
}{
	{"Duration", true, func(s *strata.CacheSettings) { s.Entry.Duration = -1 }},
	{"L1Duration", true, func(s *strata.CacheSettings) { s.Entry.L1Duration = -time.Second }},
	{"JitterMaxDuration", true, func(s *strata.CacheSettings) { s.Entry.JitterMaxDuration = -time.Second }},
	{"FailSafeMaxDuration", true, func(s *strata.CacheSettings) { s.Entry.FailSafeMaxDuration = -time.Hour }},
	{"FailSafeThrottleDuration", true, func(s *strata.CacheSettings) { s.Entry.FailSafeThrottleDuration = -1 }},
	{"FactorySoftTimeout", true, func(s *strata.CacheSettings) { s.Entry.FactorySoftTimeout = -1 }},
	{"FactoryHardTimeout", true, func(s *strata.CacheSettings) { s.Entry.FactoryHardTimeout = -1 }},
	{"L2SoftTimeout", true, func(s *strata.CacheSettings) { s.Entry.L2SoftTimeout = -1 }},
	{"L2HardTimeout", true, func(s *strata.CacheSettings) { s.Entry.L2HardTimeout = -1 }},
	{"NotFoundDuration", true, func(s *strata.CacheSettings) { s.Entry.NotFoundDuration = -1 }},
	{"SlidingDuration", true, func(s *strata.CacheSettings) { s.Entry.SlidingDuration = -1 }},
	{"DistributedLockLease", true, func(s *strata.CacheSettings) { s.Entry.DistributedLockLease = -1 }},
	{"DistributedLockTimeout", true, func(s *strata.CacheSettings) { s.Entry.DistributedLockTimeout = -1 }},
	{"EagerRefreshThreshold", true, func(s *strata.CacheSettings) { s.Entry.EagerRefreshThreshold = 1 }},
	{"EagerRefreshThreshold", true, func(s *strata.CacheSettings) { s.Entry.EagerRefreshThreshold = -0.5 }},
	{"EagerRefreshThreshold", true, func(s *strata.CacheSettings) { s.Entry.EagerRefreshThreshold = math.NaN() }},
	{"EagerRefreshThreshold", true, func(s *strata.CacheSettings) { s.Entry.EagerRefreshThreshold = math.Inf(1) }},
	{"Size", true, func(s *strata.CacheSettings) { s.Entry.Size = -1 }},
	{"tag", true, func(s *strata.CacheSettings) { s.Entry.Tags = []string{"ok", ""} }},
	{"tag", true, func(s *strata.CacheSettings) { s.Entry.Tags = []string{strings.Repeat("t", hybrid.MaxTagLength+1)} }},
	{"L1MaxEntries", true, func(s *strata.CacheSettings) { s.L1MaxEntries = -1 }},
	{"MaxKeyLength", true, func(s *strata.CacheSettings) { s.MaxKeyLength = -1 }},
	{"HitClockResolution", true, func(s *strata.CacheSettings) { s.HitClockResolution = -time.Millisecond }},
	{"MaxValueSize", true, func(s *strata.CacheSettings) { s.MaxValueSize = -1 }},
	{"MaxValueSize", true, func(s *strata.CacheSettings) { s.MaxValueSize = hybrid.MaxMaxValueSize + 1 }},
	{"L2CircuitBreakerDuration", true, func(s *strata.CacheSettings) { s.L2CircuitBreakerDuration = -1 }},
	{"AutoRecoveryMaxItems", true, func(s *strata.CacheSettings) { s.AutoRecoveryMaxItems = -1 }},
	{"CompressMinSize", true, func(s *strata.CacheSettings) { s.CompressMinSize = -1 }},
	{"BackplaneValueMaxSize", true, func(s *strata.CacheSettings) { s.BackplaneValueMaxSize = -1 }},
	{"WaitForInitialBackplaneSubscribe", true, func(s *strata.CacheSettings) { s.WaitForInitialBackplaneSubscribe = -1 }},
	{"exactly one", false, func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{} }},
	{"exactly one", false, func(s *strata.CacheSettings) {
		s.Redis = &strata.RedisSettings{URL: "redis://app:" + pvSecret + "@127.0.0.1:1", Addrs: []string{"127.0.0.1:1"}}
	}},
	{"Redis.URL", false, func(s *strata.CacheSettings) {
		s.Redis = &strata.RedisSettings{URL: "redis://app:" + pvSecret + "@127.0.0.1:1/x"}
	}},
	{"Redis.URL", false, func(s *strata.CacheSettings) {
		s.Redis = &strata.RedisSettings{URL: "redis://app:" + pvSecret + "@127.0.0.1:1/0?nosuch=1"}
	}},
	{"Redis.URL", false, func(s *strata.CacheSettings) {
		s.Redis = &strata.RedisSettings{URL: "redis://app:" + pvSecret + "@127.0.0.1:1/0?pool_size=" + pvSecret}
	}},
	{"Redis.URL", false, func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{URL: "unix://app:" + pvSecret + "@"} }},
	{"Redis and Tier", false, func(s *strata.CacheSettings) {
		s.Redis = &strata.RedisSettings{URL: "redis://app:" + pvSecret + "@127.0.0.1:1"}
		s.Tier = &strata.TierSettings{}
	}},
	{"New, Tier", false, func(s *strata.CacheSettings) { s.Tier = &strata.TierSettings{} }},
}

// pvCheckInvalid checks one refused settings error.
func pvCheckInvalid(t *testing.T, where, field string, engine bool, err error) {
	t.Helper()
	switch {
	case !errors.Is(err, strata.ErrInvalidSettings):
		t.Errorf("%s %s: err = %v, want ErrInvalidSettings", where, field, err)
	case engine && !errors.Is(err, hybrid.ErrInvalidOptions):
		t.Errorf("%s %s: err = %v, want hybrid.ErrInvalidOptions too", where, field, err)
	case !strings.Contains(err.Error(), field):
		t.Errorf("%s %s: the error does not name the field: %v", where, field, err)
	case strings.Contains(err.Error(), pvSecret):
		t.Errorf("%s %s: the error shows the password: %v", where, field, err)
	}
}

// Every invalid field in a configure func: Register refuses it and the
// provider is as before (the name is free, the shared Redis has no new
// connection or key).
func TestHuntPVRegisterRefusesEveryInvalidField(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	if err := raw.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	logger, logs := bwLogs()
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: logger})
	keep := pvRegister(t, p, "keep", pvSync, pvWait)
	if err := hybrid.Set(ctx, keep, "k", "v"); err != nil {
		t.Fatal(err)
	}
	conns := connectedClients(t, raw)
	for _, tc := range pvInvalid {
		c, err := p.Register("x", tc.set)
		if c != nil {
			t.Errorf("%s: Register returned a cache with its error %v", tc.field, err)
		}
		pvCheckInvalid(t, "Register", tc.field, tc.engine, err)
		if !strings.Contains(err.Error(), `"x"`) {
			t.Errorf("%s: the error does not name the cache: %v", tc.field, err)
		}
	}
	if got := p.Names(); !slices.Equal(got, []string{"keep"}) {
		t.Fatalf("refused registrations changed Names: %v", got)
	}
	if _, err := p.GetCache("x"); !errors.Is(err, strata.ErrCacheNotFound) {
		t.Fatalf("GetCache(x) after refusals: %v", err)
	}
	if n := connectedClients(t, raw); n != conns {
		t.Fatalf("connections to the shared Redis: %d, were %d before the refused registrations", n, conns)
	}
	if keys, _ := raw.Keys(ctx, "*").Result(); !slices.Equal(keys, []string{"keep:k"}) {
		t.Fatalf("keys in Redis after refusals: %v", keys)
	}
	// The name is free and the earlier cache untouched.
	x := pvRegister(t, p, "x", pvSync)
	if err := hybrid.Set(ctx, x, "k", "x"); err != nil {
		t.Fatal(err)
	}
	pvHas(t, keep, "k", "v")
	if strings.Contains(logs.String(), pvSecret) {
		t.Fatalf("the log shows the password:\n%s", logs)
	}
}

// The same values in Settings.Defaults: NewProvider refuses them.
func TestHuntPVNewProviderRefusesInvalidDefaults(t *testing.T) {
	for _, tc := range pvInvalid {
		d := strata.ProductionDefaults()
		tc.set(&d)
		p, err := strata.NewProvider(strata.Settings{Defaults: &d, Logger: quiet})
		if p != nil {
			p.Close()
			t.Errorf("%s: NewProvider returned a provider with its error %v", tc.field, err)
		}
		pvCheckInvalid(t, "NewProvider Defaults", tc.field, tc.engine, err)
	}
	// And at the provider level: Redis and Tier both, an empty Redis, an
	// empty Tier.
	for _, tc := range []struct {
		field string
		s     strata.Settings
	}{
		{"Redis and Tier", strata.Settings{Redis: &strata.RedisSettings{URL: "redis://:" + pvSecret + "@127.0.0.1:1"}, Tier: &strata.TierSettings{}}},
		{"exactly one", strata.Settings{Redis: &strata.RedisSettings{}}},
		{"exactly one", strata.Settings{Redis: &strata.RedisSettings{URL: "redis://:" + pvSecret + "@127.0.0.1:1", Addrs: []string{"127.0.0.1:2"}}}},
		{"New, Tier", strata.Settings{Tier: &strata.TierSettings{}}},
		{"Redis.URL", strata.Settings{Redis: &strata.RedisSettings{URL: "rediss://u:" + pvSecret + "@127.0.0.1:1?skip_verify=maybe"}}},
	} {
		p, err := strata.NewProvider(tc.s)
		if p != nil {
			p.Close()
		}
		pvCheckInvalid(t, "NewProvider", tc.field, false, err)
	}
}

// Valid edge values are accepted: zero everywhere (library defaults),
// EagerRefreshThreshold just inside (0,1), MaxValueSize at its limit, a
// tag of exactly MaxTagLength bytes.
func TestHuntPVRegisterAcceptsEdgeValues(t *testing.T) {
	p := newProvider(t, strata.Settings{Logger: quiet})
	for i, set := range []func(*strata.CacheSettings){
		func(s *strata.CacheSettings) { *s = strata.CacheSettings{} },
		func(s *strata.CacheSettings) { s.Entry.EagerRefreshThreshold = math.Nextafter(1, 0) },
		func(s *strata.CacheSettings) { s.Entry.EagerRefreshThreshold = math.SmallestNonzeroFloat64 },
		func(s *strata.CacheSettings) { s.MaxValueSize = hybrid.MaxMaxValueSize },
		func(s *strata.CacheSettings) { s.Entry.Tags = []string{strings.Repeat("t", hybrid.MaxTagLength)} },
		func(s *strata.CacheSettings) { s.HitClockResolution = time.Nanosecond },
	} {
		name := "edge" + string(rune('a'+i))
		c, err := p.Register(name, set)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		v, err := hybrid.GetOrSet(context.Background(), c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "v", nil })
		if err != nil || v != "v" {
			t.Fatalf("case %d: GetOrSet = %q, %v", i, v, err)
		}
	}
}

// Close twice returns the same (nil) result; Register after Close is
// ErrClosed and takes no name; GetCache and Names keep answering.
func TestHuntPVCloseTwice(t *testing.T) {
	srv := redistest.Start(t)
	p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c := pvRegister(t, p, "c", pvWait)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("the cache's own Close after the provider's: %v", err)
	}
	for _, n := range []string{"c", "d"} {
		if got, err := p.Register(n); !errors.Is(err, strata.ErrClosed) || got != nil {
			t.Fatalf("Register(%q) after Close = %v, %v; want ErrClosed", n, got, err)
		}
	}
	if got := p.Names(); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("Names after Close = %v", got)
	}
	if got, err := p.GetCache("c"); err != nil || got != c {
		t.Fatalf("GetCache after Close = %v, %v", got, err)
	}
	if _, err := hybrid.GetOrSet(context.Background(), c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "v", nil }); !errors.Is(err, hybrid.ErrClosed) {
		t.Fatalf("GetOrSet after Close: %v", err)
	}
	redistest.Eventually(t, "the subscription to end", func() bool { return numSub(t, srv, bwChannel("c:")) == 0 })
}
