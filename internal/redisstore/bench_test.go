package redisstore_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/redisstore"
	"github.com/strata-cache/strata/internal/redistest"
)

// BenchmarkServerCost measures what a write costs redis-server, the one
// process every node of a service shares: the newest-wins script (Set), the
// same with its backplane message (SetPublish, to 3 subscribers, as 3 nodes
// would be), against a plain SET, SET and PUBLISH pipelined, and an empty
// script (what running any script costs), and, on keys that do not exist
// (a load's first write), a plain SET, SET NX and PUBLISH pipelined, and
// the newest-wins script with a message that does not carry the entry. A
// 1 KiB value. It reports
// server-cpu-us/op (INFO cpu: user and system time of the whole server,
// socket I/O included) and cmd-us/op (INFO commandstats: the time the
// top-level commands ran, a script's inner calls included).
func BenchmarkServerCost(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	for range 3 {
		ps := rdb.Subscribe(ctx, "bench-channel")
		if _, err := ps.Receive(ctx); err != nil {
			b.Fatal(err)
		}
		msgs := ps.Channel()
		go func() {
			for range msgs { // drained until Close
			}
		}()
		b.Cleanup(func() { _ = ps.Close() })
	}
	s := redisstore.New(rdb)
	val := make([]byte, 1024)
	msg := []byte(strings.Repeat("m", 1100)) // a Set message that carries the entry
	empty := redis.NewScript("return 1")
	cases := []struct {
		name   string
		cmds   []string // the top-level commands it sends
		op     func(key string, e []byte) error
		newKey bool // a key of its own per iteration, which does not exist
	}{
		{"set", []string{"set"}, func(key string, e []byte) error {
			return rdb.Set(ctx, key, e, time.Minute).Err()
		}, false},
		{"set-publish-pipelined", []string{"set", "publish"}, func(key string, e []byte) error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, e, time.Minute)
				p.Publish(ctx, "bench-channel", msg)
				return nil
			})
			return err
		}, false},
		{"empty-script", []string{"evalsha"}, func(string, []byte) error {
			return empty.Run(ctx, rdb, nil).Err()
		}, false},
		{"newest-wins", []string{"evalsha"}, func(key string, e []byte) error {
			_, err := s.Set(ctx, key, e, time.Minute)
			return err
		}, false},
		{"newest-wins-publish", []string{"evalsha"}, func(key string, e []byte) error {
			_, _, err := s.SetPublish(ctx, key, e, time.Minute, "bench-channel", msg)
			return err
		}, false},
		{"new-key-set", []string{"set"}, func(key string, e []byte) error {
			return rdb.Set(ctx, key, e, time.Minute).Err()
		}, true},
		{"new-key-setnx-publish-pipelined", []string{"set", "publish"}, func(key string, e []byte) error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.SetNX(ctx, key, e, time.Minute)
				p.Publish(ctx, "bench-channel", msg[:60])
				return nil
			})
			return err
		}, true},
		{"new-key-newest-wins-publish", []string{"evalsha"}, func(key string, e []byte) error {
			_, _, err := s.SetPublish(ctx, key, e, time.Minute, "bench-channel", msg[:60])
			return err
		}, true},
	}
	for _, c := range cases {
		b.Run("op="+c.name, func(b *testing.B) {
			_ = c.op("warm-"+c.name, env(1, "warm"))            // loads the script
			run := strconv.FormatInt(time.Now().UnixNano(), 36) // new keys per run
			cpu0, cmd0 := serverCost(b, rdb, c.cmds)
			i := 0
			for b.Loop() {
				i++
				e := envelope.Envelope{Timestamp: int64(i), Value: val}
				key := "bench:" + strconv.Itoa(i%1000)
				if c.newKey {
					key = c.name + ":" + run + ":" + strconv.Itoa(i)
				}
				if err := c.op(key, e.Append(nil)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu1, cmd1 := serverCost(b, rdb, c.cmds)
			b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "server-cpu-us/op")
			b.ReportMetric(float64(cmd1-cmd0)/float64(b.N), "cmd-us/op")
		})
	}
}

// serverCost returns redis-server's CPU time so far and the time it spent
// running the commands cmds, in microseconds.
func serverCost(b *testing.B, rdb *redis.Client, cmds []string) (cpu, cmd float64) {
	info, err := rdb.Info(context.Background(), "cpu", "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		name, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch {
		case name == "used_cpu_sys" || name == "used_cpu_user":
			f, _ := strconv.ParseFloat(val, 64)
			cpu += f * 1e6
		case strings.HasPrefix(name, "cmdstat_"):
			for _, c := range cmds {
				if name != "cmdstat_"+c {
					continue
				}
				for field := range strings.SplitSeq(val, ",") {
					if us, ok := strings.CutPrefix(field, "usec="); ok {
						f, _ := strconv.ParseFloat(us, 64)
						cmd += f
					}
				}
			}
		}
	}
	return cpu, cmd
}
