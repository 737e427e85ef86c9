package strata_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
)

func TestMain(m *testing.M) {
	if os.Getenv(nodeEnv) != "" {
		os.Exit(runNode()) // a helper process of TestSeparateProcesses
	}
	goleak.VerifyTestMain(m)
}

func newProvider(t *testing.T, s strata.Settings) *strata.Provider {
	t.Helper()
	p, err := strata.NewProvider(s)
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestRegisterAndGet(t *testing.T) {
	p := newProvider(t, strata.Settings{})
	users, err := p.Register("users")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Register("orders"); err != nil {
		t.Fatal(err)
	}
	if users.Name() != "users" {
		t.Errorf("Name() = %q", users.Name())
	}
	got, err := p.GetCache("users")
	if err != nil || got != users {
		t.Errorf("GetCache = %p, %v; want the registered cache", got, err)
	}
	if p.MustGetCache("orders") == nil {
		t.Error("MustGetCache returned nil")
	}
	if names := p.Names(); strings.Join(names, ",") != "orders,users" {
		t.Errorf("Names() = %v, want sorted [orders users]", names)
	}
	if _, err := p.GetCache("nope"); !errors.Is(err, strata.ErrCacheNotFound) {
		t.Errorf("GetCache(unknown): err = %v, want ErrCacheNotFound", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustGetCache(unknown) did not panic")
		}
	}()
	p.MustGetCache("nope")
}

func TestCachesAreIsolated(t *testing.T) {
	p := newProvider(t, strata.Settings{})
	a, _ := p.Register("a")
	b, _ := p.Register("b")
	ctx := context.Background()
	hybrid.Set(ctx, a, "k", "from a")
	if _, ok, _ := hybrid.TryGet[string](ctx, b, "k"); ok {
		t.Fatal("cache b sees cache a's key")
	}
}

func TestRegisterOverridesKeepOtherDefaults(t *testing.T) {
	p := newProvider(t, strata.Settings{})
	// Production defaults have fail-safe on; an explicit false wins, and the
	// other defaults (a 30m Duration) stay.
	c, err := p.Register("nofs", func(s *strata.CacheSettings) { s.Entry.FailSafe = false })
	if err != nil {
		t.Fatal(err)
	}
	fs, err := p.Register("fs")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fail := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
		return 0, errors.New("db down")
	}
	for _, x := range []*hybrid.Cache{c, fs} {
		hybrid.Set(ctx, x, "k", 1)
		x.Expire(ctx, "k")
	}
	if _, err := hybrid.GetOrSet(ctx, c, "k", fail); err == nil {
		t.Error("FailSafe=false override: the stale value was served")
	}
	if v, err := hybrid.GetOrSet(ctx, fs, "k", fail); err != nil || v != 1 {
		t.Errorf("production default fail-safe: got %d, %v", v, err)
	}
	// Duration kept from the defaults: still fresh after the 30s library default.
	if _, ok, _ := hybrid.TryGet[int](ctx, c, "k"); ok {
		t.Error("expired key is a hit")
	}
}

func TestConfigureDoesNotChangeDefaults(t *testing.T) {
	d := strata.ProductionDefaults()
	d.Entry.Tags = []string{"base"}
	p := newProvider(t, strata.Settings{Defaults: &d})
	if _, err := p.Register("a", func(s *strata.CacheSettings) { s.Entry.Tags[0] = "changed"; s.Entry.Duration = time.Hour }); err != nil {
		t.Fatal(err)
	}
	if d.Entry.Tags[0] != "base" {
		t.Fatal("configure changed the caller's defaults")
	}
}

func TestRegisterErrors(t *testing.T) {
	p := newProvider(t, strata.Settings{})
	if _, err := p.Register("dup"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		cache     string
		configure func(*strata.CacheSettings)
		want      error
		field     string
	}{
		{"duplicate", "dup", nil, strata.ErrDuplicateName, "dup"},
		{"empty name", "", nil, strata.ErrInvalidSettings, "empty"},
		{"bad char", "a b", nil, strata.ErrInvalidSettings, "not allowed"},
		{"hash tag", "a{b}", nil, strata.ErrInvalidSettings, "not allowed"},
		{"long name", strings.Repeat("n", strata.MaxNameLength+1), nil, strata.ErrInvalidSettings, "longer"},
		{"negative duration", "x1", func(s *strata.CacheSettings) { s.Entry.Duration = -time.Second }, hybrid.ErrInvalidOptions, "Duration"},
		{"threshold", "x2", func(s *strata.CacheSettings) { s.Entry.EagerRefreshThreshold = 1.5 }, hybrid.ErrInvalidOptions, "EagerRefreshThreshold"},
		{"negative capacity", "x3", func(s *strata.CacheSettings) { s.L1MaxEntries = -1 }, strata.ErrInvalidSettings, "L1MaxEntries"},
		{"bad url", "x4", func(s *strata.CacheSettings) { s.Redis = &strata.RedisSettings{URL: "http://u:hunter2@h/"} }, strata.ErrInvalidSettings, "Redis.URL"},
		{"two sources", "x5", func(s *strata.CacheSettings) {
			s.Redis = &strata.RedisSettings{URL: "redis://h", Addrs: []string{"h:1"}}
		}, strata.ErrInvalidSettings, "exactly one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cfg []func(*strata.CacheSettings)
			if tc.configure != nil {
				cfg = append(cfg, tc.configure)
			}
			_, err := p.Register(tc.cache, cfg...)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.field)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error leaks a password: %v", err)
			}
		})
	}
	if got := strings.Join(p.Names(), ","); got != "dup" {
		t.Fatalf("failed registrations changed the provider: Names() = %v", got)
	}
}

func TestInvalidProviderSettings(t *testing.T) {
	bad := strata.ProductionDefaults()
	bad.Entry.FailSafeThrottleDuration = -1
	if _, err := strata.NewProvider(strata.Settings{Defaults: &bad}); !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Errorf("invalid defaults: err = %v", err)
	}
	if _, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: "::nope"}}); !errors.Is(err, strata.ErrInvalidSettings) {
		t.Errorf("unparsable URL: err = %v", err)
	}
	if _, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{}}); !errors.Is(err, strata.ErrInvalidSettings) {
		t.Errorf("empty Redis settings: err = %v", err)
	}
}

func TestCloseClosesCaches(t *testing.T) {
	p, err := strata.NewProvider(strata.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Register("a")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := hybrid.Set(context.Background(), c, "k", 1); !errors.Is(err, hybrid.ErrClosed) {
		t.Errorf("Set on a cache of a closed provider: err = %v", err)
	}
	if _, err := p.Register("b"); !errors.Is(err, strata.ErrClosed) {
		t.Errorf("Register after Close: err = %v", err)
	}
}

func TestEntryErrorsMatchBothSentinels(t *testing.T) {
	p := newProvider(t, strata.Settings{})
	_, err := p.Register("x", func(s *strata.CacheSettings) { s.Entry.Duration = -1 })
	if !errors.Is(err, strata.ErrInvalidSettings) || !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Fatalf("err = %v, want both ErrInvalidSettings and hybrid.ErrInvalidOptions", err)
	}
}

func TestProviderPassesCacheSettings(t *testing.T) {
	p := newProvider(t, strata.Settings{RedactKeys: true})
	c, err := p.Register("short", func(s *strata.CacheSettings) { s.MaxKeyLength = 4 })
	if err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(context.Background(), c, "12345", 1); !errors.Is(err, hybrid.ErrInvalidKey) {
		t.Fatalf("MaxKeyLength not applied: err = %v", err)
	}
	if _, err := p.Register("neg", func(s *strata.CacheSettings) { s.L2CircuitBreakerDuration = -1 }); !errors.Is(err, strata.ErrInvalidSettings) {
		t.Fatalf("negative breaker duration: err = %v", err)
	}
}
