package strata_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// Redis killed and restarted under a full connection pool: the first calls
// after the restart succeed, with no L2 error and the circuit breaker
// closed (the pool drops the dead connections before use: go-redis checks
// an idle connection before handing it out, and retries once), on a
// provider built from a URL as a service builds it. (PostgreSQL's tier
// does the same by itself: postgres.TestRestartFailsNoCall.)
func TestRedisRestartFailsNoCall(t *testing.T) {
	srv := redistest.Start(t)
	d := strata.ProductionDefaults()
	d.Entry.BackgroundL2Operations = false
	d.WaitForInitialBackplaneSubscribe = 5 * time.Second
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: "redis://" + srv.Addr()}, Defaults: &d, Logger: quietLogger()})
	c, err := p.Register("users")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Several pooled connections, all of which the restart kills.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				if err := hybrid.Set(ctx, c, "k"+string(rune('a'+g))+string(rune('a'+i)), "v"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	srv.Kill(t)
	if err := c.Ping(ctx); !errors.Is(err, hybrid.ErrL2Unavailable) {
		t.Fatalf("Ping with Redis down: %v; want hybrid.ErrL2Unavailable", err)
	}
	srv.Restart(t)
	for i := range 8 {
		if err := hybrid.Set(ctx, c, "after", i); err != nil {
			t.Fatalf("Set %d after the restart: %v", i, err)
		}
		if _, _, err := hybrid.TryGet[int](ctx, c, "after", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true })); err != nil {
			t.Fatalf("L2 read %d after the restart: %v", i, err)
		}
	}
	if st := c.Stats(); st.L2Errors != 0 || st.L2CircuitOpen || st.RecoveryQueued != 0 {
		t.Fatalf("after the restart: %d L2 errors, breaker open %v, %d queued; want none", st.L2Errors, st.L2CircuitOpen, st.RecoveryQueued)
	}
}

// Addrs (a cluster's seeds) naming a standalone server is a configuration
// error, which waiting will not fix: Ping says why, and the failed writes
// are counted as configuration errors (logged at Error, not queued for
// recovery), not as an outage.
func TestClusterSettingsOnStandaloneServer(t *testing.T) {
	srv := redistest.Start(t)
	d := strata.ProductionDefaults()
	d.Entry.BackgroundL2Operations = false
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{Addrs: []string{srv.Addr()}}, Defaults: &d, Logger: quietLogger()})
	c, err := p.Register("users")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Ping(ctx); !errors.Is(err, hybrid.ErrL2Config) || !strings.Contains(err.Error(), "cluster support disabled") {
		t.Fatalf("Ping: %v; want hybrid.ErrL2Config with Redis's refusal", err)
	}
	_ = hybrid.Set(ctx, c, "k", "v")
	if st := c.Stats(); st.ConfigErrors == 0 || st.RecoveryQueued != 0 {
		t.Fatalf("after a Set: %d config errors, %d queued for recovery; want a config error, nothing queued", st.ConfigErrors, st.RecoveryQueued)
	}
}
