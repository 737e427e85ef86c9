package strata_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
)

// hubTier is a Tier whose caches share an in-process backplane hub (no
// distributed tier): enough to check how the provider opens, wires and
// closes tiers. The etcd module tests the seam against real etcd.
type hubTier struct {
	hub    *backplane.MemoryHub
	opened []strata.TierCacheOptions
	closed atomic.Int32
}

func (h *hubTier) Open(o strata.TierCacheOptions) (strata.TierCache, error) {
	h.opened = append(h.opened, o)
	if o.DisableBackplane {
		return strata.TierCache{}, nil
	}
	return strata.TierCache{Backplane: h.hub.Backplane(o.KeyPrefix)}, nil
}
func (h *hubTier) Ping(context.Context) error { return nil }
func (h *hubTier) Close() error               { h.closed.Add(1); return nil }

func TestTierOwnership(t *testing.T) {
	hub := backplane.NewMemoryHub()
	shared := &hubTier{hub: hub}
	built := &hubTier{hub: hub}
	p, err := strata.NewProvider(strata.Settings{Tier: &strata.TierSettings{Tier: shared}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Register("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Register("b", func(cs *strata.CacheSettings) {
		cs.Tier = &strata.TierSettings{New: func() (strata.Tier, error) { return built, nil }}
	}); err != nil {
		t.Fatal(err)
	}
	if len(shared.opened) != 1 || shared.opened[0].Name != "a" || shared.opened[0].KeyPrefix != "a:" {
		t.Fatalf("shared tier opened %+v; want cache a with prefix a:", shared.opened)
	}
	if len(built.opened) != 1 || built.opened[0].Name != "b" {
		t.Fatalf("own tier opened %+v; want cache b", built.opened)
	}
	// The backplane the tier returned is the cache's: a removal on another
	// node of the hub reaches a.
	other, err := hybrid.New(hybrid.Options{Name: "a", Backplane: hub.Backplane("a:")})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	hybrid.Set(ctx, a, "k", "v")
	waitHeld := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := hybrid.TryGet[string](ctx, a, "k"); ok || time.Now().After(waitHeld) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	other.Remove(ctx, "k")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := hybrid.TryGet[string](ctx, a, "k"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a removal on another node did not reach the cache through the tier's backplane")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Close()
	if shared.closed.Load() != 0 {
		t.Error("the provider closed a tier the caller passed in")
	}
	if built.closed.Load() != 1 {
		t.Errorf("the provider closed the tier it built %d times; want 1", built.closed.Load())
	}
}

func TestTierSettingsInvalid(t *testing.T) {
	tier := &hubTier{hub: backplane.NewMemoryHub()}
	for name, s := range map[string]strata.Settings{
		"neither":         {Tier: &strata.TierSettings{}},
		"both fields":     {Tier: &strata.TierSettings{Tier: tier, New: func() (strata.Tier, error) { return tier, nil }}},
		"redis and tier":  {Tier: &strata.TierSettings{Tier: tier}, Redis: &strata.RedisSettings{URL: "redis://127.0.0.1:1"}},
		"New returns nil": {Tier: &strata.TierSettings{New: func() (strata.Tier, error) { return nil, nil }}},
	} {
		if _, err := strata.NewProvider(s); !errors.Is(err, strata.ErrInvalidSettings) {
			t.Errorf("%s: %v; want ErrInvalidSettings", name, err)
		}
	}
	failing := errors.New("cannot build")
	if _, err := strata.NewProvider(strata.Settings{Tier: &strata.TierSettings{New: func() (strata.Tier, error) { return nil, failing }}}); !errors.Is(err, failing) || err.Error() != "strata: Tier: cannot build" {
		t.Errorf("a failing New: %v; want `strata: Tier: cannot build`", err)
	}
	// A module's own settings error (etcd's Settings with no endpoint) is
	// returned as it is: it names its module, and "strata: Tier: strata:
	// invalid settings: etcd: ..." said "strata" twice.
	invalid := fmt.Errorf("%w: etcd: Endpoints is empty", strata.ErrInvalidSettings)
	_, err := strata.NewProvider(strata.Settings{Tier: &strata.TierSettings{New: func() (strata.Tier, error) { return nil, invalid }}})
	if !errors.Is(err, strata.ErrInvalidSettings) || err.Error() != "strata: invalid settings: etcd: Endpoints is empty" {
		t.Errorf("New's settings error: %v; want `strata: invalid settings: etcd: Endpoints is empty`", err)
	}
}
