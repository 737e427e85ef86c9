package strata

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
)

// Tier is a distributed tier and backplane other than Redis, for caches
// whose data lives elsewhere: etcd (module github.com/strata-cache/strata/etcd)
// and PostgreSQL (module github.com/strata-cache/strata/postgres). The core
// module knows only this interface, so an application pulls a store's client
// library (gRPC for etcd, pgx for PostgreSQL) only if it imports that store's
// module.
//
// A Tier holds the connection (a client, a pool) and opens, per cache, the
// hybrid.L2 and backplane.Backplane of the cache's key prefix. A Tier
// reached through Settings.Tier is shared by every cache that has no store
// of its own; one reached through CacheSettings.Tier serves that cache only.
// Caches on a Tier and caches on Redis can share one provider.
//
// Implementations must be safe for concurrent use.
type Tier interface {
	// Open returns what one cache needs. It must not wait for the network
	// (the store may be unreachable at start-up: the cache then works from
	// memory and its errors go to the circuit breaker). The provider calls
	// it once per cache, from Register.
	Open(o TierCacheOptions) (TierCache, error)
	// Ping checks that the store answers, with a round trip bounded by ctx.
	// An authentication or permission failure is reported as such.
	Ping(ctx context.Context) error
	// Close releases what the tier holds. The provider calls it on Close
	// only for a tier it built (TierSettings.New), after closing the caches.
	Close() error
}

// TierCacheOptions say which cache Tier.Open opens.
type TierCacheOptions struct {
	// Name is the cache's name.
	Name string
	// KeyPrefix prefixes every key of the cache in the store (never empty).
	// The cache's backplane must carry the changes of this prefix only.
	KeyPrefix string
	// DisableL2 asks for no distributed tier (TierCache.L2 nil).
	DisableL2 bool
	// DisableBackplane asks for no backplane (TierCache.Backplane nil).
	DisableBackplane bool
	// Logger is the provider's logger, with the cache's name.
	Logger *slog.Logger
}

// TierCache is what Tier.Open returns for one cache.
type TierCache struct {
	// L2 is the cache's distributed tier; nil for none. If it implements
	// hybrid.FeedL2 for Backplane, the cache does not publish the changes
	// its writes already announce.
	L2 hybrid.L2
	// Backplane is the cache's backplane; nil for none. The cache takes
	// ownership and closes it.
	Backplane backplane.Backplane
	// MaxValueSize is the largest encoded entry the store accepts, in
	// bytes; zero means no limit of its own. The cache's MaxValueSize is
	// lowered to it, so an oversized Set fails at once with
	// hybrid.ErrValueTooLarge.
	MaxValueSize int
	// MaxKeyLength is the longest key (without the cache's prefix) the
	// store accepts, in bytes; zero means no limit of its own. The cache's
	// MaxKeyLength is lowered to it, so such a key is refused at once with
	// hybrid.ErrInvalidKey instead of failing in the store, unannounced.
	MaxKeyLength int
}

// TierSettings put caches on a Tier. Set exactly one field.
type TierSettings struct {
	// New builds the tier. The provider calls it once (Settings.Tier) or
	// once per cache (CacheSettings.Tier), and closes what it returns on
	// Close. The etcd module's Settings and ClientSettings return this.
	New func() (Tier, error)
	// Tier is a tier the caller owns: the provider never closes it.
	Tier Tier
}

func (t *TierSettings) validate() error {
	if (t.New == nil) == (t.Tier == nil) {
		return fmt.Errorf("%w: Tier: set exactly one of New, Tier", ErrInvalidSettings)
	}
	return nil
}

// build returns the tier; owned reports whether the provider must close it.
func (t *TierSettings) build() (tier Tier, owned bool, err error) {
	if t.Tier != nil {
		return t.Tier, false, nil
	}
	tier, err = t.New()
	if err != nil {
		if errors.Is(err, ErrInvalidSettings) {
			return nil, false, err // names its module already ("strata: invalid settings: etcd: ...")
		}
		return nil, false, fmt.Errorf("strata: Tier: %w", err)
	}
	if tier == nil {
		return nil, false, fmt.Errorf("%w: Tier: New returned nil", ErrInvalidSettings)
	}
	return tier, true, nil
}

// wireTier connects a cache's options to a tier.
func (p *Provider) wireTier(o *hybrid.Options, cs *CacheSettings, tier Tier) error {
	tc, err := tier.Open(TierCacheOptions{
		Name: o.Name, KeyPrefix: o.KeyPrefix,
		DisableL2: cs.DisableL2, DisableBackplane: cs.DisableBackplane,
		Logger: p.logger.With("cache", o.Name),
	})
	if err != nil {
		return fmt.Errorf("strata: tier: %w", err)
	}
	if tc.L2 != nil && !cs.DisableL2 {
		o.L2 = tc.L2
		if tc.MaxValueSize > 0 && (o.MaxValueSize == 0 || tc.MaxValueSize < o.MaxValueSize) {
			o.MaxValueSize = tc.MaxValueSize
		}
		if tc.MaxKeyLength > 0 && tc.MaxKeyLength < cmp.Or(o.MaxKeyLength, hybrid.DefaultMaxKeyLength) {
			o.MaxKeyLength = tc.MaxKeyLength
		}
	}
	if tc.Backplane != nil {
		if cs.DisableBackplane {
			tc.Backplane.Close()
		} else {
			o.Backplane = tc.Backplane
		}
	}
	return nil
}

// openSharedTier builds the tier of Settings.Tier.
func (p *Provider) openSharedTier(s Settings) error {
	if s.Redis != nil {
		return fmt.Errorf("%w: set at most one of Redis and Tier", ErrInvalidSettings)
	}
	if err := s.Tier.validate(); err != nil {
		return err
	}
	t, owned, err := s.Tier.build()
	if err != nil {
		return err
	}
	p.sharedTier, p.tierOwned = t, owned
	return nil
}

// registerOnTier creates a cache on its own tier (cs.Tier) or on the
// shared one. p.mu is held.
func (p *Provider) registerOnTier(name string, opts hybrid.Options, cs *CacheSettings) (_ *hybrid.Cache, release func(), _ error) {
	tier := p.sharedTier
	var own Tier
	if cs.Tier != nil {
		t, owned, err := cs.Tier.build()
		if err != nil {
			return nil, nil, fmt.Errorf("%w (cache %q)", err, name)
		}
		tier = t
		if owned {
			own = t
		}
	}
	fail := func(err error) (*hybrid.Cache, func(), error) {
		if own != nil {
			own.Close()
		}
		return nil, nil, err
	}
	if err := p.wireTier(&opts, cs, tier); err != nil {
		return fail(fmt.Errorf("%w (cache %q)", err, name))
	}
	c, err := hybrid.New(opts)
	if err != nil {
		if opts.Backplane != nil {
			opts.Backplane.Close()
		}
		return fail(err) // it names the cache
	}
	release = func() {}
	if own != nil && !p.adopt(func() { p.ownedTiers = append(p.ownedTiers, own) }) {
		release = func() { own.Close() }
	}
	return c, release, nil
}

// closeTiers closes the tiers the provider built, after the caches.
func (p *Provider) closeTiers() []error {
	var errs []error
	for _, t := range p.ownedTiers {
		errs = append(errs, t.Close())
	}
	if p.tierOwned {
		errs = append(errs, p.sharedTier.Close())
	}
	return errs
}
