package postgres_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// The server hangs (every process stopped: SIGSTOP, as a frozen host or a
// stalled disk would) under a node that keeps working: its calls end at
// the L2 timeouts and the factory answers (pgxpool's tests of a query
// cancelled by its context against a server that does not answer). Close,
// with the server still hung, returns at once and leaves nothing running:
// no listener, no pool connection, no cancel request of pgx's waiting for
// an answer that will not come.
func TestPeerCloseWhileServerHung(t *testing.T) {
	opts := goleak.IgnoreCurrent()
	srv := pgtest.Start(t)
	d := strata.ProductionDefaults()
	d.Entry.BackgroundL2Operations = false
	d.Entry.L2SoftTimeout = 200 * time.Millisecond
	d.Entry.L2HardTimeout = 400 * time.Millisecond
	d.L2CircuitBreakerDuration = 200 * time.Millisecond
	d.WaitForInitialBackplaneSubscribe = 5 * time.Second
	p, err := strata.NewProvider(strata.Settings{Tier: postgres.Settings(postgres.Config{ConnString: srv.URL() + "&connect_timeout=1"}),
		Defaults: &d, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Register("users")
	if err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx(t), c, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the listener", func() bool {
		return admin(t, srv, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'strata-backplane'`) >= 1
	})
	srv.Pause(t)
	t.Cleanup(func() { srv.Resume(t) })
	// A call that waits on the hung server until its timeout: pgx closes
	// its connection in the background, with a cancel request the server
	// will not answer.
	if v := get(t, c, "cold"); v != "factory" {
		t.Fatalf("GetOrSet with the server hung = %q; want the factory's", v)
	}
	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return within 20 s with the server hung")
	}
	took := time.Since(t0)
	t.Logf("Close took %s", took)
	if took > 5*time.Second {
		t.Errorf("Close took %s with the server hung; it must not wait for the server", took)
	}
	goleak.VerifyNone(t, opts)
}
