package bench

import (
	"context"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/eko/gocache/lib/v4/cache"
	"github.com/eko/gocache/lib/v4/marshaler"
	"github.com/eko/gocache/lib/v4/store"
	redisstore "github.com/eko/gocache/store/redis/v4"
	ristrettostore "github.com/eko/gocache/store/ristretto/v4"
)

// ekoLoadable is eko/gocache's loadable cache over a ristretto store: its Get
// is the read-through (a singleflight per key, then the store, then the load
// function given to NewLoadable).
type ekoLoadable struct {
	rc   *ristretto.Cache[string, Value]
	base *cache.Cache[Value]
	lc   *cache.LoadableCache[Value]
}

func newEkoLoadable(e env) (contender, error) {
	rc, err := newRistrettoCache[Value](capacity)
	if err != nil {
		return nil, err
	}
	st := ristrettostore.NewRistretto[string, Value](rc, store.WithCost(1), store.WithExpiration(ttl))
	base := cache.New[Value](st)
	load := e.load
	lc := cache.NewLoadable[Value](func(ctx context.Context, key any) (Value, []store.Option, error) {
		v, err := load(ctx, key.(string))
		return v, nil, err
	}, base)
	return &ekoLoadable{rc: rc, base: base, lc: lc}, nil
}

func (l *ekoLoadable) Get(ctx context.Context, key string) (Value, bool) {
	v, err := l.base.Get(ctx, key)
	return v, err == nil
}

func (l *ekoLoadable) GetOrLoad(ctx context.Context, key string) (Value, error) {
	return l.lc.Get(ctx, key)
}

func (l *ekoLoadable) Set(ctx context.Context, key string, v Value) error {
	return l.lc.Set(ctx, key, v)
}

func (l *ekoLoadable) wait() { l.rc.Wait() }

func (l *ekoLoadable) Close() error {
	err := l.lc.Close()
	l.rc.Close()
	return err
}

// ekoChain is eko/gocache's chain of a ristretto store and a Redis store,
// behind eko's marshaler (msgpack), which eko's README prescribes for structs
// because the Redis store returns strings. A Get walks the chain (the Redis
// store's GetWithTTL is a GET and a TTL: two round trips) and hands the value
// to the chain's setter goroutine to fill the layers above. The chain has no
// loader: GetOrLoad is Get, then load and Set, with no stampede protection.
type ekoChain struct {
	rc    *ristretto.Cache[string, any]
	chain *cache.ChainCache[any]
	m     *marshaler.Marshaler
	load  loader
}

func newEkoChain(e env) (contender, error) {
	return newEkoChainL1(e, false)
}

// newEkoChainColdL1 is the chain whose memory layer never hits, as if L1
// reads were skipped: every Get goes on to Redis (for the L2 hit benchmark).
// Everything else, the set-back into the memory layer included, is eko's.
func newEkoChainColdL1(e env) (contender, error) {
	return newEkoChainL1(e, true)
}

func newEkoChainL1(e env, cold bool) (contender, error) {
	if e.rdb == nil {
		return nil, errNeedsRedis
	}
	rc, err := newRistrettoCache[any](capacity)
	if err != nil {
		return nil, err
	}
	var client ristrettostore.RistrettoClientInterface[string, any] = rc
	if cold {
		client = coldRistretto{rc}
	}
	l1 := cache.New[any](ristrettostore.NewRistretto[string, any](client, store.WithCost(1), store.WithExpiration(ttl)))
	l2 := cache.New[any](redisstore.NewRedis(e.rdb, store.WithExpiration(ttl)))
	chain := cache.NewChain[any](l1, l2)
	return &ekoChain{rc: rc, chain: chain, m: marshaler.New(chain), load: e.load}, nil
}

func (c *ekoChain) Get(ctx context.Context, key string) (Value, bool) {
	var v Value
	_, err := c.m.Get(ctx, key, &v)
	return v, err == nil
}

func (c *ekoChain) GetOrLoad(ctx context.Context, key string) (Value, error) {
	if v, ok := c.Get(ctx, key); ok {
		return v, nil
	}
	v, err := c.load(ctx, key)
	if err != nil {
		return Value{}, err
	}
	return v, c.m.Set(ctx, key, v)
}

func (c *ekoChain) Set(ctx context.Context, key string, v Value) error {
	return c.m.Set(ctx, key, v)
}

func (c *ekoChain) inL1(key string) bool {
	_, ok := c.rc.Get(key)
	return ok
}

func (c *ekoChain) wait() { c.rc.Wait() }

func (c *ekoChain) Close() error {
	err := c.chain.Close()
	c.rc.Close()
	return err
}

// coldRistretto is a ristretto client whose reads always miss; writes go to
// the real cache.
type coldRistretto struct {
	*ristretto.Cache[string, any]
}

func (coldRistretto) Get(string) (any, bool)              { return nil, false }
func (coldRistretto) GetTTL(string) (time.Duration, bool) { return 0, false }
func (c coldRistretto) Del(key string)                    { c.Cache.Del(key) }
func (c coldRistretto) Wait()                             { c.Cache.Wait() }
func (c coldRistretto) Clear()                            { c.Cache.Clear() }
func (c coldRistretto) SetWithTTL(k string, v any, cost int64, d time.Duration) bool {
	return c.Cache.SetWithTTL(k, v, cost, d)
}
