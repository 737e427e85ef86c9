package hybrid_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
)

func TestTryGetInfo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Minute, FailSafe: true}})
		ctx := context.Background()
		if _, err := hybrid.GetOrSet(ctx, c, "k", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			fc.SetETag(`"v1"`)
			return "v", nil
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		v, info, ok, err := hybrid.TryGetInfo[string](ctx, c, "k")
		if err != nil || !ok || v != "v" || info.ETag != `"v1"` || info.Stale || info.Created.IsZero() {
			t.Fatalf("fresh: %q %+v %v %v ", v, info, ok, err)
		}
		time.Sleep(2 * time.Minute)
		if _, _, ok, _ := hybrid.TryGetInfo[string](ctx, c, "k"); ok {
			t.Fatal("an expired entry answered without AllowStaleOnRead")
		}
		stale := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })
		if _, info, ok, _ := hybrid.TryGetInfo[string](ctx, c, "k", stale); !ok || !info.Stale {
			t.Fatalf("stale read: %+v, %v; want it marked stale", info, ok)
		}
		if _, info, ok, err := hybrid.TryGetInfo[string](ctx, c, ""); ok || err == nil || info != (hybrid.EntryInfo{}) {
			t.Fatal("an empty key answered")
		}
	})
}

func TestBackplaneSubscribed(t *testing.T) {
	if c := newCache(t, hybrid.Options{}); c.BackplaneSubscribed() {
		t.Fatal("a cache without a backplane reports a subscription")
	}
	if c := newCache(t, hybrid.Options{Backplane: backplane.NewMemoryHub().Backplane("ch")}); !c.BackplaneSubscribed() {
		t.Fatal("a memory backplane is not subscribed after New")
	}
}
