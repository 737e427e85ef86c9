package etcd_test

// Scenarios ported from etcd clientv3's integration tests (watch resume
// after compaction, watch across a member restart and a leader change,
// lease revocation, txn compare semantics) and applied to what the tier
// promises in docs/etcd.md: no lost change, newest wins, calm under
// faults, Close ends everything, bad input refused cleanly.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/tiertest"
)

// leaderIndex returns the index of the cluster's leader among its members.
func leaderIndex(t testing.TB, cl *etcdtest.Cluster, cli *clientv3.Client) int {
	t.Helper()
	for i, m := range cl.Members {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cli.Status(c, m.Endpoint())
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatal("no leader")
	return -1
}

// A member restarted while a node is cut off from it, with the history
// compacted meanwhile (clientv3's TestWatchCompactRevision,
// TestWatchResumeCompacted): the node reports one gap and serves neither
// the old value of a key changed in the gap nor an entry whose tag was
// invalidated in the gap.
func TestPeerCompactionAcrossMemberRestart(t *testing.T) {
	cl := etcdtest.StartCluster(t, 3)
	b := newNode(t, clientOn(t, cl.Members[0].Endpoint()), "feed")
	writer := clientOn(t, cl.Members[1].Endpoint())
	a := newNode(t, writer, "feed")
	c := ctx(t)
	for _, k := range []string{"k", "tagged"} {
		if err := hybrid.Set(c, a.c, k, "v1", hybrid.WithTags("t")); err != nil {
			t.Fatal(err)
		}
		if v := load(t, b, k); v != "v1" {
			t.Fatalf("b reads %q", v)
		}
	}
	cl.Members[0].Kill()
	if err := hybrid.Set(c, a.c, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := a.c.RemoveByTag(c, "t"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		hybrid.Set(c, a.c, fmt.Sprint("other", i), "x")
	}
	etcdtest.Compact(t, writer)
	cl.Members[0].Restart(t)
	// The restarted member may replay the writes before it applies the
	// compaction (the watch then receives them: no gap), or after (a gap):
	// either way b must not serve what changed.
	t0 := time.Now()
	waitFor(t, 20*time.Second, "b to learn of the changes made while its member was down", func() bool {
		v, ok := get(t, b, "k")
		_, tagged := get(t, b, "tagged")
		return ok && v == "v2" && !tagged
	})
	t.Logf("b caught up after %s: %+v", time.Since(t0), b.bp.Stats())
	hybrid.Set(c, a.c, "k", "v3")
	waitFor(t, 5*time.Second, "b to hear of v3", func() bool { v, _ := get(t, b, "k"); return v == "v3" })
	// Without a gap, every record is delivered, in revision order: 2
	// before the outage, 22 during it (k, the tag's record, 20 others), v3
	// after. (b may read v3 from etcd before its record arrives: the
	// restarted member replays its log while it serves the watch.)
	waitFor(t, 20*time.Second, "every record or a gap", func() bool {
		st := b.bp.Stats()
		return st.Gaps >= 1 || st.Received >= 25
	})
	if st := b.bp.Stats(); st.Gaps > 1 || st.Gaps == 0 && st.Received != 25 {
		t.Fatalf("b: %d records received of 25, %d gaps; want all of them, or one gap", st.Received, st.Gaps)
	}
}

// The leader killed while one node writes 100 changes through the others
// (clientv3's TestWatchWithRequireLeader / leader change tests): a node
// watching a follower receives every change and reports no gap.
func TestPeerLeaderChangeLosesNothing(t *testing.T) {
	cl := etcdtest.StartCluster(t, 3)
	all := cl.Client(t)
	lead := leaderIndex(t, cl, all)
	follower := (lead + 1) % 3
	b := newNode(t, clientOn(t, cl.Members[follower].Endpoint()), "feed")
	// The writer's breaker is off, so that every retried write goes to etcd.
	al2, abp, err := etcd.Open(all, etcd.Options{KeyPrefix: "feed:", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := hybrid.New(hybrid.Options{Name: "feed", L2: al2, Backplane: abp, Logger: quietLogger(), DisableL2CircuitBreaker: true,
		Entry: hybrid.EntryOptions{Duration: time.Hour}, WaitForInitialBackplaneSubscribe: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	a := &node{c: ac, bp: abp, l2: al2}
	c := ctx(t)
	const n = 100
	for i := range n {
		if err := hybrid.Set(c, a.c, fmt.Sprint("k", i), "v1"); err != nil {
			t.Fatal(err)
		}
		load(t, b, fmt.Sprint("k", i))
	}
	before := b.bp.Stats().Received
	cl.Members[lead].Kill()
	for i := range n {
		// A write that finds no leader fails; the test retries it, so that
		// every change reaches etcd.
		l2 := a.l2
		waitFor(t, 10*time.Second, "a write to go through", func() bool {
			if err := hybrid.Set(c, a.c, fmt.Sprint("k", i), "v2"); err != nil {
				return false
			}
			v, err := l2.Get(context.Background(), "feed:"+fmt.Sprint("k", i))
			return err == nil && v != nil && strings.Contains(string(v), "v2")
		})
	}
	cl.Members[lead].Restart(t)
	waitFor(t, 20*time.Second, "b to receive every change", func() bool {
		for i := range n {
			if v, _ := get(t, b, fmt.Sprint("k", i)); v != "v2" {
				return false
			}
		}
		return true
	})
	if st := b.bp.Stats(); st.Gaps != 0 || st.Received-before < n {
		t.Fatalf("b: %d received of %d, %d gaps; want all, no gap", st.Received-before, n, st.Gaps)
	}
}

// Two nodes on two members write one key concurrently (clientv3's txn
// compare tests, applied to newest wins): etcd keeps the newest write and
// both memory tiers end up with it.
func TestPeerConcurrentNodesNewestWins(t *testing.T) {
	cl := etcdtest.StartCluster(t, 3)
	nodes := []*node{newNode(t, clientOn(t, cl.Members[0].Endpoint()), "users"), newNode(t, clientOn(t, cl.Members[1].Endpoint()), "users")}
	c := ctx(t)
	var wg sync.WaitGroup
	for ni, n := range nodes {
		for g := range 3 {
			wg.Go(func() {
				for i := range 20 {
					if err := hybrid.Set(c, n.c, "k", fmt.Sprintf("n%d-g%d-%d", ni, g, i)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	raw := cl.Members[2].Client(t)
	resp, err := raw.Get(c, "users:k")
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatal(resp, err)
	}
	stored := tsOf(t, resp.Kvs[0].Value)
	want := load(t, newNode(t, raw, "users"), "k")
	for i, n := range nodes {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to hold %q (ts %d)", i, want, stored), func() bool {
			v, _ := get(t, n, "k")
			return v == want
		})
	}
}

// The lease of a bucket revoked by an operator (clientv3's lease revoke
// tests): the keys on it are gone, and the next write of that lifetime
// grants a new lease and succeeds.
func TestPeerRevokedLeaseWriteRecovers(t *testing.T) {
	m := etcdtest.Start(t)
	cli := m.Client(t)
	l2, err := etcd.NewL2(cli, etcd.L2Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	if w, err := l2.Set(c, "a", env(time.Now().UnixNano(), []byte("1")), time.Hour); !w || err != nil {
		t.Fatal(w, err)
	}
	resp, err := cli.Get(c, "a")
	if err != nil || len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("a has no lease: %v, %v", resp, err)
	}
	if _, err := cli.Revoke(c, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	if w, err := l2.Set(c, "b", env(time.Now().UnixNano(), []byte("2")), time.Hour); !w || err != nil {
		t.Fatalf("Set after the bucket's lease was revoked = %v, %v; want written", w, err)
	}
	resp, err = cli.Get(c, "b")
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("b is missing: %v", err)
	}
	ttl, err := cli.TimeToLive(c, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("b's lease: %+v, %v; want a live lease", ttl, err)
	}
}

// Fail-safe while etcd is down: the cache keeps answering with the stale
// value, without error and within its timeouts; once etcd is back, a write
// reaches it again.
func TestPeerFailSafeWhileMemberDown(t *testing.T) {
	m := etcdtest.Start(t)
	d := tiertest.Defaults()
	d.Entry.Duration = 300 * time.Millisecond
	d.Entry.JitterMaxDuration = 0
	d.Entry.FailSafeThrottleDuration = 200 * time.Millisecond
	d.L2CircuitBreakerDuration = 500 * time.Millisecond
	p := newProvider(t, strata.Settings{Tier: etcd.Settings(etcd.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: time.Second}), Defaults: &d})
	cache := register(t, p, "users")
	c := ctx(t)
	fail := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "", errors.New("database down")
	}
	if v, err := hybrid.GetOrSet(c, cache, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "v1", nil }); err != nil || v != "v1" {
		t.Fatal(v, err)
	}
	m.Kill()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		t0 := time.Now()
		v, err := hybrid.GetOrSet(c, cache, "k", fail)
		if err != nil || v != "v1" {
			t.Fatalf("GetOrSet with etcd down = %q, %v; want the stale v1 and no error", v, err)
		}
		if d := time.Since(t0); d > 3*time.Second {
			t.Fatalf("GetOrSet with etcd down took %s", d)
		}
		time.Sleep(50 * time.Millisecond) // paces the calls across expiries
	}
	m.Restart(t)
	raw := m.Client(t)
	waitFor(t, 30*time.Second, "a write to reach etcd after the restart", func() bool {
		hybrid.Set(context.Background(), cache, "after", "up")
		resp, err := raw.Get(context.Background(), "users:after")
		return err == nil && len(resp.Kvs) == 1
	})
	waitFor(t, 30*time.Second, "a new value to be loaded after the restart", func() bool {
		v, err := hybrid.GetOrSet(c, cache, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "v2", nil })
		return err == nil && v == "v2"
	})
}

// Close while etcd is down (also with a tier that authenticates, whose
// client is still being created) returns promptly and ends every
// goroutine.
func TestPeerCloseWhileMemberDown(t *testing.T) {
	opts := goleak.IgnoreCurrent()
	m := etcdtest.Start(t)
	p, err := strata.NewProvider(strata.Settings{Tier: etcd.Settings(etcd.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: time.Second}), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Register("users")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Register("auth", func(s *strata.CacheSettings) {
		s.Tier = etcd.Settings(etcd.Config{Endpoints: []string{m.Endpoint()}, Username: "u", Password: "p", DialTimeout: time.Second})
	}); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx(t), c, "k", "v"); err != nil {
		t.Fatal(err)
	}
	m.Kill()
	hybrid.Set(context.Background(), c, "k2", "v")
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s with etcd down")
	}
	goleak.VerifyNone(t, opts)
}

// Bad input: a value above the request limit is refused at once with
// ErrValueTooLarge and changes nothing; keys with odd bytes round-trip
// between nodes; a cancelled context returns context.Canceled and leaves
// the breaker closed.
func TestPeerBadInput(t *testing.T) {
	m := etcdtest.Start(t)
	p1 := newProvider(t, strata.Settings{Tier: etcd.Settings(etcd.Config{Endpoints: []string{m.Endpoint()}})})
	p2 := newProvider(t, strata.Settings{Tier: etcd.Settings(etcd.Config{Endpoints: []string{m.Endpoint()}})})
	a, b := register(t, p1, "users"), register(t, p2, "users")
	c := ctx(t)
	big := strings.Repeat("x", 2<<20)
	if err := hybrid.Set(c, a, "big", big); !errors.Is(err, hybrid.ErrValueTooLarge) {
		t.Fatalf("Set of 2 MiB = %v; want ErrValueTooLarge", err)
	}
	if _, ok, _ := hybrid.TryGet[string](c, b, "big"); ok {
		t.Fatal("the refused value is readable on another node")
	}
	for _, k := range []string{"nul\x00key", "bad\xff\xfeutf8", "ok/é\n\t key"} {
		if err := hybrid.Set(c, a, k, "odd"); err != nil {
			t.Fatalf("Set %q: %v", k, err)
		}
		v, ok, err := hybrid.TryGet[string](c, b, k)
		if err != nil || !ok || v != "odd" {
			t.Fatalf("b reads %q = %q, %v, %v", k, v, ok, err)
		}
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := hybrid.Set(cancelled, a, "ok/é\n\t key", "cancelled"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Set with a cancelled context = %v; want context.Canceled", err)
	}
	raw := m.Client(t)
	resp, err := raw.Get(c, "users:ok/é\n\t key")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(resp, err)
	}
	if e, err := envelope.Decode(resp.Kvs[0].Value); err != nil || strings.Contains(string(e.Value), "cancelled") {
		t.Fatalf("a Set with a cancelled context changed etcd: %q, %v", e.Value, err)
	}
	if st := a.Stats(); st.L2CircuitOpen || st.ConfigErrors != 0 {
		t.Fatalf("after a cancelled call: breaker open %v, %d config errors", st.L2CircuitOpen, st.ConfigErrors)
	}
}
