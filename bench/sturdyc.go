package bench

import (
	"context"

	"github.com/viccon/sturdyc"
)

// sturdycShards and sturdycEvictionPercentage follow sturdyc's README.
const (
	sturdycShards             = 10
	sturdycEvictionPercentage = 10
)

// sturdycCache is sturdyc in memory: Get for a lookup, GetOrFetch for a
// read-through (its fetch function takes no key, so it is a closure over the
// key for every call, as in sturdyc's examples).
type sturdycCache struct {
	c    *sturdyc.Client[Value]
	load loader
}

func newSturdyc(e env) (contender, error) {
	// Continuous evictions are left on (the default): sturdyc starts a
	// goroutine that never exits.
	c := sturdyc.New[Value](capacity, sturdycShards, ttl, sturdycEvictionPercentage)
	return &sturdycCache{c: c, load: e.load}, nil
}

func (s *sturdycCache) Get(_ context.Context, key string) (Value, bool) {
	return s.c.Get(key)
}

func (s *sturdycCache) GetOrLoad(ctx context.Context, key string) (Value, error) {
	return s.c.GetOrFetch(ctx, key, func(ctx context.Context) (Value, error) {
		return s.load(ctx, key)
	})
}

func (s *sturdycCache) Set(_ context.Context, key string, v Value) error {
	s.c.Set(key, v)
	return nil
}

func (s *sturdycCache) Close() error { return nil }
