package bench

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/strata-cache/strata/internal/redistest"
)

var (
	ksOnce sync.Once
	ks     *keyspace
)

// sharedKeyspace returns the keys and streams of the run, built once.
func sharedKeyspace() *keyspace {
	ksOnce.Do(func() { ks = newKeyspace() })
	return ks
}

// redisFor returns a Redis client for tb: on REDIS_ADDR when it is set, else
// on a redis-server that redistest starts for tb (and stops at its cleanup).
// The client is closed at tb's cleanup.
func redisFor(tb testing.TB) *redis.Client {
	tb.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = redistest.Start(tb).Addr()
	}
	rdb := newRedisClient(addr)
	tb.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		tb.Fatalf("redis %s: %v", addr, err)
	}
	return rdb
}

// newContender builds a contender for tb, skips tb when the contender cannot run
// here (no Redis, Strata's L2 not wired), and closes it at tb's cleanup.
func newContender(tb testing.TB, f func(env) (contender, error), e env) contender {
	tb.Helper()
	c, err := f(e)
	switch {
	case errors.Is(err, errNeedsRedis):
		tb.Skip(err)
	case err != nil:
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return c
}

// fillWorkers is the number of goroutines that fill a cache, so that the
// Redis-backed contenders are filled in a fraction of a second.
const fillWorkers = 8

// fill stores values[i] under keys[i] in c and checks that every key is then
// present (in the memory tier, for the contenders with one), setting again
// what a buffered or admission-controlled cache dropped. It fails tb when
// some keys are still missing after a few rounds.
func fill(tb testing.TB, c contender, keys []string, values []Value) {
	tb.Helper()
	ctx := context.Background()
	// A failed Set (ristretto drops writes under contention) is not an
	// error here: the check below sets again whatever is missing.
	var wg sync.WaitGroup
	for w := range fillWorkers {
		wg.Go(func() {
			for i := w; i < len(keys); i += fillWorkers {
				_ = c.Set(ctx, keys[i], values[i])
			}
		})
	}
	wg.Wait()
	var missing []int
	for range 50 {
		if w, ok := c.(waiter); ok {
			w.wait()
		}
		missing = missing[:0]
		for i, k := range keys {
			if !present(ctx, c, k) {
				missing = append(missing, i)
			}
		}
		if len(missing) == 0 {
			return
		}
		for _, i := range missing {
			_ = c.Set(ctx, keys[i], values[i])
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("fill: %d of %d keys still missing", len(missing), len(keys))
}

// present says whether key is in c's memory tier (or in c, for a contender
// without one).
func present(ctx context.Context, c contender, key string) bool {
	if l1, ok := c.(l1Checker); ok {
		return l1.inL1(key)
	}
	_, ok := c.Get(ctx, key)
	return ok
}
