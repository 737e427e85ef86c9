package backplane_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/testlog"
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

	mig := newSlotMigration(t, cluster, ch)
	mig.prepare(t)
	mig.finish(t)
	r.wantGap(t)
	redistest.Eventually(t, "the subscription on the new owner", func() bool {
		subs, err := mig.clients[mig.dst].PubSubShardNumSub(ctx, ch).Result()
		return err == nil && subs[ch] == 1
	})
	m := msg(backplane.KindSet, "after-migration")
	publishEventually(t, pub, m)
	r.wantMessage(t, m)
	if st := sub.Stats(); st.Resubscribes < 1 {
		t.Errorf("Stats = %+v, want a resubscribe", st)
	}
}

// TestRedisClusterFailoverResubscribesOnNewMaster: a manual failover of the master that
// holds the channel's sharded subscription. The old master drops it (sunsubscribe) once it
// is a replica; the backplane must subscribe again on the new master, not on the old one
// that its stale slot map still names: the old master, now a replica, confirms a
// subscription but gets nothing the new master publishes until that master has learnt of
// its replica (0.15-0.3 s here), and those messages were lost after the gap. So every
// message published on the new master after the gap must arrive.
func TestRedisClusterFailoverResubscribesOnNewMaster(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartClusterWithReplicas(t, 3, 1)
	ctx := context.Background()
	ch := backplane.ChannelName("", "users")
	r := newRecorder()
	newRedisBackplane(t, cluster.Client(t), backplane.RedisOptions{Channel: ch}, r)
	master := cluster.MasterFor(ch)
	var replica *redis.Client
	for _, n := range cluster.Nodes() {
		c := n.Client(t)
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, fmt.Sprintf("master_port:%d\r", master.Port())) {
			replica = c
		}
	}
	if replica == nil {
		t.Fatalf("no replica of %s", master.Addr())
	}

	// (On a loaded machine Redis abandoned the failover, and no gap came:
	// ManualFailover asks again.)
	redistest.ManualFailover(t, replica)
	r.wantGap(t)
	for i := range 30 {
		m := msg(backplane.KindSet, fmt.Sprint("after-failover-", i))
		if err := replica.SPublish(ctx, ch, m.AppendBinary(nil)).Err(); err != nil {
			t.Fatalf("SPUBLISH on the new master: %v", err)
		}
		r.wantMessage(t, m)
		time.Sleep(10 * time.Millisecond) // spread over the old master's blind window
	}
}

// TestRedisCloseDuringResubscribe closes the backplane while it resubscribes after a
// slot migration to a master that does not answer (suspended): Close must return, not
// wait forever for the reader, which needs the backplane's lock to finish the
// replacement (the reader held up in the new subscription, Close holding the lock).
func TestRedisCloseDuringResubscribe(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t, 3)
	ch := backplane.ChannelName("", "users")
	logs := &testlog.Buffer{}
	client := cluster.Client(t)
	bp, err := backplane.NewRedis(client, backplane.RedisOptions{
		Channel: ch, Logger: slog.New(slog.NewTextHandler(logs, nil)), SubscribeTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bp.Subscribe(newRecorder()); err != nil {
		t.Fatal(err)
	}

	mig := newSlotMigration(t, cluster, ch)
	mig.prepare(t)
	target := cluster.Nodes()[mig.dst]
	target.Suspend(t)
	resumed := false
	defer func() {
		if !resumed {
			target.Resume(t)
		}
	}()
	mig.finish(t)
	redistest.Eventually(t, "the resubscription to start", func() bool {
		return strings.Contains(logs.String(), "resubscribing")
	})

	closed := make(chan struct{})
	go func() {
		bp.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return while a resubscription was in progress (deadlock)")
	}
	target.Resume(t)
	resumed = true
}

// slotMigration moves the slot of a channel from the master that holds the channel's
// sharded subscription (src) to the next one (dst), in two halves, so that a test can
// act between them: prepare makes dst the owner on dst itself; finish tells src and the
// other masters, upon which src drops its sharded subscribers (sunsubscribe).
type slotMigration struct {
	clients  []*redis.Client
	ids      []string
	src, dst int
	slot     int64
}

func newSlotMigration(t *testing.T, cluster *redistest.Cluster, ch string) *slotMigration {
	t.Helper()
	ctx := context.Background()
	nodes := cluster.Nodes()
	m := &slotMigration{clients: make([]*redis.Client, len(nodes)), ids: make([]string, len(nodes)), src: -1}
	for i, n := range nodes {
		m.clients[i] = n.Client(t)
		id, err := m.clients[i].Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		m.ids[i] = id
		subs, err := m.clients[i].PubSubShardNumSub(ctx, ch).Result()
		if err != nil {
			t.Fatal(err)
		}
		if subs[ch] == 1 {
			m.src = i
		}
	}
	if m.src < 0 {
		t.Fatal("no node holds the sharded subscription")
	}
	m.dst = (m.src + 1) % len(nodes)
	slot, err := m.clients[0].ClusterKeySlot(ctx, ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	m.slot = slot
	return m
}

func (m *slotMigration) do(t *testing.T, node int, args ...any) {
	t.Helper()
	if err := m.clients[node].Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("%v on node %d: %v", args, node, err)
	}
}

func (m *slotMigration) prepare(t *testing.T) {
	t.Helper()
	m.do(t, m.dst, "CLUSTER", "SETSLOT", m.slot, "IMPORTING", m.ids[m.src])
	m.do(t, m.src, "CLUSTER", "SETSLOT", m.slot, "MIGRATING", m.ids[m.dst])
	m.do(t, m.dst, "CLUSTER", "SETSLOT", m.slot, "NODE", m.ids[m.dst])
}

func (m *slotMigration) finish(t *testing.T) {
	t.Helper()
	m.do(t, m.src, "CLUSTER", "SETSLOT", m.slot, "NODE", m.ids[m.dst])
	for i := range m.clients {
		if i != m.src && i != m.dst {
			m.do(t, i, "CLUSTER", "SETSLOT", m.slot, "NODE", m.ids[m.dst])
		}
	}
}
