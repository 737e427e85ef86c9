package postgres_test

import (
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// Changes made on one node while PostgreSQL is down (queued for
// auto-recovery: docs/l2.md) reach the other node once it is back: the
// replayed writes are recorded in the feed, which the other node reads
// from where it stopped.
func TestHuntPgChangesDuringOutageReachOtherNode(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	a, b := pgNode(t, cfg, "outage"), pgNode(t, cfg, "outage")
	c := ctx(t)
	for _, k := range []string{"set", "removed"} {
		if err := hybrid.Set(c, a, k, "v1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := hybrid.Set(c, a, "tagged", "v1", hybrid.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	hold(t, []*hybrid.Cache{b}, "set", "removed", "tagged")
	srv.Kill()
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
		t.Fatalf("nothing queued for recovery while PostgreSQL was down: %+v", st)
	}
	srv.Restart(t)
	waitFor(t, 20*time.Second, "a to replay its queue", func() bool { return a.Stats().RecoveryPending == 0 })
	huntSees(t, []*hybrid.Cache{a, b}, "set", "v2")
	huntMiss(t, []*hybrid.Cache{a, b}, "removed", "a Remove during the outage")
	huntMiss(t, []*hybrid.Cache{a, b}, "tagged", "a RemoveByTag during the outage")
	if g := b.Stats().BackplaneGaps; g != 0 {
		t.Errorf("b reported %d gaps; a restart is none", g)
	}
}
