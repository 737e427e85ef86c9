package hybrid_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/testlog"
)

// TestFailSafeCountsOnceAndLogsTheError for GetOrSetMany: a batch factory
// that fails after the callers stopped waiting is a background failure,
// logged once as such with its error. After a soft timeout that served the
// stale value (one fail-safe activation), the failure is not a second
// activation (no second FailSafe event, log line or count); after a hard
// timeout without a fallback (the caller got ErrFactoryTimeout), it is
// still logged, not swallowed silently.
func TestBatchLateFactoryFailureCountsOnceAndIsLogged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		stale bool
	}{{"soft timeout, stale served", true}, {"hard timeout, no fallback", false}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs testlog.Buffer
				var r recorder
				c := newCache(t, hybrid.Options{Logger: logTo(&logs), Events: r.events(), Entry: hybrid.EntryOptions{
					Duration: time.Second, FailSafe: true, FactorySoftTimeout: 100 * time.Millisecond,
					FactoryHardTimeout: 200 * time.Millisecond}})
				ctx := context.Background()
				if tc.stale {
					if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
						t.Fatal(err)
					}
					time.Sleep(2 * time.Second) // expired, a fail-safe fallback
				}
				res, err := hybrid.GetOrSetMany(ctx, c, []string{"k"},
					func(context.Context, *hybrid.BatchContext[string]) (map[string]string, error) {
						time.Sleep(time.Second)
						return nil, errors.New("db-7 refused the connection")
					})
				switch {
				case err != nil || len(res) != 1:
					t.Fatalf("GetOrSetMany = %v, %v", res, err)
				case tc.stale && (res[0].Err != nil || res[0].Value != "old"):
					t.Fatalf("GetOrSetMany = %+v; want the stale value at the soft timeout", res[0])
				case !tc.stale && !errors.Is(res[0].Err, hybrid.ErrFactoryTimeout):
					t.Fatalf("GetOrSetMany = %+v; want ErrFactoryTimeout at the hard timeout", res[0])
				}
				time.Sleep(2 * time.Second)
				synctest.Wait()
				want := 0
				if tc.stale {
					want = 1
				}
				if n := c.Stats().FailSafeActivations; n != uint64(want) {
					t.Errorf("FailSafeActivations = %d; want %d", n, want)
				}
				events := 0
				for _, e := range r.take() {
					if strings.HasPrefix(e, "failsafe ") {
						events++
					}
				}
				if events != want {
					t.Errorf("%d FailSafe events; want %d", events, want)
				}
				out := logs.String()
				if n := strings.Count(out, "fail-safe activated"); n != want {
					t.Errorf("fail-safe activated logged %d times; want %d:\n%s", n, want, out)
				}
				if n := strings.Count(out, "background factory failed"); n != 1 || !strings.Contains(out, "db-7 refused") {
					t.Errorf("the late failure is not logged once with its error:\n%s", out)
				}
			})
		})
	}
}
