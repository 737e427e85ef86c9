package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// env returns an envelope with timestamp ts holding value.
func env(ts int64, value []byte) []byte {
	e := envelope.Envelope{Timestamp: ts, FreshUntil: ts + int64(time.Hour), Type: "test", Value: value}
	return e.Append(nil)
}

func valueOf(t testing.TB, b []byte) string {
	t.Helper()
	e, err := envelope.Decode(b)
	if err != nil {
		t.Fatalf("stored value does not decode: %v", err)
	}
	return string(e.Value)
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTier returns a tier on srv without pruning, closed by the cleanup.
func newTier(t testing.TB, srv *pgtest.Server) *postgres.Tier {
	t.Helper()
	tier, err := postgres.NewTier(postgres.Config{ConnString: srv.URL(), PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	return tier
}

// newL2 returns the L2 of a cache under prefix on tier.
func newL2(t testing.TB, tier *postgres.Tier, prefix string) *postgres.L2 {
	t.Helper()
	l2, bp, err := tier.OpenCache(postgres.Options{KeyPrefix: prefix, DisableBackplane: true})
	if err != nil || bp != nil {
		t.Fatalf("OpenCache: %v, %v", bp, err)
	}
	return l2
}

func newProvider(t testing.TB, s strata.Settings) *strata.Provider {
	t.Helper()
	if s.Logger == nil {
		s.Logger = quietLogger()
	}
	if s.Defaults == nil {
		d := strata.ProductionDefaults()
		d.Entry.BackgroundL2Operations = false
		d.WaitForInitialBackplaneSubscribe = 5 * time.Second
		s.Defaults = &d
	}
	p, err := strata.NewProvider(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func register(t testing.TB, p *strata.Provider, name string, f ...func(*strata.CacheSettings)) *hybrid.Cache {
	t.Helper()
	c, err := p.Register(name, f...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// get reads key through the cache: memory, then the table, else "factory".
func get(t testing.TB, c *hybrid.Cache, key string) string {
	t.Helper()
	v, err := hybrid.GetOrSet(context.Background(), c, key, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "factory", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// peek reads key from memory only.
func peek(c *hybrid.Cache, key string) (string, bool) {
	v, ok, _ := hybrid.TryGet[string](context.Background(), c, key, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true }))
	return v, ok
}
