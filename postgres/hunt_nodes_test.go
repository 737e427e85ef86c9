package postgres_test

// Several caches (nodes) over one PostgreSQL: changes made on any node
// reach the others (docs/postgres.md, "The backplane"), batch operations
// go through the tier like single ones, changes made while a node is cut
// off reach it once back, and caches of different names stay apart.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

func huntTry(t *testing.T, c *hybrid.Cache, key string) (string, bool) {
	t.Helper()
	v, ok, err := hybrid.TryGet[string](context.Background(), c, key)
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

// huntMiss waits until every cache misses key (TryGet, the table allowed).
func huntMiss(t *testing.T, caches []*hybrid.Cache, key, why string) {
	t.Helper()
	for i, c := range caches {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to miss %q after %s", i, key, why), func() bool { _, ok := huntTry(t, c, key); return !ok })
	}
}

// huntSees waits until every cache reads want for key.
func huntSees(t *testing.T, caches []*hybrid.Cache, key, want string) {
	t.Helper()
	for i, c := range caches {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to read %q=%q", i, key, want), func() bool { v, ok := huntTry(t, c, key); return ok && v == want })
	}
}

// hold makes every cache hold keys in memory, read from the table.
func hold(t *testing.T, caches []*hybrid.Cache, keys ...string) {
	t.Helper()
	for i, c := range caches {
		for _, k := range keys {
			if _, ok := huntTry(t, c, k); !ok {
				t.Fatalf("node %d does not find %q", i, k)
			}
		}
	}
}

func huntNodes(t *testing.T, cfg postgres.Config, name string, n int) []*hybrid.Cache {
	t.Helper()
	var nodes []*hybrid.Cache
	for range n {
		nodes = append(nodes, pgNode(t, cfg, name))
	}
	return nodes
}

// Set, Expire, RemoveByTag, Remove and Clear, each from another node of
// three: every node converges, with no gap and no error.
func TestHuntPgNodesConvergeOnEveryKindOfChange(t *testing.T) {
	srv := pgtest.Start(t)
	nodes := huntNodes(t, postgres.Config{ConnString: srv.URL(), PruneInterval: -1}, "conv", 3)
	c := ctx(t)
	set := func(n int, k, v string, opts ...hybrid.Option) {
		t.Helper()
		if err := hybrid.Set(c, nodes[n], k, v, opts...); err != nil {
			t.Fatal(err)
		}
	}
	set(0, "k", "v1")
	hold(t, nodes, "k")
	set(1, "k", "v2")
	huntSees(t, nodes, "k", "v2")

	if err := nodes[2].Expire(c, "k"); err != nil {
		t.Fatal(err)
	}
	huntMiss(t, nodes, "k", "node 2's Expire")

	set(0, "t1", "tagged", hybrid.WithTags("tag"))
	set(0, "t2", "tagged", hybrid.WithTags("tag"))
	set(0, "untagged", "u")
	hold(t, nodes, "t1", "t2", "untagged")
	if err := nodes[1].RemoveByTag(c, "tag"); err != nil {
		t.Fatal(err)
	}
	huntMiss(t, nodes, "t1", "RemoveByTag")
	huntMiss(t, nodes, "t2", "RemoveByTag")
	huntSees(t, nodes, "untagged", "u")

	set(2, "r", "x")
	hold(t, nodes, "r")
	if err := nodes[0].Remove(c, "r"); err != nil {
		t.Fatal(err)
	}
	huntMiss(t, nodes, "r", "Remove")

	for i := range nodes {
		set(i, fmt.Sprint("c", i), "before")
	}
	hold(t, nodes, "c0", "c1", "c2", "untagged")
	if err := nodes[2].Clear(c, false); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"c0", "c1", "c2", "untagged"} {
		huntMiss(t, nodes, k, "Clear")
	}
	set(1, "c1", "after")
	huntSees(t, nodes, "c1", "after")
	for i, n := range nodes {
		if st := n.Stats(); st.BackplaneGaps != 0 || st.L2Errors != 0 || st.BackplaneErrors != 0 {
			t.Errorf("node %d: %d gaps, %d L2 errors, %d backplane errors", i, st.BackplaneGaps, st.L2Errors, st.BackplaneErrors)
		}
	}
}

// SetMany, TryGetMany, GetOrSetMany and RemoveMany through the table, over
// three nodes.
func TestHuntPgBatchAcrossNodes(t *testing.T) {
	srv := pgtest.Start(t)
	nodes := huntNodes(t, postgres.Config{ConnString: srv.URL(), PruneInterval: -1}, "batch", 3)
	c := ctx(t)
	const n = 60
	keys := make([]string, n)
	vals := map[string]string{}
	for i := range keys {
		keys[i] = fmt.Sprint("b", i)
		vals[keys[i]] = "v1-" + keys[i]
	}
	if err := hybrid.SetMany(c, nodes[0], vals); err != nil {
		t.Fatal(err)
	}
	res, err := hybrid.TryGetMany[string](c, nodes[1], keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || !r.Found || r.Value != vals[keys[i]] {
			t.Fatalf("node 1 TryGetMany %s = %+v; want %q", keys[i], r, vals[keys[i]])
		}
	}
	res, err = hybrid.GetOrSetMany(c, nodes[2], keys, func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		return nil, fmt.Errorf("factory asked for %d keys: the table holds them", len(bc.Keys()))
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || !r.Found || r.Value != vals[keys[i]] {
			t.Fatalf("node 2 GetOrSetMany %s = %+v; want %q", keys[i], r, vals[keys[i]])
		}
	}
	for k := range vals {
		vals[k] = "v2-" + k
	}
	if err := hybrid.SetMany(c, nodes[1], vals); err != nil {
		t.Fatal(err)
	}
	all := func(want func(j int) (string, bool)) func() bool {
		return func() bool {
			for _, nd := range nodes {
				res, err := hybrid.TryGetMany[string](c, nd, keys)
				if err != nil {
					t.Fatal(err)
				}
				for j, r := range res {
					v, found := want(j)
					if r.Found != found || (found && r.Value != v) {
						return false
					}
				}
			}
			return true
		}
	}
	waitFor(t, 5*time.Second, "every node to read every v2", all(func(j int) (string, bool) { return vals[keys[j]], true }))
	if err := nodes[2].RemoveMany(c, keys[:n/2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "every node to miss the removed half", all(func(j int) (string, bool) { return vals[keys[j]], j >= n/2 }))
	var asked int
	res, err = hybrid.GetOrSetMany(c, nodes[0], keys, func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
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
		if st := nd.Stats(); st.BackplaneGaps != 0 || st.L2Errors != 0 {
			t.Errorf("node %d: %d gaps, %d L2 errors", i, st.BackplaneGaps, st.L2Errors)
		}
	}
}

// Every kind of change made while a node's connections are cut reaches it
// once it reconnects, with no gap (docs/postgres.md: "a cut connection
// lose[s] nothing, and [is] not [a] gap").
func TestHuntPgEveryChangeSurvivesACut(t *testing.T) {
	srv := pgtest.Start(t)
	proxy, url := proxied(t, srv)
	a := pgNode(t, postgres.Config{ConnString: srv.URL(), PruneInterval: -1}, "cut")
	b := pgNode(t, postgres.Config{ConnString: url, PruneInterval: -1}, "cut")
	bs := []*hybrid.Cache{b}
	c := ctx(t)
	set := func(k, v string, opts ...hybrid.Option) {
		t.Helper()
		if err := hybrid.Set(c, a, k, v, opts...); err != nil {
			t.Fatal(err)
		}
	}
	set("set", "v1")
	set("removed", "v1")
	set("expired", "v1")
	set("t1", "v1", hybrid.WithTags("tag"))
	set("t2", "v1", hybrid.WithTags("tag", "other"))
	set("kept", "v1", hybrid.WithTags("other"))
	hold(t, bs, "set", "removed", "expired", "t1", "t2", "kept")
	cut := func() {
		proxy.Pause()
		proxy.ResetAll()
	}

	cut()
	set("set", "v2")
	if err := a.Remove(c, "removed"); err != nil {
		t.Fatal(err)
	}
	if err := a.Expire(c, "expired"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveByTag(c, "tag"); err != nil {
		t.Fatal(err)
	}
	proxy.Resume()
	huntSees(t, bs, "set", "v2")
	for _, k := range []string{"removed", "expired", "t1", "t2"} {
		huntMiss(t, bs, k, "a change made during the cut")
	}
	if v, ok := huntTry(t, b, "kept"); !ok || v != "v1" {
		t.Fatalf("b reads kept = %q (found %v); want v1", v, ok)
	}

	for i := range 5 {
		set(fmt.Sprint("c", i), "before")
		hold(t, bs, fmt.Sprint("c", i))
	}
	cut()
	if err := a.Clear(c, false); err != nil {
		t.Fatal(err)
	}
	proxy.Resume()
	for _, k := range []string{"c0", "c1", "c2", "c3", "c4", "kept", "set"} {
		huntMiss(t, bs, k, "a Clear during the cut")
	}
	if g := b.Stats().BackplaneGaps; g != 0 {
		t.Errorf("b reported %d gaps; a cut is none", g)
	}
	set("after", "v1")
	hold(t, bs, "after")
	set("after", "v2")
	huntSees(t, bs, "after", "v2")
}

// An entry's lifetime is honoured by the table: once its Duration has
// passed, no node serves it, and a node that starts afterwards does not
// find it in the table.
func TestHuntPgExpiryAcrossNodes(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	nodes := huntNodes(t, cfg, "ttl", 2)
	c := ctx(t)
	short := hybrid.WithDuration(time.Second)
	if err := hybrid.Set(c, nodes[0], "k", "v", short); err != nil {
		t.Fatal(err)
	}
	set := time.Now()
	if v, ok := huntTry(t, nodes[1], "k"); !ok || v != "v" {
		t.Fatalf("node 1 reads %q (found %v)", v, ok)
	}
	waitFor(t, 5*time.Second, "both nodes to miss the expired entry", func() bool {
		_, ok0 := huntTry(t, nodes[0], "k")
		_, ok1 := huntTry(t, nodes[1], "k")
		return !ok0 && !ok1
	})
	if d := time.Since(set); d < time.Second {
		t.Fatalf("the entry was gone after %s; its Duration is 1 s", d)
	}
	late := pgNode(t, cfg, "ttl")
	if v := get(t, late, "k"); v != "factory" {
		t.Fatalf("a node started after the expiry reads %q from the table", v)
	}
}

// Two caches of different names on one server: RemoveByTag, Clear and
// Remove in one never touch the other's entries.
func TestHuntPgNamesIsolated(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	p1 := newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)})
	p2 := newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)})
	users1, users2 := register(t, p1, "users"), register(t, p2, "users")
	orders1, orders2 := register(t, p1, "orders"), register(t, p2, "orders")
	c := ctx(t)
	for _, cc := range []*hybrid.Cache{users1, orders1} {
		for _, k := range []string{"k", "k2"} {
			if err := hybrid.Set(c, cc, k, cc.Name()+k, hybrid.WithTags("t")); err != nil {
				t.Fatal(err)
			}
		}
	}
	hold(t, []*hybrid.Cache{users2, orders2}, "k", "k2")
	if err := users1.RemoveByTag(c, "t"); err != nil {
		t.Fatal(err)
	}
	huntMiss(t, []*hybrid.Cache{users2}, "k", "users' RemoveByTag")
	if err := users2.Clear(c, false); err != nil {
		t.Fatal(err)
	}
	huntMiss(t, []*hybrid.Cache{users1}, "k2", "users' Clear")
	if err := users1.Remove(c, "k2"); err != nil {
		t.Fatal(err)
	}
	// A change of orders heard by p2's orders in memory marks that its feed
	// has been read past users' changes.
	if err := hybrid.Set(c, orders1, "marker", "m0"); err != nil {
		t.Fatal(err)
	}
	hold(t, []*hybrid.Cache{orders2}, "marker")
	if err := hybrid.Set(c, orders1, "marker", "m1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "orders on p2 to hear the marker's change", func() bool { v, ok := peek(orders2, "marker"); return !ok || v == "m1" })
	for _, cc := range []*hybrid.Cache{orders1, orders2} {
		for _, k := range []string{"k", "k2"} {
			if v, ok := huntTry(t, cc, k); !ok || v != "orders"+k {
				t.Errorf("%s reads %q = %q (found %v) after users' invalidations; want %q", cc.Name(), k, v, ok, "orders"+k)
			}
		}
	}
}
