package strata_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
)

// Settings.Events reach every cache, and each event names its cache.
func TestProviderEvents(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var hits []string
	ev := &hybrid.Events{Hit: func(e hybrid.HitEvent) {
		mu.Lock()
		hits = append(hits, e.Cache+"/"+e.Key)
		mu.Unlock()
	}}
	p, err := strata.NewProvider(strata.Settings{Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ev.Hit = nil // the provider keeps its own copy
	ctx := context.Background()
	for _, name := range []string{"users", "orders"} {
		c, err := p.Register(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := hybrid.Set(ctx, c, "k", 1); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := hybrid.TryGet[int](ctx, c, "k"); !ok || err != nil {
			t.Fatalf("TryGet on %s: %v, %v", name, ok, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"users/k", "orders/k"}; !slices.Equal(hits, want) {
		t.Fatalf("hits: got %q, want %q", hits, want)
	}
}
