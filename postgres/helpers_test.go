package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/internal/tcpproxy"
	"github.com/strata-cache/strata/internal/tiertest"
	"github.com/strata-cache/strata/postgres"
)

// proxied puts a TCP proxy in front of srv, closed at the end of the test,
// and returns it with a connection string through it (connect_timeout 1 s,
// so that a node cut off by the proxy gives up dialling soon).
func proxied(t testing.TB, srv *pgtest.Server) (*tcpproxy.Proxy, string) {
	t.Helper()
	proxy, err := tcpproxy.New(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	return proxy, fmt.Sprintf("postgres://%s@%s/postgres?sslmode=disable&connect_timeout=1", pgtest.User, proxy.Addr())
}

func valueOf(t testing.TB, b []byte) string {
	t.Helper()
	e, err := envelope.Decode(b)
	if err != nil {
		t.Fatalf("stored value does not decode: %v", err)
	}
	return string(e.Value)
}

// The helpers the tier modules share (internal/tiertest), by their short names.
var (
	env         = tiertest.Envelope
	ctx         = tiertest.Context
	waitFor     = tiertest.WaitFor
	quietLogger = tiertest.QuietLogger
	register    = tiertest.Register
)

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
	if s.Defaults == nil {
		d := tiertest.Defaults()
		d.WaitForInitialBackplaneSubscribe = 5 * time.Second
		s.Defaults = &d
	}
	return tiertest.NewProvider(t, s)
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
