package etcd_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/tcpproxy"
)

// node is one process's cache on etcd.
type node struct {
	c  *hybrid.Cache
	bp *etcd.Backplane
	l2 *etcd.L2
}

func newNode(t testing.TB, cli *clientv3.Client, name string) *node {
	t.Helper()
	l2, bp, err := etcd.Open(cli, etcd.Options{KeyPrefix: name + ":", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	// Subscribed before New returns: a write made right after it is heard
	// (a watch that starts later begins after that write).
	c, err := hybrid.New(hybrid.Options{Name: name, L2: l2, Backplane: bp, Logger: quietLogger(),
		Entry: hybrid.EntryOptions{Duration: time.Hour}, WaitForInitialBackplaneSubscribe: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &node{c: c, bp: bp, l2: l2}
}

func clientOn(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func get(t testing.TB, n *node, key string) (string, bool) {
	t.Helper()
	v, ok, err := hybrid.TryGet[string](context.Background(), n.c, key)
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

func load(t testing.TB, n *node, key string) string {
	t.Helper()
	v, err := hybrid.GetOrSet(context.Background(), n.c, key, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "", fmt.Errorf("factory called for %q: L2 should have it", key)
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBackplaneThreeNodes(t *testing.T) {
	cl := etcdtest.StartCluster(t, 3)
	var nodes []*node
	for _, m := range cl.Members {
		nodes = append(nodes, newNode(t, m.Client(t), "users"))
	}
	a, others := nodes[0], nodes[1:]
	c := ctx(t)
	if err := hybrid.Set(c, a.c, "k", "v1", hybrid.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	for _, n := range others {
		if v := load(t, n, "k"); v != "v1" {
			t.Fatalf("read %q; want v1", v)
		}
	}
	if err := hybrid.Set(c, a.c, "k", "v2", hybrid.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	for i, n := range others {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to see v2", i+1), func() bool { v, _ := get(t, n, "k"); return v == "v2" })
	}
	// Only the L2 write announced the change: one record per change.
	if p := a.bp.Stats().Published; p != 0 {
		t.Errorf("the backplane published %d messages itself; the L2 writes announce them", p)
	}
	if err := a.c.RemoveByTagWith(c, hybrid.DeleteTagged, "t"); err != nil {
		t.Fatal(err)
	}
	for i, n := range others {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to drop the tagged entry", i+1), func() bool { _, ok := get(t, n, "k"); return !ok })
	}
	hybrid.Set(c, a.c, "x", "1")
	for _, n := range others {
		load(t, n, "x")
	}
	if err := a.c.Remove(c, "x"); err != nil {
		t.Fatal(err)
	}
	for i, n := range others {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to drop the removed entry", i+1), func() bool { _, ok := get(t, n, "x"); return !ok })
	}
	for _, n := range nodes {
		if g := n.bp.Stats().Gaps; g != 0 {
			t.Errorf("%d gaps reported without a fault", g)
		}
	}
}

func TestBackplaneMemberRestartLosesNothing(t *testing.T) {
	cl := etcdtest.StartCluster(t, 3)
	b := newNode(t, clientOn(t, cl.Members[0].Endpoint()), "feed") // connected to member 0 only
	a := newNode(t, clientOn(t, cl.Members[1].Endpoint()), "feed")
	c := ctx(t)
	const n = 200
	for i := range n {
		if err := hybrid.Set(c, a.c, fmt.Sprintf("k%d", i), "v1"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "b to receive the first writes", func() bool { return b.bp.Stats().Received >= n })
	for i := range n {
		load(t, b, fmt.Sprintf("k%d", i))
	}
	before := b.bp.Stats().Received

	cl.Members[0].Kill()
	for i := range n {
		if err := hybrid.Set(c, a.c, fmt.Sprintf("k%d", i), "v2"); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	cl.Members[0].Restart(t)
	t.Logf("restart took %s", time.Since(t0))
	t0 = time.Now()
	defer func() { t.Logf("catch-up took %s", time.Since(t0)) }()
	waitFor(t, 15*time.Second, "b to receive every change written while its member was down", func() bool {
		return b.bp.Stats().Received-before >= n
	})
	lost := 0
	for i := range n {
		if v, _ := get(t, b, fmt.Sprintf("k%d", i)); v != "v2" {
			lost++
		}
	}
	st := b.bp.Stats()
	t.Logf("received %d of %d changes written during the outage, %d lost, %d gaps", st.Received-before, n, lost, st.Gaps)
	if lost != 0 {
		t.Errorf("%d of %d changes lost across the restart", lost, n)
	}
	if st.Received-before != n {
		t.Errorf("received %d changes; want exactly %d", st.Received-before, n)
	}
	if st.Gaps != 0 {
		t.Errorf("%d gaps reported; the history was not compacted", st.Gaps)
	}
}

func TestBackplaneCompactionIsAGap(t *testing.T) {
	m := etcdtest.Start(t)
	proxy, err := tcpproxy.New(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	b := newNode(t, clientOn(t, "http://"+proxy.Addr()), "gap")
	writer := m.Client(t)
	a := newNode(t, writer, "gap")
	c := ctx(t)
	hybrid.Set(c, a.c, "k", "v1")
	waitFor(t, 5*time.Second, "b to hear of v1", func() bool { return b.bp.Stats().Received >= 1 })
	if v := load(t, b, "k"); v != "v1" {
		t.Fatalf("b read %q", v)
	}

	proxy.Pause()
	proxy.ResetAll() // b is cut off; it reconnects only after Resume
	hybrid.Set(c, a.c, "k", "v2")
	for i := range 20 {
		hybrid.Set(c, a.c, fmt.Sprintf("other%d", i), "x")
	}
	etcdtest.Compact(t, writer)
	if g := b.bp.Stats().Gaps; g != 0 {
		t.Fatalf("gap reported before the reconnect: %d", g)
	}
	proxy.Resume()
	waitFor(t, 15*time.Second, "b to report a gap after the reconnect", func() bool { return b.bp.Stats().Gaps >= 1 })
	if v, ok := get(t, b, "k"); !ok || v != "v2" {
		t.Fatalf("after the gap b serves %q (found %v); want v2: the stale copy must be verified", v, ok)
	}
	// Delivery goes on after the gap.
	hybrid.Set(c, a.c, "k", "v3")
	waitFor(t, 5*time.Second, "b to hear of v3", func() bool { v, _ := get(t, b, "k"); return v == "v3" })
}

func TestBackplanePublishWithoutL2(t *testing.T) {
	m := etcdtest.Start(t)
	cli := m.Client(t)
	mk := func() (*hybrid.Cache, *etcd.Backplane) {
		_, bp, err := etcd.Open(cli, etcd.Options{KeyPrefix: "mem:", DisableL2: true, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		c, err := hybrid.New(hybrid.Options{Name: "mem", Backplane: bp, Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Hour}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bp
	}
	a, abp := mk()
	b, _ := mk()
	c := ctx(t)
	// A new key is admitted by the memory tier asynchronously (and may be
	// refused): set it until it is held.
	waitFor(t, 5*time.Second, "b to hold its copy", func() bool {
		if _, ok, _ := hybrid.TryGet[string](c, b, "k"); ok {
			return true
		}
		hybrid.Set(c, b, "k", "local")
		return false
	})
	// Without a distributed tier the cache publishes removals itself.
	a.Remove(c, "k")
	waitFor(t, 5*time.Second, "b to drop its copy", func() bool {
		_, ok, _ := hybrid.TryGet[string](c, b, "k")
		return !ok
	})
	if abp.Stats().Published != 1 {
		t.Fatalf("Published = %d; want 1 (no L2: the cache publishes)", abp.Stats().Published)
	}
}

func TestBackplaneBadOptions(t *testing.T) {
	m := etcdtest.Start(t)
	cli := m.Client(t)
	if _, err := etcd.NewBackplane(cli, etcd.BackplaneOptions{}); err == nil || !strings.Contains(err.Error(), "FeedKey") {
		t.Fatalf("empty FeedKey: %v", err)
	}
	if _, err := etcd.NewBackplane(nil, etcd.BackplaneOptions{FeedKey: "f"}); err == nil {
		t.Fatal("nil client accepted")
	}
	if _, _, err := etcd.Open(cli, etcd.Options{}); err == nil {
		t.Fatal("empty KeyPrefix accepted")
	}
}
