package hybrid_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// A hard timeout alone (no soft one): the stale key gets its fallback, the
// cold key ErrFactoryTimeout, at the hard timeout; the background
// completion then stores both values.
func TestHuntBatchHardTimeoutOnlyStaleAndCold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: time.Minute,
			FactoryHardTimeout: time.Second}})
		if err := hybrid.Set(context.Background(), c, "stale", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		f := &constFactory{}
		f.sleep.Store(int64(3 * time.Second))
		start := time.Now()
		res := mustMany(t, c, []string{"stale", "cold"}, f.fn, hybrid.WithDuration(time.Hour))
		if d := time.Since(start); d != time.Second {
			t.Fatalf("returned after %v, want the hard timeout", d)
		}
		wantValue(t, res[0], "stale (hard timeout)", "old")
		wantErr(t, res[1], "cold (hard timeout)", hybrid.ErrFactoryTimeout)
		time.Sleep(3 * time.Second)
		tr, err := hybrid.TryGetMany[string](context.Background(), c, []string{"stale", "cold"})
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, tr[0], "stale (completed)", "new-stale")
		wantValue(t, tr[1], "cold (completed)", "new-cold")
		if n := f.calls.Load(); n != 1 {
			t.Fatalf("factory calls = %d, want 1", n)
		}
	})
}
