package strata_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/testlog"
)

// A Redis Cluster with a replica per master, two nodes on the provider's own
// cluster clients (RedisSettings.Addrs, which reload the slot map every
// second; go-redis's default is a minute, see docs/redis.md):
// the master that serves the cache's backplane channel (sharded pub/sub)
// and its keys is killed, its replica takes over, and the nodes follow:
// writes reach the new master, each node serves the other's writes, and
// neither keeps serving a value from before the failover.
func TestClusterFailover(t *testing.T) {
	cl := redistest.StartClusterWithReplicas(t, 3, 1)
	// The keys on the channel's slot ({users}): one master serves both.
	node := func() *hybrid.Cache { return failoverNode(t, &strata.RedisSettings{Addrs: cl.Addrs()}, "{users}:") }
	n1, n2 := node(), node()
	ctx := context.Background()
	if err := hybrid.Set(ctx, n1, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, n2, "k"); v != "v1" {
		t.Fatalf("n2 read %q before the failover", v)
	}
	master := cl.MasterFor("{users}:k")
	if master == nil || cl.MasterFor("{users}") != master {
		t.Fatal("no one master serves the channel's slot and the keys'")
	}

	master.Kill(t)
	redistest.Eventually(t, "a replica to take over the slot", func() bool {
		m := cl.MasterFor("{users}:k")
		return m != nil && m != master
	})
	afterFailover(t, n1, n2, nil)
	// The backplane works again: a Set on n1 reaches n2's memory without a
	// read of Redis.
	if err := hybrid.Set(ctx, n1, "k", "v4"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "n2 to hear of v4", func() bool {
		v, _ := get(t, n2, "k", l1Only)
		return v == "v4"
	})
}

// A cluster client of the caller's that reloads its slot map only every
// minute (go-redis's default) gets a warning at NewProvider, and one set as
// docs/redis.md says does not. (The client is never dialled.)
func TestSlowClusterReloadWarns(t *testing.T) {
	for _, c := range []struct {
		reload time.Duration
		warn   bool
	}{{0, true}, {time.Minute, true}, {time.Second, false}} {
		client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ClusterStateReloadInterval: c.reload})
		var logs testlog.Buffer
		p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{Client: client}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		p.Close()
		client.Close()
		if got := strings.Contains(logs.String(), "ClusterStateReloadInterval"); got != c.warn {
			t.Errorf("reload interval %v: warned %v, want %v; logs:\n%s", c.reload, got, c.warn, logs.String())
		}
	}
}
