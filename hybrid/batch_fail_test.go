package hybrid_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// BatchContext.Fail fails one key alone: with a stale value and fail-safe
// on it gets that value, without one its Result carries the error; the other keys are answered with their values,
// and nothing is cached for the failed key.
func TestGetOrSetManyFailOneKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeThrottleDuration: 10 * time.Second}})
		defer c.Close()
		errRow := errors.New("row 7 unreadable")
		mustMany(t, c, []string{"stale"}, newLoader(map[string]string{"stale": "v-old"}).factory)
		time.Sleep(2 * time.Second) // "stale" is stale now
		calls := 0
		f := func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			calls++
			out := map[string]string{}
			for _, k := range bc.Keys() {
				out[k] = "v-" + k
			}
			bc.Fail("bad", errRow)
			bc.Fail("stale", errRow)
			bc.Fail("never-asked", errRow) // ignored
			bc.Fail("ok", nil)             // ignored
			return out, nil
		}
		res := mustMany(t, c, []string{"ok", "bad", "stale"}, f)
		wantValue(t, res[0], "ok", "v-ok")
		if r := res[1]; !errors.Is(r.Err, errRow) || r.Found {
			t.Fatalf("bad: %+v, want the key's error", r)
		}
		wantValue(t, res[2], "stale (fail-safe)", "v-old")
		// "ok" is cached; "bad" is not (the next call asks again); "stale"
		// is throttled (its stale value counts as fresh for a while).
		res = mustMany(t, c, []string{"ok", "bad", "stale"}, f)
		if calls != 2 {
			t.Fatalf("factory calls = %d, want 2", calls)
		}
		wantValue(t, res[0], "ok (cached)", "v-ok")
		wantValue(t, res[2], "stale (throttled)", "v-old")
		if st := c.Stats(); st.FactoryErrors != 2 {
			t.Fatalf("FactoryErrors = %d, want 2 (a run that failed a key counts)", st.FactoryErrors)
		}
	})
}
