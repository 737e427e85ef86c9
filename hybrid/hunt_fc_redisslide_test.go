package hybrid_test

import (
	"context"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// TestHuntRedisThrottleOfSlidingEntryStaysInMemory: the fail-safe
// throttle "stays in L1 only: never written to L2 nor announced"
// (docs/failsafe.md). With sliding expiration, a hit on the throttled copy
// must not write it to Redis as fresh: node 2, whose source works, loads
// the new value instead of the stale one.
func TestHuntRedisThrottleOfSlidingEntryStaysInMemory(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Hour, SlidingDuration: 400 * time.Millisecond, FailSafe: true}
	n1 := node(t, srv.FastClient(t, ""), e)
	n2 := node(t, srv.FastClient(t, ""), e)
	ctx := context.Background()
	if err := hybrid.Set(ctx, n1, "k", "old"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // unread past its 400ms window: stale (a read would slide it)
	fcWantMiss[string](t, n1, "k")
	fcWantGetOrSet(t, n1, "k", fusionFail[string](errDB), "old") // the fallback, throttled
	fcWantGetOrSet(t, n1, "k", fusionFail[string](errDB), "old") // a hit on the throttled copy
	n1.Close()                                                   // waits for n1's background writes
	fcWantGetOrSet(t, n2, "k", fusionValue("new"), "new")
}
