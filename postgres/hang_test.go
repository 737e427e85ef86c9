package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// PostgreSQL that stops answering (a TCP proxy that holds every byte, as a
// hung server or a network partition would): the cache's calls end at its
// L2 timeouts, the factory answers, the circuit breaker opens so that later
// calls do not wait, and once the server answers again the cache uses the
// table again. Nothing is left running (goleak, at the end of the package).
func TestHungServer(t *testing.T) {
	srv := pgtest.Start(t)
	proxy, url := proxied(t, srv)
	d := strata.ProductionDefaults()
	d.Entry.BackgroundL2Operations = false
	d.Entry.L2SoftTimeout = 200 * time.Millisecond
	d.Entry.L2HardTimeout = 400 * time.Millisecond
	d.L2CircuitBreakerDuration = 500 * time.Millisecond
	d.WaitForInitialBackplaneSubscribe = 5 * time.Second
	c := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(postgres.Config{ConnString: url}), Defaults: &d}), "users")
	ctx := context.Background()
	if err := hybrid.Set(ctx, c, "k", "v1"); err != nil {
		t.Fatal(err)
	}

	proxy.Pause()
	start := time.Now()
	v := get(t, c, "cold") // memory miss, the table does not answer: the factory does
	if v != "factory" {
		t.Fatalf("GetOrSet with PostgreSQL hung = %q", v)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("GetOrSet with PostgreSQL hung took %s; the L2 timeouts are 200/400 ms", took)
	}
	if err := c.Ping(ctx); err == nil {
		t.Fatal("Ping with PostgreSQL hung succeeded")
	}
	if st := c.Stats(); st.L2Timeouts+st.L2Errors == 0 {
		t.Fatalf("no L2 timeout or error counted with PostgreSQL hung: %+v", st)
	}

	proxy.Resume()
	waitFor(t, 20*time.Second, "Ping to succeed once PostgreSQL answers", func() bool { return c.Ping(ctx) == nil })
	waitFor(t, 20*time.Second, "a write to reach the table", func() bool {
		return hybrid.Set(ctx, c, "after", "up") == nil && tableHas(t, srv, "users:after")
	})
}
