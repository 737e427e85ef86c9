package strata

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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
	sharedSpace string // redisSpace of Settings.Redis
	sharedTier  Tier   // Settings.Tier; nil unless set
	tierOwned   bool   // sharedTier was built by the provider
	ownedTiers  []Tier // isolated tiers the provider built

	mu       sync.RWMutex
	caches   map[string]*hybrid.Cache
	keyspace map[string]keyspace     // of every cache registered or being registered
	owned    []redis.UniversalClient // isolated clients the provider created
	closed   bool
	closeMu  sync.Once
	err      error
}

// keyspace is where a cache keeps its distributed entries: on a Redis
// (space: see redisSpace) or on the provider's shared tier ("tier"),
// under prefix. Caches on a tier of their own have none (space ""), nor
// do caches on Redis clients that the provider cannot tell apart from
// another server's: it compares the RedisSettings, not the servers.
type keyspace struct {
	space  string // redisSpace, "tier" or ""
	prefix string
}

// redisSpace names the Redis that r reaches, as far as the settings tell:
// one Client value (the same client given to several caches, or the
// shared one given again), one URL string, or one list of cluster seeds.
// Two RedisSettings with the same name reach the same keys.
func redisSpace(r *RedisSettings) string {
	switch {
	case r.Client != nil:
		return fmt.Sprintf("redis client %p", r.Client)
	case len(r.Addrs) > 0:
		addrs := slices.Clone(r.Addrs)
		slices.Sort(addrs)
		return "redis addrs " + strings.Join(addrs, ",")
	}
	return "redis url " + r.URL
}

// overlaps reports whether two keyspaces can hold the same key: on one
// store, one prefix is the other or begins it ("a:" and "a:b:" both hold
// "a:b:k").
func (k keyspace) overlaps(o keyspace) bool {
	return k.space != "" && k.space == o.space &&
		(strings.HasPrefix(k.prefix, o.prefix) || strings.HasPrefix(o.prefix, k.prefix))
}

// NewProvider validates s and creates a provider. With s.Redis set it
// creates (or takes) the shared client; it does not contact Redis.
// Register starts a cache's backplane subscription and waits at most
// 200 ms for it to be sent, never for Redis's answer (unless the cache
// asks to wait for the subscription): a service starts at once and serves
// from memory while Redis is down or hung.
func NewProvider(s Settings) (*Provider, error) {
	p := &Provider{caches: make(map[string]*hybrid.Cache), keyspace: make(map[string]keyspace), logger: s.Logger, redactKeys: s.RedactKeys,
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
		p.shared, p.sharedOwned, p.sharedSpace = c, owned, redisSpace(s.Redis)
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
// over a default). It returns an error for an invalid or duplicate name,
// for invalid settings, naming the field, and for a KeyPrefix that
// overlaps another cache's on the same Redis (the shared client, or the
// same Client, URL or Addrs given to both) or shared tier (one prefix is
// the other or begins it, as "a:" and "a:b:" of caches named "a" and
// "a:b": their keys would mix).
//
// The cache is built outside the provider's lock: a Register that waits
// for its backplane subscription (WaitForInitialBackplaneSubscribe) does
// not hold up GetCache, Names or other Registers.
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
	if err := p.reserve(name, p.keyspaceOf(&cs)); err != nil {
		return nil, err
	}
	c, release, err := p.build(name, opts, &cs)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil && p.closed {
		c.Close()
		release()
		err = ErrClosed
	}
	if err != nil {
		delete(p.keyspace, name) // the reservation
		return nil, err
	}
	p.caches[name] = c
	return c, nil
}

// keyspaceOf returns where a cache with cs keeps its distributed entries.
func (p *Provider) keyspaceOf(cs *CacheSettings) keyspace {
	switch {
	case cs.DisableL2 || cs.Tier != nil:
		return keyspace{}
	case cs.Redis != nil:
		// Its own client, but perhaps on the Redis of another cache: the
		// same Client, URL or seeds (a Redis in Defaults gives every cache
		// the same).
		return keyspace{space: redisSpace(cs.Redis), prefix: cs.KeyPrefix}
	case p.sharedTier != nil:
		return keyspace{space: "tier", prefix: cs.KeyPrefix}
	case p.shared != nil:
		return keyspace{space: p.sharedSpace, prefix: cs.KeyPrefix}
	}
	return keyspace{}
}

// reserve claims name, and its keyspace, for a Register in progress.
func (p *Provider) reserve(name string, ks keyspace) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if _, dup := p.keyspace[name]; dup {
		return fmt.Errorf("%w: %q", ErrDuplicateName, name)
	}
	for other, oks := range p.keyspace {
		if ks.overlaps(oks) {
			return fmt.Errorf("%w: KeyPrefix %q of cache %q overlaps KeyPrefix %q of cache %q on the same %s: their keys would mix",
				ErrInvalidSettings, ks.prefix, name, oks.prefix, other, ks.store())
		}
	}
	p.keyspace[name] = ks
	return nil
}

// store names ks's store in an error.
func (k keyspace) store() string {
	if k.space == "tier" {
		return "distributed tier"
	}
	return "Redis"
}

// build creates the cache (outside the lock; the name is reserved).
// release closes what build created for it (an isolated client or tier)
// when the cache is not kept after all; on success that is recorded to be
// closed with the provider.
func (p *Provider) build(name string, opts hybrid.Options, cs *CacheSettings) (c *hybrid.Cache, release func(), err error) {
	if cs.Tier != nil || cs.Redis == nil && p.sharedTier != nil {
		return p.registerOnTier(name, opts, cs)
	}
	client := p.shared
	var own redis.UniversalClient
	if cs.Redis != nil {
		c, owned, err := cs.Redis.newClient()
		if err != nil {
			return nil, nil, fmt.Errorf("%w (cache %q)", err, name)
		}
		p.checkClient(c, name)
		client = c
		if owned {
			own = c
		}
	}
	if err := p.wire(&opts, cs, client); err != nil {
		closeClient(own)
		return nil, nil, fmt.Errorf("%w (cache %q)", err, name)
	}
	c, err = hybrid.New(opts)
	if err != nil {
		if opts.Backplane != nil {
			opts.Backplane.Close() // New takes ownership only when it succeeds
		}
		closeClient(own)
		return nil, nil, err // it names the cache
	}
	release = func() {}
	if own != nil && !p.adopt(func() { p.owned = append(p.owned, own) }) {
		release = func() { own.Close() }
	}
	return c, release, nil
}

// adopt runs add, which records something build created for a cache (an
// isolated client or tier) to be closed with the provider, after the
// caches; it reports false, without running add, if the provider closed
// while the cache was being built (the caller then closes it itself).
func (p *Provider) adopt(add func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	add()
	return true
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

// Close closes every cache, then the Redis clients and the tiers the
// provider created (never a client or a Tier the caller passed in). The
// caches close together: with Redis hung, Close waits about one
// L2HardTimeout for their background writes and one read timeout of the
// client for go-redis to release their subscriptions, not one per cache.
// It is idempotent and returns every error met, joined (errors.Join); a
// second call returns the same.
func (p *Provider) Close() error {
	p.closeMu.Do(func() {
		p.mu.Lock()
		p.closed = true
		caches := p.caches
		owned := p.owned
		p.mu.Unlock()
		errs := closeAll(caches)
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

// closeAll closes the caches together and returns their errors. A cache's
// Close waits for its background writes (each bounded by its
// L2HardTimeout) and for go-redis to release its subscription, which a
// hung Redis holds for up to the client's dial and read timeouts: closed
// one after another, a provider of n caches would wait that n times.
func closeAll(caches map[string]*hybrid.Cache) []error {
	errs := make(chan error, len(caches))
	for _, c := range caches {
		go func() { errs <- c.Close() }()
	}
	out := make([]error, 0, len(caches))
	for range caches {
		out = append(out, <-errs)
	}
	return out
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
