package bench

import (
	"context"

	rediscache "github.com/go-redis/cache/v9"
)

// goRedisCache is go-redis/cache with Redis and its TinyLFU local cache, as
// its README sets it up. The local cache holds encoded bytes, so even a local
// hit decodes. GetOrLoad is Once (a singleflight per key over local, Redis,
// then Do).
type goRedisCache struct {
	c         *rediscache.Cache
	local     *rediscache.TinyLFU
	do        func(*rediscache.Item) (any, error)
	skipLocal bool
}

func newGoRedisCache(e env) (contender, error) {
	return newGoRedisCacheL1(e, false)
}

// newGoRedisCacheSkipLocal reads with GetSkippingLocalCache, for the L2 hit
// benchmark.
func newGoRedisCacheSkipLocal(e env) (contender, error) {
	return newGoRedisCacheL1(e, true)
}

func newGoRedisCacheL1(e env, skipLocal bool) (contender, error) {
	if e.rdb == nil {
		return nil, errNeedsRedis
	}
	local := rediscache.NewTinyLFU(capacity, ttl)
	c := rediscache.New(&rediscache.Options{Redis: e.rdb, LocalCache: local})
	load := e.load
	do := func(it *rediscache.Item) (any, error) {
		return load(it.Context(), it.Key)
	}
	return &goRedisCache{c: c, local: local, do: do, skipLocal: skipLocal}, nil
}

func (g *goRedisCache) Get(ctx context.Context, key string) (Value, bool) {
	var v Value
	var err error
	if g.skipLocal {
		err = g.c.GetSkippingLocalCache(ctx, key, &v)
	} else {
		err = g.c.Get(ctx, key, &v)
	}
	return v, err == nil
}

func (g *goRedisCache) GetOrLoad(ctx context.Context, key string) (Value, error) {
	var v Value
	err := g.c.Once(&rediscache.Item{Ctx: ctx, Key: key, Value: &v, TTL: ttl, Do: g.do})
	return v, err
}

func (g *goRedisCache) Set(ctx context.Context, key string, v Value) error {
	return g.c.Set(&rediscache.Item{Ctx: ctx, Key: key, Value: v, TTL: ttl})
}

func (g *goRedisCache) inL1(key string) bool {
	_, ok := g.local.Get(key)
	return ok
}

func (g *goRedisCache) Close() error { return nil }
