package etcd_test

import (
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
)

// Changes made on one node while the only etcd member is down (queued for
// auto-recovery: docs/l2.md) reach the other node once the member is back:
// the replayed writes are announced on the feed, which the other node's
// watch resumes without a gap.
func TestHuntEtcdChangesDuringOutageReachOtherNode(t *testing.T) {
	m := etcdtest.Start(t)
	cfg := etcd.Config{Endpoints: []string{m.Endpoint()}}
	a := register(t, newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)}), "outage")
	b := register(t, newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)}), "outage")
	c := ctx(t)
	waitFor(t, 10*time.Second, "Ping", func() bool { return a.Ping(c) == nil && b.Ping(c) == nil })
	for _, k := range []string{"set", "removed"} {
		if err := hybrid.Set(c, a, k, "v1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := hybrid.Set(c, a, "tagged", "v1", hybrid.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"set", "removed", "tagged"} {
		if v := fromL2(t, b, k); v != "v1" {
			t.Fatalf("b reads %q for %s", v, k)
		}
	}
	m.Kill()
	if err := hybrid.Set(c, a, "set", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(c, "removed"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveByTag(c, "t"); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.RecoveryPending == 0 {
		t.Fatalf("nothing queued for recovery while etcd was down: %+v", st)
	}
	m.Restart(t)
	waitFor(t, 20*time.Second, "a to replay its queue", func() bool { return a.Stats().RecoveryPending == 0 })
	waitFor(t, 10*time.Second, "b to read v2", func() bool {
		v, ok, err := hybrid.TryGet[string](c, b, "set")
		return err == nil && ok && v == "v2"
	})
	for _, k := range []string{"removed", "tagged"} {
		waitFor(t, 10*time.Second, "b to miss "+k, func() bool {
			_, ok, err := hybrid.TryGet[string](c, b, k)
			return err == nil && !ok
		})
	}
	// a's view agrees.
	if v, ok, _ := hybrid.TryGet[string](c, a, "set"); !ok || v != "v2" {
		t.Fatalf("a reads %q (found %v)", v, ok)
	}
}
