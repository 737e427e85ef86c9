package etcd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
)

func nodeName(n, b *hybrid.Cache) string {
	if n == b {
		return "b"
	}
	return "a node reading etcd"
}

var errSourceDown = errors.New("source down")

// failing reads key with a factory that fails: fail-safe answers with the
// stale value if there is one.
func failing(c *hybrid.Cache, key string) (string, error) {
	return hybrid.GetOrSet(context.Background(), c, key, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "", errSourceDown
	}, hybrid.WithFailSafe(true))
}

// An Expire and a Clear(true) from one node keep the entries as fail-safe
// fallbacks on the other node and in etcd (docs/l2.md: an Expire of an
// entry written with fail-safe rewrites it as stale), while a Remove and
// a Clear(false) leave nothing to fall back on.
func TestHuntEtcdFailSafeAfterExpireAndClear(t *testing.T) {
	m := etcdtest.Start(t)
	cfg := etcd.Config{Endpoints: []string{m.Endpoint()}}
	a := register(t, newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)}), "fs")
	b := register(t, newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)}), "fs")
	fresh := register(t, newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)}), "fs") // reads etcd only
	c := ctx(t)
	waitFor(t, 10*time.Second, "Ping", func() bool { return a.Ping(c) == nil && b.Ping(c) == nil && fresh.Ping(c) == nil })
	for _, k := range []string{"expired", "cleared", "removed"} {
		if err := hybrid.Set(c, a, k, "v1", hybrid.WithFailSafe(true)); err != nil {
			t.Fatal(err)
		}
		if v := fromL2(t, b, k); v != "v1" {
			t.Fatalf("b reads %q", v)
		}
	}
	if err := a.Expire(c, "expired"); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(c, "removed"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b to hear of the Expire and the Remove", func() bool {
		_, ok1, _ := hybrid.TryGet[string](c, b, "expired")
		_, ok2, _ := hybrid.TryGet[string](c, b, "removed")
		return !ok1 && !ok2
	})
	for _, n := range []*hybrid.Cache{b, fresh} {
		if v, err := failing(n, "expired"); err != nil || v != "v1" {
			t.Errorf("%s: after an Expire, a failing factory gives %q, %v; want the stale v1", nodeName(n, b), v, err)
		}
		if v, err := failing(n, "removed"); !errors.Is(err, errSourceDown) {
			t.Errorf("after a Remove, a failing factory gives %q, %v; want its error", v, err)
		}
	}
	if err := a.Clear(c, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b to hear of the Clear", func() bool {
		_, ok, _ := hybrid.TryGet[string](c, b, "cleared")
		return !ok
	})
	if v, err := failing(b, "cleared"); err != nil || v != "v1" {
		t.Errorf("after Clear(true), a failing factory on b gives %q, %v; want the stale v1", v, err)
	}
	// A node started after the Clear: the entry is not fresh there (it
	// reads the Clear record), but still a fallback. (Once served as a
	// fallback, it counts as fresh for FailSafeThrottleDuration: so TryGet
	// first.)
	late := register(t, newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)}), "fs")
	if _, ok, _ := hybrid.TryGet[string](c, late, "cleared"); ok {
		t.Error("a new node serves a cleared entry as fresh")
	}
	if v, err := failing(late, "cleared"); err != nil || v != "v1" {
		t.Errorf("after Clear(true), a failing factory on a new node gives %q, %v; want the stale v1 from etcd", v, err)
	}
}
