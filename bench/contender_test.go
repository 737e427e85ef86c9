package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestContenders checks every adapter before its figures are trusted: a Set
// is read back equal, and GetOrLoad loads a missing key once, then hits.
func TestContenders(t *testing.T) {
	rdb := redisFor(t)
	all := map[string]func(env) (contender, error){
		"strata":            newStrata,
		"strata-l2":         newStrataL2,
		"ristretto":         newRistretto,
		"otter":             newOtter,
		"sturdyc":           newSturdyc,
		"eko-loadable":      newEkoLoadable,
		"eko-chain":         newEkoChain,
		"eko-chain-cold-l1": newEkoChainColdL1,
		"go-redis-cache":    newGoRedisCache,
		"go-redis-cache-l2": newGoRedisCacheSkipLocal,
		"redis-get-decode":  newRedisGetDecode,
	}
	run := time.Now().UnixNano()
	for name, f := range all {
		t.Run(name, func(t *testing.T) {
			var loads atomic.Int64
			load := func(_ context.Context, key string) (Value, error) {
				loads.Add(1)
				return newValue(7), nil
			}
			c := newContender(t, f, env{rdb: rdb, load: load})
			ctx := context.Background()
			prefix := fmt.Sprintf("bench:test:%d:%s:", run, name)

			want := newValue(3)
			if err := c.Set(ctx, prefix+"set", want); err != nil {
				t.Fatalf("Set: %v", err)
			}
			if w, ok := c.(waiter); ok {
				w.wait()
			}
			got, ok := c.Get(ctx, prefix+"set")
			if !ok || got != want {
				t.Fatalf("Get after Set = %+v, %v; want %+v, true", got, ok, want)
			}

			for i := range 2 {
				got, err := c.GetOrLoad(ctx, prefix+"load")
				if err != nil || got != newValue(7) {
					t.Fatalf("GetOrLoad #%d = %+v, %v; want %+v", i+1, got, err, newValue(7))
				}
				if w, ok := c.(waiter); ok {
					w.wait()
				}
			}
			if n := loads.Load(); n != 1 {
				t.Errorf("loads = %d, want 1", n)
			}
		})
	}
}
