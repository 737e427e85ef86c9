package bench

import (
	"context"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"
)

// redisRaw is raw go-redis: a GET of the msgpack bytes, and with decode, the
// GET followed by msgpack.Unmarshal into a Value (the floor of an L2 hit).
// Without decode, Get returns a zero Value: it measures the round trip only.
type redisRaw struct {
	rdb    *redis.Client
	decode bool
	load   loader
}

func newRedisGet(e env) (contender, error)       { return newRedisRaw(e, false) }
func newRedisGetDecode(e env) (contender, error) { return newRedisRaw(e, true) }

func newRedisRaw(e env, decode bool) (contender, error) {
	if e.rdb == nil {
		return nil, errNeedsRedis
	}
	return &redisRaw{rdb: e.rdb, decode: decode, load: e.load}, nil
}

func (r *redisRaw) Get(ctx context.Context, key string) (Value, bool) {
	b, err := r.rdb.Get(ctx, key).Bytes()
	if err != nil {
		return Value{}, false
	}
	var v Value
	if r.decode {
		if err := msgpack.Unmarshal(b, &v); err != nil {
			return Value{}, false
		}
	}
	return v, true
}

func (r *redisRaw) GetOrLoad(ctx context.Context, key string) (Value, error) {
	if v, ok := r.Get(ctx, key); ok {
		return v, nil
	}
	v, err := r.load(ctx, key)
	if err != nil {
		return Value{}, err
	}
	return v, r.Set(ctx, key, v)
}

func (r *redisRaw) Set(ctx context.Context, key string, v Value) error {
	b, err := msgpack.Marshal(&v)
	if err != nil {
		return err
	}
	return r.rdb.Set(ctx, key, b, ttl).Err()
}

func (r *redisRaw) Close() error { return nil }
