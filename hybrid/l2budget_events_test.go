package hybrid_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// A read of the distributed tier that finds the L2 soft timeout's budget
// already spent (by the invalidation records read before it) is a read cut
// by the L2 timeouts: Stats.L2Timeouts counts it, and so must the L2Error
// event of class timeout (what otelhybrid's strata.cache.l2.errors
// counts), and its span says strata.timeout=l2, as for a read cut while
// it waited. Here the Clear record's read takes the whole budget; the tag
// record and the entry (the batch's entries) find none left.
func TestL2SpentBudgetIsATimeoutEverywhere(t *testing.T) {
	t.Parallel()
	for _, batch := range []bool{false, true} {
		name := "GetOrSet"
		if batch {
			name = "GetOrSetMany"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l2 := &flakyL2{}
				var r recorder
				var tr testTracer
				entry := hybrid.EntryOptions{Duration: time.Second, FailSafe: true, FailSafeMaxDuration: time.Hour,
					L2SoftTimeout: 100 * time.Millisecond, L2HardTimeout: time.Minute}
				c := newCache(t, hybrid.Options{Events: r.events(), Tracer: &tr, L2: l2, Logger: quietLogger(), Entry: entry})
				ctx := context.Background()
				for _, k := range []string{"a", "b"} {
					if err := hybrid.Set(ctx, c, k, "old", hybrid.WithTags("t")); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(2 * time.Second) // stale, fail-safe keeps them
				tr.take(t)
				r.take()
				l2.slow.Store(true)
				if batch {
					m, err := hybrid.GetOrSetMany(ctx, c, []string{"a", "b"},
						func(context.Context, *hybrid.BatchContext[string]) (map[string]string, error) { return nil, errDB })
					if err != nil || len(m) != 2 || m[0].Value != "old" || m[1].Value != "old" {
						t.Fatalf("GetOrSetMany = %v, %v; want the stale values", m, err)
					}
				} else {
					v, err := hybrid.GetOrSet(ctx, c, "a",
						func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "", errDB })
					if err != nil || v != "old" {
						t.Fatalf("GetOrSet = %q, %v; want the stale value", v, err)
					}
				}
				timeouts := 0
				for _, e := range r.take() {
					if strings.HasPrefix(e, "l2error ") && strings.HasSuffix(e, " timeout") {
						timeouts++
					}
				}
				if got := c.Stats().L2Timeouts; got < 2 || uint64(timeouts) != got {
					t.Errorf("Stats.L2Timeouts = %d, L2Error events of class timeout = %d; want them equal (and at least 2)", got, timeouts)
				}
				for _, s := range tr.take(t) {
					if strings.Contains(s, "> "+hybrid.SpanL2Get+" ") && !strings.Contains(s, hybrid.AttrTimeout+"=l2") {
						t.Errorf("span %s: a read cut by the L2 budget without %s=l2", s, hybrid.AttrTimeout)
					}
				}
			})
		})
	}
}
