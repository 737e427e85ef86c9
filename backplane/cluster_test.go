package backplane_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

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

// TestRedisClusterSlotMigration moves the slot of a channel to another master: the old
// owner drops the sharded subscription (sunsubscribe), and the backplane must subscribe
// again on the new owner and report a gap.
func TestRedisClusterSlotMigration(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t, 3)
	ctx := context.Background()
	ch := backplane.ChannelName("", "users")
	r := newRecorder()
	sub := newRedisBackplane(t, cluster.Client(t), backplane.RedisOptions{Channel: ch}, r)
	pub := newRedisBackplane(t, cluster.Client(t), backplane.RedisOptions{Channel: ch}, nil)

	nodes := cluster.Nodes()
	clients := make([]*redis.Client, len(nodes))
	ids := make([]string, len(nodes))
	src := -1
	for i, n := range nodes {
		clients[i] = n.Client(t)
		id, err := clients[i].Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		subs, err := clients[i].PubSubShardNumSub(ctx, ch).Result()
		if err != nil {
			t.Fatal(err)
		}
		if subs[ch] == 1 {
			src = i
		}
	}
	if src < 0 {
		t.Fatal("no node holds the sharded subscription")
	}
	dst := (src + 1) % len(nodes)
	slot, err := clients[0].ClusterKeySlot(ctx, ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		node int
		args []any
	}{
		{dst, []any{"CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src]}},
		{src, []any{"CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst]}},
		{dst, []any{"CLUSTER", "SETSLOT", slot, "NODE", ids[dst]}},
		{src, []any{"CLUSTER", "SETSLOT", slot, "NODE", ids[dst]}},
	}
	for i := range nodes {
		if i != src && i != dst {
			steps = append(steps, struct {
				node int
				args []any
			}{i, []any{"CLUSTER", "SETSLOT", slot, "NODE", ids[dst]}})
		}
	}
	for _, s := range steps {
		if err := clients[s.node].Do(ctx, s.args...).Err(); err != nil {
			t.Fatalf("%v on node %d: %v", s.args, s.node, err)
		}
	}
	r.wantGap(t)
	eventually(t, "the subscription on the new owner", func() bool {
		subs, err := clients[dst].PubSubShardNumSub(ctx, ch).Result()
		return err == nil && subs[ch] == 1
	})
	m := msg(backplane.KindSet, "after-migration")
	publishEventually(t, pub, m)
	r.wantMessage(t, m)
	if st := sub.Stats(); st.Resubscribes < 1 {
		t.Errorf("Stats = %+v, want a resubscribe", st)
	}
}
