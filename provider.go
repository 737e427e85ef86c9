package strata

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/hybrid"
)

// Errors returned by the provider, matched with errors.Is.
var (
	// ErrCacheNotFound is returned by GetCache for a name never registered.
	ErrCacheNotFound = errors.New("strata: cache not found")
	// ErrDuplicateName is returned by Register for a name already registered.
	ErrDuplicateName = errors.New("strata: duplicate cache name")
	// ErrInvalidSettings is returned for settings that cannot be honoured;
	// the error names the field.
	ErrInvalidSettings = errors.New("strata: invalid settings")
	// ErrClosed is returned by Register after Close.
	ErrClosed = errors.New("strata: provider closed")
)

// Provider creates and holds named caches. It is safe for concurrent use.
type Provider struct {
	defaults   CacheSettings
	logger     *slog.Logger
	redactKeys bool
	events     *hybrid.Events
	tracer     hybrid.Tracer
	traceKeys  bool

	shared      redis.UniversalClient // nil: memory-only unless a cache is isolated
	sharedOwned bool
	sharedTier  Tier   // Settings.Tier; nil unless set
	tierOwned   bool   // sharedTier was built by the provider
	ownedTiers  []Tier // isolated tiers the provider built

	mu      sync.RWMutex
	caches  map[string]*hybrid.Cache
	owned   []redis.UniversalClient // isolated clients the provider created
	closed  bool
	closeMu sync.Once
	err     error
}

// NewProvider validates s and creates a provider. With s.Redis set it
// creates (or takes) the shared client; it does not contact Redis, and
// neither does Register (unless a cache asks to wait for its backplane
// subscription): a service starts at once and serves from memory while
// Redis is away.
func NewProvider(s Settings) (*Provider, error) {
	p := &Provider{caches: make(map[string]*hybrid.Cache), logger: s.Logger, redactKeys: s.RedactKeys,
		tracer: s.Tracer, traceKeys: s.TraceKeys}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	if s.Events != nil {
		ev := *s.Events
		p.events = &ev
	}
	if s.Defaults != nil {
		p.defaults = s.Defaults.clone()
	} else {
		p.defaults = ProductionDefaults()
	}
	if err := p.defaults.validate(); err != nil {
		return nil, fmt.Errorf("%w (in Defaults)", err)
	}
	if s.Redis != nil {
		if err := s.Redis.validate(); err != nil {
			return nil, err
		}
		c, owned, err := s.Redis.newClient()
		if err != nil {
			return nil, err
		}
		p.shared, p.sharedOwned = c, owned
		p.checkClient(c, "")
	}
	if s.Tier != nil {
		if err := p.openSharedTier(s); err != nil {
			if p.sharedOwned {
				p.shared.Close()
			}
			return nil, err
		}
	}
	return p, nil
}

// Register creates the cache name from a copy of the provider's defaults,
// changed by each configure func in order (so an explicit false or 0 wins
// over a default). It returns an error for an invalid or duplicate name
// and for invalid settings, naming the field.
func (p *Provider) Register(name string, configure ...func(*CacheSettings)) (*hybrid.Cache, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	cs := p.defaults.clone()
	for _, f := range configure {
		if f != nil {
			f(&cs)
		}
	}
	if err := cs.validate(); err != nil {
		return nil, fmt.Errorf("%w (cache %q)", err, name)
	}
	opts := cs.options(name)
	opts.Logger, opts.RedactKeys, opts.Events = p.logger, p.redactKeys, p.events
	opts.Tracer, opts.TraceKeys = p.tracer, p.traceKeys
	cs.KeyPrefix = opts.KeyPrefix

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if _, dup := p.caches[name]; dup {
		return nil, fmt.Errorf("%w: %q", ErrDuplicateName, name)
	}
	if cs.Tier != nil || cs.Redis == nil && p.sharedTier != nil {
		return p.registerOnTier(name, opts, &cs)
	}
	client := p.shared
	var own redis.UniversalClient
	if cs.Redis != nil {
		c, owned, err := cs.Redis.newClient()
		if err != nil {
			return nil, fmt.Errorf("%w (cache %q)", err, name)
		}
		p.checkClient(c, name)
		client = c
		if owned {
			own = c
		}
	}
	if err := p.wire(&opts, &cs, client); err != nil {
		closeClient(own)
		return nil, fmt.Errorf("%w (cache %q)", err, name)
	}
	c, err := hybrid.New(opts)
	if err != nil {
		if opts.Backplane != nil {
			opts.Backplane.Close() // New takes ownership only when it succeeds
		}
		closeClient(own)
		return nil, err // it names the cache
	}
	if own != nil {
		p.owned = append(p.owned, own)
	}
	p.caches[name] = c
	return c, nil
}

func closeClient(c redis.UniversalClient) {
	if c != nil {
		c.Close()
	}
}

// GetCache returns the cache registered as name, or ErrCacheNotFound.
func (p *Provider) GetCache(name string) (*hybrid.Cache, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	c, ok := p.caches[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrCacheNotFound, name)
	}
	return c, nil
}

// MustGetCache returns the cache registered as name. It panics if there is
// none: use it where a missing cache is a programming error.
func (p *Provider) MustGetCache(name string) *hybrid.Cache {
	c, err := p.GetCache(name)
	if err != nil {
		panic(err)
	}
	return c
}

// Names returns the names of the registered caches, sorted.
func (p *Provider) Names() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	names := make([]string, 0, len(p.caches))
	for n := range p.caches {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Close closes every cache, then the Redis clients the provider created
// (never a client the caller passed in). It is idempotent and returns the
// first error met.
func (p *Provider) Close() error {
	p.closeMu.Do(func() {
		p.mu.Lock()
		p.closed = true
		caches := p.caches
		owned := p.owned
		p.mu.Unlock()
		var errs []error
		for _, c := range caches {
			errs = append(errs, c.Close())
		}
		for _, c := range owned {
			errs = append(errs, c.Close())
		}
		if p.sharedOwned {
			errs = append(errs, p.shared.Close())
		}
		errs = append(errs, p.closeTiers()...)
		p.err = errors.Join(errs...)
	})
	return p.err
}

// slowClusterReload is the slot map reload interval of a cluster client
// above which checkClient warns.
const slowClusterReload = 10 * time.Second

// checkClient warns about a caller's cluster client that reloads its slot
// map rarely (go-redis's default is a minute): after a failover, the
// cache's reads and writes of the old master's slots fail until it does
// (see docs/redis.md). cache names the cache of an isolated client.
func (p *Provider) checkClient(c redis.UniversalClient, cache string) {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return
	}
	if d := cc.Options().ClusterStateReloadInterval; d > slowClusterReload {
		attrs := []any{"interval", d}
		if cache != "" {
			attrs = append(attrs, "cache", cache)
		}
		p.logger.Warn("strata: the cluster client reloads its slot map rarely: after a failover the cache fails on the old master's slots that long; set ClusterOptions.ClusterStateReloadInterval (the provider's own clients use 1s)", attrs...)
	}
}
