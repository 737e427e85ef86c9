package strata_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// Redis under Sentinel (a master, a replica, three sentinels with a quorum of
// two), two nodes on failover clients: they share the master's data and
// stay coherent through the backplane; the master is killed, the sentinels
// promote the replica, and the nodes follow: writes reach the new master,
// the other node hears of them, and reads answer throughout.
func TestSentinelFailover(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinels := redistest.StartSentinels(t, "strata", master, 3, 2)
	node := func() *hybrid.Cache {
		client := redis.NewFailoverClient(sentinels.FailoverOptions())
		t.Cleanup(func() { client.Close() })
		return failoverNode(t, &strata.RedisSettings{Client: client}, "users:")
	}
	n1, n2 := node(), node()
	ctx := context.Background()
	if err := hybrid.Set(ctx, n1, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, n2, "k"); v != "v1" { // from the master, through L2
		t.Fatalf("n2 read %q before the failover", v)
	}
	rc := replica.Client(t)
	redistest.Eventually(t, "the replica to have the entry", func() bool {
		n, err := rc.Exists(ctx, "users:k").Result()
		return err == nil && n == 1
	})

	master.Kill(t)
	redistest.Eventually(t, "the sentinels to promote the replica", func() bool {
		addr, err := sentinels.Master()
		return err == nil && addr == replica.Addr()
	})
	// Until the failover clients follow, writes fail (and are queued);
	// once they do, a write reaches the new master.
	afterFailover(t, n1, n2, func() bool {
		b, err := rc.Get(ctx, "users:k").Bytes()
		return err == nil && len(b) > 0 && n1.Stats().RecoveryPending == 0
	})
	if err := n1.Ping(ctx); err != nil {
		t.Fatalf("Ping after the failover: %v", err)
	}
}

// failoverNode is a node of the failover tests: a provider on rs with
// synchronous writes, a short breaker, and the cache "users" under prefix,
// subscribed before it is returned.
func failoverNode(t *testing.T, rs *strata.RedisSettings, prefix string) *hybrid.Cache {
	t.Helper()
	d := strata.ProductionDefaults()
	d.Entry.BackgroundL2Operations = false
	d.L2CircuitBreakerDuration = 200 * time.Millisecond
	d.WaitForInitialBackplaneSubscribe = 10 * time.Second
	d.KeyPrefix = prefix
	p := newProvider(t, strata.Settings{Redis: rs, Defaults: &d, Logger: quietLogger()})
	c, err := p.Register("users")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// afterFailover checks that n1 and n2, whose master was killed and
// replaced, follow: a write on n1 reaches the new master (and written
// holds), n2 serves it, and n1 serves n2's next write. A node's
// subscription may come back after a message: its gap makes it verify its
// copy against the new master, so it serves the new value either way.
func afterFailover(t *testing.T, n1, n2 *hybrid.Cache, written func() bool) {
	t.Helper()
	ctx := context.Background()
	redistest.Eventually(t, "a write on n1 to reach the new master", func() bool {
		if err := hybrid.Set(ctx, n1, "k", "v2"); err != nil {
			t.Fatal(err)
		}
		v, ok, err := hybrid.TryGet[string](ctx, n1, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true }))
		return err == nil && ok && v == "v2" && (written == nil || written())
	})
	redistest.Eventually(t, "n2 to serve v2", func() bool {
		v, _ := get(t, n2, "k")
		return v == "v2"
	})
	if err := hybrid.Set(ctx, n2, "k", "v3"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "n1 to serve v3 from n2", func() bool {
		v, _ := get(t, n1, "k")
		return v == "v3"
	})
}
