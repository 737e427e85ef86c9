package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
)

// BenchmarkSyncSet measures a synchronous write on one goroutine, over the
// uniform stream of l2Keys keys with the keyspace's values, and reports
// p50-ns and p99-ns:
//
//   - raw-set: a go-redis SET of the value's msgpack bytes (the floor);
//   - raw-set-publish: that SET and a PUBLISH of a backplane message of
//     the same size as Strata's, pipelined (one round trip);
//   - raw-set-publish-subscribed: the same with this process subscribed
//     to the channel (a backplane node hears its own messages);
//   - raw-script-publish-subscribed: the SET as a script with the PUBLISH
//     inside it, subscribed (Strata's write without its newest-wins
//     comparison);
//   - strata-sync: hybrid.Set on a cache with the Redis L2 and the Redis
//     backplane on the same client, BackgroundL2Operations off (Set returns
//     once Redis has the entry and the change is announced: one script
//     call, the newest-wins write and its PUBLISH);
//   - strata-sync-l2only: the same without a backplane;
//   - strata-sync-l2only-nol1: that with SkipL1Write (the memory tier not
//     written: what the memory tier's write adds to a synchronous Set);
//   - strata-sync-novalues: strata-sync with DisableBackplaneValues (the
//     message does not carry the entry).
func BenchmarkSyncSet(b *testing.B) {
	k := sharedKeyspace()
	rdb := redisFor(b)
	ctx := context.Background()
	run := time.Now().UnixNano()
	keyOf := func(name string, i int) string { return fmt.Sprintf("bench:set:%d:%s:%06d", run, name, i) }
	strata := func(name string, bp bool) func(key string, v Value) error {
		o := hybrid.Options{Name: "bench-set-" + name, L1MaxEntries: capacity, L2: hybrid.NewRedisL2(rdb),
			Entry: hybrid.EntryOptions{Duration: ttl}}
		if bp {
			p, err := backplane.NewRedis(rdb, backplane.RedisOptions{Channel: backplane.ChannelName("", o.Name)})
			if err != nil {
				b.Fatal(err)
			}
			o.Backplane = p
			o.DisableBackplaneValues = name == "novalues"
			o.WaitForInitialBackplaneSubscribe = 5 * time.Second
		}
		c, err := hybrid.New(o)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		if name == "l2only-nol1" {
			skip := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Write = true })
			return func(key string, v Value) error { return hybrid.Set(ctx, c, key, v, skip) }
		}
		return func(key string, v Value) error { return hybrid.Set(ctx, c, key, v) }
	}
	msg := backplane.Message{Kind: backplane.KindSet, Cache: "bench-set", Key: keyOf("raw-set-publish", 0),
		Source: "0123456789abcdef", Timestamp: run}.AppendBinary(nil)
	// subscribe subscribes this process to channel and drains it until the
	// benchmark ends, as a backplane node is subscribed to its own channel.
	subscribe := func(channel string) {
		ps := rdb.Subscribe(ctx, channel)
		if _, err := ps.Receive(ctx); err != nil {
			b.Fatal(err)
		}
		msgs := ps.Channel()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			for range msgs {
			}
		}()
		b.Cleanup(func() { ps.Close(); <-drained })
	}
	contenders := []struct {
		name string
		set  func(key string, v Value) error
	}{
		{"raw-set", func(key string, v Value) error {
			b, err := msgpack.Marshal(v)
			if err != nil {
				return err
			}
			return rdb.Set(ctx, key, b, ttl).Err()
		}},
		{"raw-set-publish", func(key string, v Value) error {
			b, err := msgpack.Marshal(v)
			if err != nil {
				return err
			}
			_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, b, ttl)
				p.Publish(ctx, "bench-set-raw", msg)
				return nil
			})
			return err
		}},
		// The same with this process subscribed to the channel, as every
		// node of a backplane is to its own: Redis delivers the message to
		// the writer's process too, which wakes to read it.
		{"raw-set-publish-subscribed", func() func(key string, v Value) error {
			subscribe("bench-set-raw-sub")
			return func(key string, v Value) error {
				b, err := msgpack.Marshal(v)
				if err != nil {
					return err
				}
				_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, key, b, ttl)
					p.Publish(ctx, "bench-set-raw-sub", msg)
					return nil
				})
				return err
			}
		}()},
		// The same write as a script, the PUBLISH inside it (as Strata
		// sends it), without the newest-wins comparison: what a script and
		// a message from inside it cost over the pipeline.
		{"raw-script-publish-subscribed", func() func(key string, v Value) error {
			subscribe("bench-set-raw-script")
			script := redis.NewScript(`redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) redis.call('PUBLISH', ARGV[3], ARGV[4]) return 1`)
			return func(key string, v Value) error {
				b, err := msgpack.Marshal(v)
				if err != nil {
					return err
				}
				return script.Run(ctx, rdb, []string{key}, b, ttl.Milliseconds(), "bench-set-raw-script", msg).Err()
			}
		}()},
		{"strata-sync", strata("sync", true)},
		{"strata-sync-l2only", strata("l2only", false)},
		{"strata-sync-l2only-nol1", strata("l2only-nol1", false)},
		{"strata-sync-novalues", strata("novalues", true)},
	}
	for _, sc := range contenders {
		b.Run("cache="+sc.name, func(b *testing.B) {
			keys := make([]string, l2Keys)
			for i := range keys {
				keys[i] = keyOf(sc.name, i)
			}
			stream := k.uniform
			durs := make([]time.Duration, l2Samples)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				j := stream[i&(streamLen-1)] & (l2Keys - 1)
				t0 := time.Now()
				if err := sc.set(keys[j], k.values[j]); err != nil {
					b.Fatal(err)
				}
				durs[i&(l2Samples-1)] = time.Since(t0)
				i++
			}
			reportPercentiles(b, durs[:min(i, l2Samples)])
		})
	}
}
