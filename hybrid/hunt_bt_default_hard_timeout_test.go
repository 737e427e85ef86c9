package hybrid_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// docs/failsafe.md: with fail-safe on and no stale value,
// FailSafeDefaultValue "is returned instead of the factory's error ... or
// ErrFactoryTimeout". GetOrSet does so at the hard timeout; GetOrSetMany
// ("every rule of them per key") used to return ErrFactoryTimeout instead.
func TestHuntBatchFailSafeDefaultAtHardTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := hybrid.New(hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Minute, FailSafe: true, FactoryHardTimeout: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		v, err := hybrid.GetOrSet(ctx, c, "single", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			time.Sleep(5 * time.Second)
			return "late", nil
		}, hybrid.WithFailSafeDefault("dflt"))
		if err != nil || v != "dflt" {
			t.Fatalf("GetOrSet at the hard timeout: %q, %v; want the default", v, err)
		}
		res, err := hybrid.GetOrSetMany(ctx, c, []string{"cold"}, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			time.Sleep(5 * time.Second)
			return map[string]string{"cold": "late"}, nil
		}, hybrid.WithFailSafeDefault("dflt"))
		if err != nil {
			t.Fatal(err)
		}
		if r := res[0]; r.Err != nil || !r.Found || r.Value != "dflt" {
			t.Fatalf("GetOrSetMany at the hard timeout: %+v; want {Value: dflt, Found: true}", r)
		}
		synctest.Wait()
	})
}
