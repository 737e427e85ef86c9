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
		d := strata.ProductionDefaults()
		d.Entry.BackgroundL2Operations = false
		d.L2CircuitBreakerDuration = 200 * time.Millisecond
		d.WaitForInitialBackplaneSubscribe = 10 * time.Second
		p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{Client: client}, Defaults: &d, Logger: quietLogger()})
		c, err := p.Register("users")
		if err != nil {
			t.Fatal(err)
		}
		return c
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
	redistest.Eventually(t, "a write on n1 to reach the new master", func() bool {
		if err := hybrid.Set(ctx, n1, "k", "v2"); err != nil {
			t.Fatal(err)
		}
		b, err := rc.Get(ctx, "users:k").Bytes()
		return err == nil && len(b) > 0 && n1.Stats().RecoveryPending == 0 && func() bool {
			v, ok, err := hybrid.TryGet[string](ctx, n1, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true }))
			return err == nil && ok && v == "v2"
		}()
	})
	// n2 hears of it through the backplane on the new master, or reads it
	// there after its subscription's gap: it does not keep serving v1.
	redistest.Eventually(t, "n2 to serve v2", func() bool {
		v, _ := get(t, n2, "k")
		return v == "v2"
	})
	if err := hybrid.Set(ctx, n2, "k", "v3"); err != nil {
		t.Fatal(err)
	}
	// n1's subscription may come back after that message: the gap makes n1
	// verify its copy against the new master, so it serves v3 either way.
	redistest.Eventually(t, "n1 to serve v3 from n2", func() bool {
		v, _ := get(t, n1, "k")
		return v == "v3"
	})
	if err := n1.Ping(ctx); err != nil {
		t.Fatalf("Ping after the failover: %v", err)
	}
}
