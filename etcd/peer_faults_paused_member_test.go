package etcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/tiertest"
)

// watchingMember returns the index, among members, of the one that serves
// the watches counted by want (etcd's watcher gauge), waiting for it.
func watchingMember(t *testing.T, members []*etcdtest.Member) int {
	t.Helper()
	at := -1
	waitFor(t, 10*time.Second, "a member to serve the node's watch", func() bool {
		for i, m := range members {
			if v, err := m.Metric("etcd_debugging_mvcc_watcher_total"); err == nil && v >= 1 {
				at = i
				return true
			}
		}
		return false
	})
	return at
}

// The member that serves a node's watch hangs (SIGSTOP: its connections
// stay open and nothing answers, as with a disk stall or a partition that
// drops packets) while the rest of the cluster has a quorum and another
// node changes a key (etcd's TestWatchKeepAlive, TestBalancerUnderBlackhole:
// a client with several endpoints must leave a member that stopped
// answering). The node was configured with two endpoints, one of them
// healthy: it must hear of the change within a bounded time and stop
// serving its old copy, not serve it for as long as the member is hung.
// Close returns while the member is still hung.
func TestPeerHungMemberUnderWatchIsLeft(t *testing.T) {
	cl := etcdtest.StartCluster(t, 3)
	a := newNode(t, clientOn(t, cl.Members[2].Endpoint()), "users")
	p, err := strata.NewProvider(strata.Settings{Logger: quietLogger(),
		Tier: etcd.Settings(etcd.Config{Endpoints: []string{cl.Members[0].Endpoint(), cl.Members[1].Endpoint()}, DialTimeout: time.Second})})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			p.Close()
		}
	})
	b, err := p.Register("users")
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	if err := hybrid.Set(c, a.c, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v, err := hybrid.GetOrSet(c, b, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "", fmt.Errorf("factory called: etcd holds k")
	}); err != nil || v != "v1" {
		t.Fatalf("b loads %q, %v; want v1", v, err)
	}
	// a's watch is on member 2; b's on member 0 or 1.
	i := watchingMember(t, []*etcdtest.Member{cl.Members[0], cl.Members[1]})
	hung := cl.Members[i]
	hung.Pause(t)
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			hung.Resume(t)
		}
	})
	t0 := time.Now()
	// A write goes through once the other two members have a leader.
	waitFor(t, 15*time.Second, "a's write to be acknowledged", func() bool {
		return hybrid.Set(context.Background(), a.c, "k", "v2") == nil
	})
	t.Logf("member %d hung; write acknowledged after %s", i, time.Since(t0))
	waitFor(t, 40*time.Second, "b to stop serving v1 while its watch's member hangs", func() bool {
		v, ok, _ := hybrid.TryGet[string](context.Background(), b, "k")
		return ok && v == "v2"
	})
	t.Logf("b serves v2 after %s", time.Since(t0))
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		closed = true
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Close did not return within 15 s with a member hung")
	}
	hung.Resume(t)
	resumed = true
}

// The only member hangs (SIGSTOP) under a node that keeps working: its
// calls end at the L2 timeouts and the factory answers; Close, with the
// member still hung, returns and leaves nothing running (the watch, its
// retries, gRPC's keepalive and transports).
func TestPeerCloseWhileMemberHung(t *testing.T) {
	m := etcdtest.Start(t)
	opts := goleak.IgnoreCurrent() // the member's process is the test's, not the tier's
	d := tiertest.Defaults()
	d.Entry.L2SoftTimeout = 200 * time.Millisecond
	d.Entry.L2HardTimeout = 400 * time.Millisecond
	p, err := strata.NewProvider(strata.Settings{Tier: etcd.Settings(etcd.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: time.Second}),
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
	watchingMember(t, []*etcdtest.Member{m})
	m.Pause(t)
	t.Cleanup(func() { m.Resume(t) })
	v, err := hybrid.GetOrSet(context.Background(), c, "cold", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "factory", nil
	})
	if err != nil || v != "factory" {
		t.Fatalf("GetOrSet with the member hung = %q, %v; want the factory's value", v, err)
	}
	hybrid.Set(context.Background(), c, "w", "x") // queued for recovery
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s with the member hung")
	}
	goleak.VerifyNone(t, opts)
}
