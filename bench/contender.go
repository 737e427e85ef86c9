package bench

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// loader is the data source behind a cache: what a contender calls on a miss.
type loader func(ctx context.Context, key string) (Value, error)

// contender is one cache under test. Each implementation uses its peer the
// way the peer's documentation recommends; the loader is bound when the
// contender is built, as a peer's docs bind it (eko's loadable cache takes it
// in its constructor; for the others it is a function value built once, so
// that the adapter allocates nothing per call of its own).
type contender interface {
	// Get looks key up without loading it.
	Get(ctx context.Context, key string) (Value, bool)
	// GetOrLoad returns key's value, calling the loader on a miss, with the
	// peer's stampede protection when it has one.
	GetOrLoad(ctx context.Context, key string) (Value, error)
	// Set stores v under key.
	Set(ctx context.Context, key string, v Value) error
	// Close releases what the contender started (goroutines, not the Redis
	// client, which the benchmark owns).
	Close() error
}

// l1Checker is implemented by the contenders with a Redis tier, whose Get
// would fall through to Redis on a memory miss: it says whether key is in the
// memory tier, so that a hit benchmark can check that it measures memory hits.
type l1Checker interface {
	inL1(key string) bool
}

// waiter is implemented by the contenders whose writes are buffered
// (ristretto's): wait returns once the writes made so far are applied.
type waiter interface {
	wait()
}

// env is what a contender may use: the Redis client of the run (nil when the
// benchmark has no Redis) and the loader.
type env struct {
	rdb  *redis.Client
	load loader
}

// errNeedsRedis is returned by the constructors of the Redis-backed
// contenders when env has no Redis client.
var errNeedsRedis = errors.New("bench: contender needs Redis")

// newRedisClient returns the go-redis client that every Redis-backed
// contender uses, so that all of them run with the same options.
func newRedisClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:     addr,
		Protocol: 3,
		// Enough connections for RunParallel and the fill workers on this
		// machine; the same for every contender.
		PoolSize:     32,
		MinIdleConns: 4,
	})
}

// notFound is the loader of the hit benchmarks: it must never be called.
func notFound(context.Context, string) (Value, error) {
	return Value{}, errors.New("bench: loader called in a hit benchmark")
}
