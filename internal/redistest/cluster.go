package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// clusterSlots is the number of hash slots a healthy cluster covers.
	clusterSlots = 16384
	// clusterCreateTimeout bounds `redis-cli --cluster create`.
	clusterCreateTimeout = time.Minute
	// clusterReadyTimeout bounds the wait for cluster_state:ok on every node.
	clusterReadyTimeout = 20 * time.Second
)

// Cluster is a Redis Cluster started for a test: masters, and replicas when started by
// StartClusterWithReplicas.
type Cluster struct {
	nodes []*Server
}

// StartCluster starts masters redis-server processes (at least 3) with --cluster-enabled yes on
// free loopback ports whose cluster bus ports (port+10000) are free too, creates the cluster
// with `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, and returns once
// CLUSTER INFO says cluster_state:ok with all 16384 slots covered and every node known, on
// every node (and, with replicas, every replica has synced). A t.Cleanup kills all the nodes. StartCluster calls Require first and needs
// redis-cli as well; it fails the test, with the tool's output, when the cluster does not come
// up.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	return startCluster(t, masters, 0)
}

// StartClusterWithReplicas is StartCluster with replicas replicas of each master, and a
// cluster node timeout of 1 s (StartCluster's is 5 s), so that when a master is killed one of
// its replicas takes over within a few seconds. Which node is a master is the cluster's
// choice: ask it (MasterFor).
func StartClusterWithReplicas(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	return startCluster(t, masters, replicas)
}

func startCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	Require(t)
	requireBinary(t, "redis-cli")
	if masters < 3 {
		t.Fatalf("redistest: StartCluster needs at least 3 masters, got %d", masters)
	}
	cfg := config{cluster: true}
	if replicas > 0 {
		// Replicas sync at once (not after diskless sync's 5 s delay): a replica that never
		// synced does not take over.
		cfg.args = []string{"--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0"}
	}
	c := &Cluster{nodes: make([]*Server, masters*(1+replicas))}
	for i := range c.nodes {
		c.nodes[i] = start(t, cfg)
	}

	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterCreateTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "redis-cli", args...)
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	deadline := time.Now().Add(clusterReadyTimeout)
	for {
		err := c.checkReady()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster %v not ready after %v: %v", c.Addrs(), clusterReadyTimeout, err)
		}
		time.Sleep(pollInterval) // polling a condition: the nodes gossip on their own schedule
	}
}

// checkReady returns nil when every node reports a healthy cluster that knows every node.
func (c *Cluster) checkReady() error {
	want := map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_assigned": strconv.Itoa(clusterSlots),
		"cluster_slots_ok":       strconv.Itoa(clusterSlots),
		"cluster_known_nodes":    strconv.Itoa(len(c.nodes)),
	}
	for _, n := range c.nodes {
		info, err := command(n.Addr(), nil, probeTimeout, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", n.Addr(), err)
		}
		for field, v := range want {
			if got, _ := infoField(info, field); got != v {
				return fmt.Errorf("%s: %s is %q, want %q", n.Addr(), field, got, v)
			}
		}
	}
	if len(c.nodes) == 0 {
		return errors.New("no nodes")
	}
	// Every replica has synced with its master.
	for _, n := range c.nodes {
		info, err := command(n.Addr(), nil, probeTimeout, "INFO", "replication")
		if err != nil {
			return fmt.Errorf("%s: INFO replication: %w", n.Addr(), err)
		}
		if role, _ := infoField(info, "role"); role != "slave" {
			continue
		}
		if st, _ := infoField(info, "master_link_status"); st != "up" {
			return fmt.Errorf("%s: replica link %q", n.Addr(), st)
		}
	}
	return nil
}

// MasterFor returns the node that serves key's hash slot now, as the first node that is up
// sees it (CLUSTER SHARDS: the shard's master that is online), or nil when there is none (no
// node answers, or a failover is under way).
func (c *Cluster) MasterFor(key string) *Server {
	for _, n := range c.nodes {
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), DialTimeout: probeTimeout, ReadTimeout: probeTimeout})
		slot, err := cl.ClusterKeySlot(context.Background(), key).Result()
		var shards []redis.ClusterShard
		if err == nil {
			shards, err = cl.ClusterShards(context.Background()).Result()
		}
		_ = cl.Close()
		if err != nil {
			continue // a node that is down
		}
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if r.Start > slot || slot > r.End {
					continue
				}
				for _, node := range sh.Nodes {
					if node.Role != "master" || node.Health != "online" {
						continue
					}
					for _, m := range c.nodes {
						if m.Port() == int(node.Port) {
							return m
						}
					}
				}
			}
		}
	}
	return nil
}

// Addrs returns the nodes' addresses ("127.0.0.1:PORT"), in the order they were started.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes returns the cluster's servers, in the order of Addrs, for fault injection (Kill,
// Suspend, Resume). Restart of a cluster node starts an empty, unconfigured node: the cluster
// does not take it back by itself.
func (c *Cluster) Nodes() []*Server {
	return append([]*Server(nil), c.nodes...)
}

// ClusterOptions returns a fresh copy of go-redis cluster options that connect to the
// cluster (all node addresses as seeds); the caller may change them freely.
func (c *Cluster) ClusterOptions() *redis.ClusterOptions {
	return &redis.ClusterOptions{Addrs: c.Addrs()}
}

// Client returns a new go-redis cluster client for the cluster, closed by t.Cleanup.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cc := redis.NewClusterClient(c.ClusterOptions())
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// ManualFailover promotes replica (a client of a cluster replica) with
// CLUSTER FAILOVER, the coordinated failover, and waits until it is a
// master. Redis abandons a manual failover that does not complete within
// 5 s (the master pauses its clients, the replica catches up): on a
// loaded machine it asks again, as an operator would, for up to a minute.
func ManualFailover(t testing.TB, replica *redis.Client) {
	t.Helper()
	ctx := context.Background()
	var asked time.Time
	EventuallyWithin(t, time.Minute, "the replica to be promoted by CLUSTER FAILOVER", func() bool {
		if info, err := replica.Info(ctx, "replication").Result(); err == nil && strings.Contains(info, "role:master") {
			return true
		}
		if time.Since(asked) > 6*time.Second {
			if err := replica.ClusterFailover(ctx).Err(); err != nil {
				t.Fatalf("CLUSTER FAILOVER: %v", err)
			}
			asked = time.Now()
		}
		return false
	})
}
