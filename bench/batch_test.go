package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/viccon/sturdyc"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/cputime"
)

// batchSize is the number of keys of one batch call in the batch benchmarks.
const batchSize = 100

// batchKeys returns the first batchSize keys of the key space, and their values.
func batchKeys() ([]string, []Value) {
	k := sharedKeyspace()
	return k.keys[:batchSize], k.values[:batchSize]
}

// redisCalls returns how many times Redis ran cmd (INFO commandstats), to report
// round trips per operation beside the time.
func redisCalls(tb testing.TB, rdb *redis.Client, cmd string) int {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatalf("INFO commandstats: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
			return n
		}
	}
	return 0
}

// cpuMeter starts measuring the CPU time of the benchmark's process (its
// own, not Redis's: user and system time, GC included); the function it
// returns reports it as cpu-ns/op. Where wall time swings with the load of
// a shared machine, the client's CPU per operation stays steadier.
func cpuMeter(b *testing.B) func() {
	start, ok := cputime.Process()
	return func() {
		if end, ok2 := cputime.Process(); ok && ok2 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// noBatchLoad is the batch factory of the hit benchmarks: never called.
func noBatchLoad(context.Context, *hybrid.BatchContext[Value]) (map[string]Value, error) {
	panic("bench: batch factory called in a hit benchmark")
}

// BenchmarkBatchL2Hit reads batchSize keys that are all in Redis, memory
// skipped: Strata's GetOrSetMany (one MGET), the floor (a raw MGET of the
// same number of msgpack values plus their decoding), and batchSize
// sequential GetOrSet calls each hitting L2. It reports mget/op and get/op.
func BenchmarkBatchL2Hit(b *testing.B) {
	rdb := redisFor(b)
	ctx := context.Background()
	keys, values := batchKeys()

	c, err := hybrid.New(hybrid.Options{Name: "bench-batch", Entry: hybrid.EntryOptions{Duration: ttl},
		L2: hybrid.NewRedisL2(rdb)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	fill := map[string]Value{}
	for i, k := range keys {
		fill[k] = values[i]
	}
	if err := hybrid.SetMany(ctx, c, fill, skipL1); err != nil {
		b.Fatal(err)
	}
	rawKeys := make([]string, len(keys))
	pipe := rdb.Pipeline()
	for i, k := range keys {
		rawKeys[i] = "raw:" + k
		bs, _ := msgpack.Marshal(values[i])
		pipe.Set(ctx, rawKeys[i], bs, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B, run func()) {
		m0, g0 := redisCalls(b, rdb, "mget"), redisCalls(b, rdb, "get")
		b.ResetTimer()
		cpu := cpuMeter(b)
		for b.Loop() {
			run()
		}
		b.StopTimer()
		cpu()
		b.ReportMetric(float64(redisCalls(b, rdb, "mget")-m0)/float64(b.N), "mget/op")
		b.ReportMetric(float64(redisCalls(b, rdb, "get")-g0)/float64(b.N), "get/op")
	}

	b.Run("cache=redis-mget-decode", func(b *testing.B) {
		report(b, func() {
			res, err := rdb.MGet(ctx, rawKeys...).Result()
			if err != nil || len(res) != batchSize {
				b.Fatal(err)
			}
			out := make([]Value, batchSize)
			for i, r := range res {
				s, _ := r.(string)
				if err := msgpack.Unmarshal([]byte(s), &out[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("cache=strata-getorsetmany", func(b *testing.B) {
		report(b, func() {
			res, err := hybrid.GetOrSetMany(ctx, c, keys, noBatchLoad, skipL1)
			if err != nil || !res[batchSize-1].Found {
				b.Fatal(err)
			}
		})
	})
	b.Run("cache=strata-getorset-sequential", func(b *testing.B) {
		one := func(context.Context, *hybrid.FactoryContext[Value]) (Value, error) {
			panic("bench: factory called in a hit benchmark")
		}
		report(b, func() {
			for _, k := range keys {
				if _, err := hybrid.GetOrSet(ctx, c, k, one, skipL1); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkBatchCold loads batchSize keys that no tier holds (new keys on
// every iteration), with a loader that answers at once: Strata with Redis
// (one MGET, one factory call, one pipelined write), Strata memory-only,
// and sturdyc's GetOrFetchBatch (memory only). It reports factory-calls/op.
func BenchmarkBatchCold(b *testing.B) {
	ctx := context.Background()
	_, values := batchKeys()
	var gen atomic.Int64
	nextKeys := func() []string {
		g := gen.Add(1)
		ks := make([]string, batchSize)
		for i := range ks {
			ks[i] = fmt.Sprintf("cold:%d:%d", g, i)
		}
		return ks
	}
	var calls atomic.Int64
	strataLoad := func(_ context.Context, bc *hybrid.BatchContext[Value]) (map[string]Value, error) {
		calls.Add(1)
		out := make(map[string]Value, len(bc.Keys()))
		for i, k := range bc.Keys() {
			out[k] = values[i%batchSize]
		}
		return out, nil
	}
	run := func(b *testing.B, get func(keys []string)) {
		calls.Store(0)
		b.ResetTimer()
		for b.Loop() {
			b.StopTimer()
			keys := nextKeys()
			b.StartTimer()
			get(keys)
		}
		b.StopTimer()
		b.ReportMetric(float64(calls.Load())/float64(b.N), "factory-calls/op")
	}
	b.Run("cache=strata-redis", func(b *testing.B) {
		rdb := redisFor(b)
		c, err := hybrid.New(hybrid.Options{Name: "bench-cold", L1MaxEntries: capacity,
			Entry: hybrid.EntryOptions{Duration: ttl}, L2: hybrid.NewRedisL2(rdb)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		e0 := redisCalls(b, rdb, "evalsha")
		run(b, func(keys []string) {
			if _, err := hybrid.GetOrSetMany(ctx, c, keys, strataLoad); err != nil {
				b.Fatal(err)
			}
		})
		b.ReportMetric(float64(redisCalls(b, rdb, "evalsha")-e0)/float64(b.N), "evalsha/op")
	})
	// A provider over one Redis, as a service builds it: L2 and backplane on
	// the one client (each write's script publishes its message), writes
	// waited for (BackgroundL2Operations off), so that the time is theirs.
	b.Run("cache=strata-provider-sync", func(b *testing.B) {
		rdb := redisFor(b)
		p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{Client: rdb}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
		c, err := p.Register(fmt.Sprintf("bench-cold-%d", gen.Add(1)), func(s *strata.CacheSettings) {
			s.L1MaxEntries = capacity
			s.Entry.BackgroundL2Operations = false
			s.WaitForInitialBackplaneSubscribe = 5 * time.Second
		})
		if err != nil {
			b.Fatal(err)
		}
		e0, p0 := redisCalls(b, rdb, "evalsha"), redisCalls(b, rdb, "publish")
		run(b, func(keys []string) {
			if _, err := hybrid.GetOrSetMany(ctx, c, keys, strataLoad); err != nil {
				b.Fatal(err)
			}
		})
		b.ReportMetric(float64(redisCalls(b, rdb, "evalsha")-e0)/float64(b.N), "evalsha/op")
		b.ReportMetric(float64(redisCalls(b, rdb, "publish")-p0)/float64(b.N), "publish/op")
	})
	b.Run("cache=strata-memory", func(b *testing.B) {
		c, err := hybrid.New(hybrid.Options{Name: "bench-cold", L1MaxEntries: capacity, Entry: hybrid.EntryOptions{Duration: ttl}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		run(b, func(keys []string) {
			if _, err := hybrid.GetOrSetMany(ctx, c, keys, strataLoad); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("cache=sturdyc", func(b *testing.B) {
		sc := sturdyc.New[Value](capacity, sturdycShards, ttl, sturdycEvictionPercentage)
		keyFn := sc.BatchKeyFn("item")
		fetch := func(_ context.Context, ids []string) (map[string]Value, error) {
			calls.Add(1)
			out := make(map[string]Value, len(ids))
			for i, id := range ids {
				out[id] = values[i%batchSize]
			}
			return out, nil
		}
		run(b, func(keys []string) {
			if _, err := sc.GetOrFetchBatch(ctx, keys, keyFn, fetch); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkBatchMemoryHit reads batchSize keys that are all in memory:
// Strata's GetOrSetMany and sturdyc's GetOrFetchBatch.
func BenchmarkBatchMemoryHit(b *testing.B) {
	ctx := context.Background()
	keys, values := batchKeys()
	b.Run("cache=strata", func(b *testing.B) {
		c, err := hybrid.New(hybrid.Options{Name: "bench-hit", L1MaxEntries: capacity, Entry: hybrid.EntryOptions{Duration: ttl}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		fill := map[string]Value{}
		for i, k := range keys {
			fill[k] = values[i]
		}
		if err := hybrid.SetMany(ctx, c, fill); err != nil {
			b.Fatal(err)
		}
		cpu := cpuMeter(b)
		for b.Loop() {
			res, err := hybrid.GetOrSetMany(ctx, c, keys, noBatchLoad)
			if err != nil || !res[0].Found {
				b.Fatal(err)
			}
		}
		cpu()
	})
	b.Run("cache=sturdyc", func(b *testing.B) {
		sc := sturdyc.New[Value](capacity, sturdycShards, ttl, sturdycEvictionPercentage)
		keyFn := sc.BatchKeyFn("item")
		fetch := func(_ context.Context, ids []string) (map[string]Value, error) {
			out := make(map[string]Value, len(ids))
			for i, id := range ids {
				out[id] = values[i]
			}
			return out, nil
		}
		if _, err := sc.GetOrFetchBatch(ctx, keys, keyFn, fetch); err != nil {
			b.Fatal(err)
		}
		none := func(context.Context, []string) (map[string]Value, error) {
			panic("bench: sturdyc fetched in a hit benchmark")
		}
		cpu := cpuMeter(b)
		for b.Loop() {
			res, err := sc.GetOrFetchBatch(ctx, keys, keyFn, none)
			if err != nil || len(res) != batchSize {
				b.Fatal(err)
			}
		}
		cpu()
	})
}
