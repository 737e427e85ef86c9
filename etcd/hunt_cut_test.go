package etcd_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/tcpproxy"
)

// Every kind of change made while a node's connections are cut (Set,
// Remove, Expire, RemoveByTag, then Clear) reaches it once it reconnects,
// with no gap (docs/etcd.md: "nothing is lost across a disconnect, and
// RemoveByTag and Clear, which travel on the same feed, survive a
// disconnect too").
func TestHuntEtcdEveryChangeSurvivesACut(t *testing.T) {
	m := etcdtest.Start(t)
	proxy, err := tcpproxy.New(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	b := newNode(t, clientOn(t, "http://"+proxy.Addr()), "cut")
	a := newNode(t, clientOn(t, m.Endpoint()), "cut")
	c := ctx(t)
	set := func(k, v string, opts ...hybrid.Option) {
		t.Helper()
		if err := hybrid.Set(c, a.c, k, v, opts...); err != nil {
			t.Fatal(err)
		}
	}
	set("set", "v1")
	set("removed", "v1")
	set("expired", "v1")
	set("t1", "v1", hybrid.WithTags("tag"))
	set("t2", "v1", hybrid.WithTags("tag", "other"))
	set("kept", "v1", hybrid.WithTags("other"))
	keys := []string{"set", "removed", "expired", "t1", "t2", "kept"}
	for _, k := range keys {
		if v := load(t, b, k); v != "v1" {
			t.Fatalf("b reads %q for %s", v, k)
		}
	}
	cut := func() {
		proxy.Pause()
		proxy.ResetAll()
	}

	cut()
	set("set", "v2")
	if err := a.c.Remove(c, "removed"); err != nil {
		t.Fatal(err)
	}
	if err := a.c.Expire(c, "expired"); err != nil {
		t.Fatal(err)
	}
	if err := a.c.RemoveByTag(c, "tag"); err != nil {
		t.Fatal(err)
	}
	proxy.Resume()
	huntSees(t, []*node{b}, "set", "v2")
	for _, k := range []string{"removed", "expired", "t1", "t2"} {
		huntMiss(t, []*node{b}, k, "a change made during the cut")
	}
	if v, ok := get(t, b, "kept"); !ok || v != "v1" {
		t.Fatalf("b reads kept = %q (found %v); want v1", v, ok)
	}

	// Clear during a second cut.
	for i := range 5 {
		set(fmt.Sprint("c", i), "before")
		load(t, b, fmt.Sprint("c", i))
	}
	cut()
	if err := a.c.Clear(c, false); err != nil {
		t.Fatal(err)
	}
	proxy.Resume()
	for i := range 5 {
		huntMiss(t, []*node{b}, fmt.Sprint("c", i), "a Clear during the cut")
	}
	huntMiss(t, []*node{b}, "kept", "a Clear during the cut")
	huntMiss(t, []*node{b}, "set", "a Clear during the cut")
	if g := b.bp.Stats().Gaps; g != 0 {
		t.Errorf("b reported %d gaps; a cut without compaction is none", g)
	}
	// And later changes still arrive.
	set("after", "v1")
	load(t, b, "after")
	set("after", "v2")
	waitFor(t, 5*time.Second, "b to hear a change after the cuts", func() bool { v, _ := get(t, b, "after"); return v == "v2" })
}
