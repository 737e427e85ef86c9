package etcd_test

// Several caches (nodes) over one etcd: changes made on any node reach the
// others (docs/etcd.md, "The change feed"), batch operations go through
// the tier like single ones, and caches of different names stay apart.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
)

// huntMiss waits until every node misses key (TryGet, L2 allowed).
func huntMiss(t *testing.T, nodes []*node, key, why string) {
	t.Helper()
	for i, n := range nodes {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to miss %q after %s", i, key, why), func() bool { _, ok := get(t, n, key); return !ok })
	}
}

// huntSees waits until every node reads want for key (TryGet, L2 allowed).
func huntSees(t *testing.T, nodes []*node, key, want string) {
	t.Helper()
	for i, n := range nodes {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to read %q=%q", i, key, want), func() bool { v, ok := get(t, n, key); return ok && v == want })
	}
}

// Set, Expire, RemoveByTag, Remove and Clear, each from another node of
// three over one member: every node converges, and no gap is reported.
func TestHuntEtcdNodesConvergeOnEveryKindOfChange(t *testing.T) {
	m := etcdtest.Start(t)
	var nodes []*node
	for range 3 {
		nodes = append(nodes, newNode(t, clientOn(t, m.Endpoint()), "conv"))
	}
	c := ctx(t)
	hold := func(keys ...string) {
		t.Helper()
		for _, n := range nodes {
			for _, k := range keys {
				load(t, n, k)
			}
		}
	}

	// Set from node 0, then a newer Set from node 1.
	if err := hybrid.Set(c, nodes[0].c, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	hold("k")
	if err := hybrid.Set(c, nodes[1].c, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	huntSees(t, nodes, "k", "v2")

	// Expire from node 2 (no fail-safe): a miss everywhere.
	if err := nodes[2].c.Expire(c, "k"); err != nil {
		t.Fatal(err)
	}
	huntMiss(t, nodes, "k", "node 2's Expire")

	// RemoveByTag from node 1 of entries node 0 wrote.
	for _, k := range []string{"t1", "t2"} {
		if err := hybrid.Set(c, nodes[0].c, k, "tagged", hybrid.WithTags("tag")); err != nil {
			t.Fatal(err)
		}
	}
	if err := hybrid.Set(c, nodes[0].c, "untagged", "u"); err != nil {
		t.Fatal(err)
	}
	hold("t1", "t2", "untagged")
	if err := nodes[1].c.RemoveByTag(c, "tag"); err != nil {
		t.Fatal(err)
	}
	huntMiss(t, nodes, "t1", "RemoveByTag")
	huntMiss(t, nodes, "t2", "RemoveByTag")
	huntSees(t, nodes, "untagged", "u")

	// Remove from node 0 of a key node 2 wrote.
	if err := hybrid.Set(c, nodes[2].c, "r", "x"); err != nil {
		t.Fatal(err)
	}
	hold("r")
	if err := nodes[0].c.Remove(c, "r"); err != nil {
		t.Fatal(err)
	}
	huntMiss(t, nodes, "r", "Remove")

	// Clear from node 2: everything goes, on every node.
	for i, n := range nodes {
		if err := hybrid.Set(c, n.c, fmt.Sprint("c", i), "before"); err != nil {
			t.Fatal(err)
		}
	}
	hold("c0", "c1", "c2", "untagged")
	if err := nodes[2].c.Clear(c, false); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"c0", "c1", "c2", "untagged"} {
		huntMiss(t, nodes, k, "Clear")
	}
	// A write after the Clear is served everywhere.
	if err := hybrid.Set(c, nodes[1].c, "c1", "after"); err != nil {
		t.Fatal(err)
	}
	huntSees(t, nodes, "c1", "after")
	for i, n := range nodes {
		if g := n.bp.Stats().Gaps; g != 0 {
			t.Errorf("node %d: %d gaps without a fault", i, g)
		}
		if st := n.c.Stats(); st.L2Errors != 0 {
			t.Errorf("node %d: %d L2 errors", i, st.L2Errors)
		}
	}
}

// SetMany, TryGetMany, GetOrSetMany and RemoveMany through the tier, over
// three nodes.
func TestHuntEtcdBatchAcrossNodes(t *testing.T) {
	m := etcdtest.Start(t)
	var nodes []*node
	for range 3 {
		nodes = append(nodes, newNode(t, clientOn(t, m.Endpoint()), "batch"))
	}
	c := ctx(t)
	const n = 60
	keys := make([]string, n)
	vals := map[string]string{}
	for i := range keys {
		keys[i] = fmt.Sprint("b", i)
		vals[keys[i]] = "v1-" + keys[i]
	}
	if err := hybrid.SetMany(c, nodes[0].c, vals); err != nil {
		t.Fatal(err)
	}
	// Node 1 finds every key in etcd with one batch read.
	res, err := hybrid.TryGetMany[string](c, nodes[1].c, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || !r.Found || r.Value != vals[keys[i]] {
			t.Fatalf("node 1 TryGetMany %s = %+v; want %q", keys[i], r, vals[keys[i]])
		}
	}
	// Node 2 loads them: the factory is not asked for any.
	res, err = hybrid.GetOrSetMany(c, nodes[2].c, keys, func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		return nil, fmt.Errorf("factory asked for %d keys: etcd holds them", len(bc.Keys()))
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || !r.Found || r.Value != vals[keys[i]] {
			t.Fatalf("node 2 GetOrSetMany %s = %+v; want %q", keys[i], r, vals[keys[i]])
		}
	}
	// A second batch write from node 1 replaces every node's copy.
	for k := range vals {
		vals[k] = "v2-" + k
	}
	if err := hybrid.SetMany(c, nodes[1].c, vals); err != nil {
		t.Fatal(err)
	}
	for i, nd := range nodes {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to read every v2", i), func() bool {
			res, err := hybrid.TryGetMany[string](c, nd.c, keys)
			if err != nil {
				t.Fatal(err)
			}
			for j, r := range res {
				if !r.Found || r.Value != vals[keys[j]] {
					return false
				}
			}
			return true
		})
	}
	// RemoveMany of half the keys from node 2: every node misses them and
	// keeps the rest.
	removed := keys[:n/2]
	if err := nodes[2].c.RemoveMany(c, removed); err != nil {
		t.Fatal(err)
	}
	for i, nd := range nodes {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to miss the removed keys", i), func() bool {
			res, err := hybrid.TryGetMany[string](c, nd.c, keys)
			if err != nil {
				t.Fatal(err)
			}
			for j, r := range res {
				if want := j >= n/2; r.Found != want || (want && r.Value != vals[keys[j]]) {
					return false
				}
			}
			return true
		})
	}
	// Node 0 loads the removed keys again: the factory is asked for them
	// alone.
	var asked int
	res, err = hybrid.GetOrSetMany(c, nodes[0].c, keys, func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		asked = len(bc.Keys())
		out := map[string]string{}
		for _, k := range bc.Keys() {
			out[k] = "v3-" + k
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if asked != n/2 {
		t.Errorf("factory asked for %d keys; want the %d removed", asked, n/2)
	}
	for j, r := range res {
		want := vals[keys[j]]
		if j < n/2 {
			want = "v3-" + keys[j]
		}
		if !r.Found || r.Value != want {
			t.Errorf("node 0 GetOrSetMany %s = %+v; want %q", keys[j], r, want)
		}
	}
	for i, nd := range nodes {
		if g := nd.bp.Stats().Gaps; g != 0 {
			t.Errorf("node %d: %d gaps", i, g)
		}
	}
}

// Two caches of different names on one etcd, each on two providers: a
// key, a tag, a Remove and a Clear of one never touch the other.
func TestHuntEtcdNamesIsolated(t *testing.T) {
	m := etcdtest.Start(t)
	cfg := etcd.Config{Endpoints: []string{m.Endpoint()}}
	p1 := newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)})
	p2 := newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)})
	users1, users2 := register(t, p1, "users"), register(t, p2, "users")
	orders1, orders2 := register(t, p1, "orders"), register(t, p2, "orders")
	c := ctx(t)
	for _, cc := range []*hybrid.Cache{users1, users2, orders1, orders2} {
		waitFor(t, 10*time.Second, "Ping", func() bool { return cc.Ping(c) == nil })
	}
	set := func(cache *hybrid.Cache, k, v string) {
		t.Helper()
		if err := hybrid.Set(c, cache, k, v, hybrid.WithTags("t")); err != nil {
			t.Fatal(err)
		}
	}
	set(users1, "k", "u")
	set(orders1, "k", "o")
	set(users1, "k2", "u2")
	set(orders1, "k2", "o2")
	for _, k := range []string{"k", "k2"} {
		fromL2(t, users2, k)
		fromL2(t, orders2, k)
	}
	if v := fromL2(t, users2, "k"); v != "u" {
		t.Fatalf("users on p2 read %q", v)
	}
	if v := fromL2(t, orders2, "k"); v != "o" {
		t.Fatalf("orders on p2 read %q", v)
	}
	// RemoveByTag and Clear on users: orders keeps its entries, on both
	// nodes, in memory and in etcd.
	if err := users1.RemoveByTag(c, "t"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "users on p2 to drop k", func() bool {
		_, ok, _ := hybrid.TryGet[string](c, users2, "k")
		return !ok
	})
	if err := users2.Clear(c, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "users on p1 to be cleared", func() bool {
		_, ok, _ := hybrid.TryGet[string](c, users1, "k2")
		return !ok
	})
	if err := users1.Remove(c, "k2"); err != nil {
		t.Fatal(err)
	}
	// A later change of orders, heard by p2's orders in memory, marks that
	// its feed has moved past users' invalidations.
	set(orders1, "marker", "m0")
	if v := fromL2(t, orders2, "marker"); v != "m0" {
		t.Fatalf("orders on p2 read marker %q", v)
	}
	set(orders1, "marker", "m1")
	waitFor(t, 5*time.Second, "orders on p2 to hear the marker's change", func() bool {
		v, ok, _ := hybrid.TryGet[string](c, orders2, "marker", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true }))
		return !ok || v == "m1"
	})
	for _, cache := range []*hybrid.Cache{orders1, orders2} {
		for k, want := range map[string]string{"k": "o", "k2": "o2"} {
			v, ok, err := hybrid.TryGet[string](c, cache, k)
			if err != nil || !ok || v != want {
				t.Errorf("%s read %q = %q (found %v, %v) after users' RemoveByTag, Clear and Remove; want %q", cache.Name(), k, v, ok, err, want)
			}
		}
	}
}

// Keys of odd bytes (NUL, invalid UTF-8, control characters, the feed
// key's suffix) travel between nodes through etcd and the feed.
func TestHuntEtcdOddKeysAcrossNodes(t *testing.T) {
	m := etcdtest.Start(t)
	a := newNode(t, clientOn(t, m.Endpoint()), "odd")
	b := newNode(t, clientOn(t, m.Endpoint()), "odd")
	c := ctx(t)
	for _, key := range []string{"nul\x00byte", "bad\xff\xfeutf8", "\x01\x02\n\t", "x__strata:feed", "sp ace/ü€", string(make([]byte, 1024))} {
		if err := hybrid.Set(c, a.c, key, "v1"); err != nil {
			t.Fatalf("Set %q: %v", key, err)
		}
		if v := load(t, b, key); v != "v1" {
			t.Fatalf("b read %q for %q", v, key)
		}
		if err := hybrid.Set(c, a.c, key, "v2"); err != nil {
			t.Fatal(err)
		}
		huntSees(t, []*node{b}, key, "v2")
		if err := b.c.Remove(c, key); err != nil {
			t.Fatal(err)
		}
		huntMiss(t, []*node{a}, key, "b's Remove")
	}
	if st := a.c.Stats(); st.L2Errors != 0 {
		t.Errorf("a: %d L2 errors", st.L2Errors)
	}
	if g := b.bp.Stats().Gaps + a.bp.Stats().Gaps; g != 0 {
		t.Errorf("%d gaps", g)
	}
}

// A closed node: its calls return ErrClosed, its backplane refuses to
// publish, and the other nodes go on writing and hearing each other.
func TestHuntEtcdClosedNode(t *testing.T) {
	m := etcdtest.Start(t)
	a := newNode(t, clientOn(t, m.Endpoint()), "closed")
	b := newNode(t, clientOn(t, m.Endpoint()), "closed")
	cc := newNode(t, clientOn(t, m.Endpoint()), "closed")
	c := ctx(t)
	if err := hybrid.Set(c, a.c, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	load(t, b, "k")
	load(t, cc, "k")
	if err := cc.c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(c, cc.c, "k", "x"); !errors.Is(err, hybrid.ErrClosed) {
		t.Errorf("Set on a closed cache: %v; want ErrClosed", err)
	}
	if _, _, err := hybrid.TryGet[string](c, cc.c, "k"); !errors.Is(err, hybrid.ErrClosed) {
		t.Errorf("TryGet on a closed cache: %v; want ErrClosed", err)
	}
	if err := cc.c.Ping(c); !errors.Is(err, hybrid.ErrClosed) {
		t.Errorf("Ping on a closed cache: %v; want ErrClosed", err)
	}
	err := cc.bp.Publish(c, backplane.Message{Kind: backplane.KindRemove, Cache: "closed", Key: "k", Source: "x", Timestamp: 1})
	if !errors.Is(err, backplane.ErrClosed) {
		t.Errorf("Publish on a closed backplane: %v; want backplane.ErrClosed", err)
	}
	if err := hybrid.Set(c, a.c, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	huntSees(t, []*node{b}, "k", "v2")
	// A cancelled context: the call says so and writes nothing.
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := hybrid.Set(cctx, a.c, "k", "v3"); !errors.Is(err, context.Canceled) {
		t.Errorf("Set with a cancelled context: %v; want context.Canceled", err)
	}
	if v := load(t, b, "k"); v != "v2" {
		t.Errorf("b reads %q after a cancelled Set; want v2", v)
	}
}
