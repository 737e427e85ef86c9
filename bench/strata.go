package bench

import (
	"context"

	"github.com/strata-cache/strata/hybrid"
)

// strataCache is Strata's hybrid cache: TryGet for a lookup, GetOrSet for a
// read-through. The factory is built once, so a GetOrSet hit allocates
// nothing on the adapter's side.
type strataCache struct {
	c       *hybrid.Cache
	factory hybrid.Factory[Value]
	opts    []hybrid.Option // per-call options, built once (nil for plain calls)
}

func newStrata(e env) (contender, error) {
	return newStrataSized(e, capacity)
}

// newStrataSized is a memory-only Strata cache of max entries.
func newStrataSized(e env, max int64) (contender, error) {
	c, err := hybrid.New(hybrid.Options{
		Name:         "bench",
		L1MaxEntries: max,
		Entry:        hybrid.EntryOptions{Duration: ttl},
	})
	if err != nil {
		return nil, err
	}
	return wrapStrata(c, e.load), nil
}

func wrapStrata(c *hybrid.Cache, load loader, opts ...hybrid.Option) *strataCache {
	return &strataCache{
		c: c,
		factory: func(ctx context.Context, fc *hybrid.FactoryContext[Value]) (Value, error) {
			return load(ctx, fc.Key())
		},
		opts: opts,
	}
}

func (s *strataCache) Get(ctx context.Context, key string) (Value, bool) {
	v, ok, err := hybrid.TryGet[Value](ctx, s.c, key, s.opts...)
	return v, ok && err == nil
}

func (s *strataCache) GetOrLoad(ctx context.Context, key string) (Value, error) {
	return hybrid.GetOrSet[Value](ctx, s.c, key, s.factory, s.opts...)
}

func (s *strataCache) Set(ctx context.Context, key string, v Value) error {
	return hybrid.Set[Value](ctx, s.c, key, v, s.opts...)
}

func (s *strataCache) Close() error { return s.c.Close() }
