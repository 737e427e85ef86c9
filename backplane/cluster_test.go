package backplane_test

import (
	"context"
	"testing"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/redistest"
)

func TestRedisClusterSharded(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t, 3)
	ctx := context.Background()
	caches := []string{"users", "orders", "a}b", "sessions", "{x", "products"}
	type pair struct {
		pub, sub *backplane.Redis
		r        *recorder
	}
	pubClient, subClient := cluster.Client(t), cluster.Client(t)
	var pairs []pair
	for _, c := range caches {
		ch := backplane.ChannelName("", c)
		r := newRecorder()
		sub := newRedisBackplane(t, subClient, backplane.RedisOptions{Channel: ch}, r)
		pub := newRedisBackplane(t, pubClient, backplane.RedisOptions{Channel: ch}, nil)
		if !sub.Sharded() || !pub.Sharded() {
			t.Fatal("a cluster client did not select sharded pub/sub")
		}
		pairs = append(pairs, pair{pub, sub, r})
	}
	check := func() {
		t.Helper()
		for i, p := range pairs {
			m := backplane.Message{Kind: backplane.KindSet, Cache: caches[i], Key: "k", Source: "pub", Timestamp: int64(i)}
			publishEventually(t, p.pub, m)
			p.r.wantMessage(t, m) // the first message: nothing leaked from another cache
		}
	}
	check()

	// Every node drops its sharded subscribers: each subscription comes back, with a gap.
	for _, node := range cluster.Nodes() {
		if err := node.Client(t).ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pairs {
		p.r.wantGap(t)
	}
	check()
}
