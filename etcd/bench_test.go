package etcd_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/tcpproxy"
	"github.com/strata-cache/strata/internal/tiertest"
)

// Run from etcd/: go test -run '^$' -bench 'L2|Feed|Propagation' -benchtime=2000x -count=3 .
// and go test -run '^$' -bench LostAfterDisconnect -benchtime=1x -count=3 . (one round per run).

// The benchmark value and the latency report are tiertest's.
type (
	product   = tiertest.Product
	latencies = tiertest.Latencies
)

var sample = tiertest.Sample

func BenchmarkL2Hit(b *testing.B) {
	m := etcdtest.Start(b)
	cli := m.Client(b)
	n := newNode(b, cli, "bench")
	c := context.Background()
	if err := hybrid.Set(c, n.c, "k", sample); err != nil {
		b.Fatal(err)
	}
	waitFor(b, 5*time.Second, "the write", func() bool { v, _ := n.l2.Get(c, "bench:k"); return v != nil })
	b.Run("strata-TryGet-SkipL1", func(b *testing.B) {
		skip := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true; o.SkipL1Write = true })
		lat := make(latencies, 0, b.N)
		for b.Loop() {
			t0 := time.Now()
			v, ok, err := hybrid.TryGet[product](c, n.c, "k", skip)
			lat = append(lat, time.Since(t0))
			if err != nil || !ok || v.SKU != sample.SKU {
				b.Fatal(v, ok, err)
			}
		}
		lat.Report(b)
	})
	b.Run("raw-clientv3-Get+decode", func(b *testing.B) {
		lat := make(latencies, 0, b.N)
		for b.Loop() {
			t0 := time.Now()
			r, err := cli.Get(c, "bench:k")
			if err != nil {
				b.Fatal(err)
			}
			e, err := envelope.Decode(r.Kvs[0].Value)
			if err != nil {
				b.Fatal(err)
			}
			var v product
			if err := msgpack.Unmarshal(e.Value, &v); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		lat.Report(b)
	})
}

func BenchmarkL2Set(b *testing.B) {
	m := etcdtest.Start(b)
	cli := m.Client(b)
	s := newL2(b, cli)
	c := context.Background()
	val := func(ts int64) []byte {
		raw, _ := msgpack.Marshal(sample)
		return env(ts, raw)
	}
	b.Run("strata-L2.Set", func(b *testing.B) {
		lat := make(latencies, 0, b.N)
		i := 0
		for b.Loop() {
			i++
			v := val(time.Now().UnixNano())
			t0 := time.Now()
			if _, err := s.Set(c, fmt.Sprintf("set:%d", i%1000), v, 10*time.Minute); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		lat.Report(b)
	})
	b.Run("raw-clientv3-Put", func(b *testing.B) {
		lat := make(latencies, 0, b.N)
		i := 0
		for b.Loop() {
			i++
			v := string(val(time.Now().UnixNano()))
			t0 := time.Now()
			if _, err := cli.Put(c, fmt.Sprintf("put:%d", i%1000), v); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		lat.Report(b)
	})
}

// BenchmarkFeedChoice compares the two designs of the change feed: a
// record put in the same transaction as the data (what the tier does)
// against watching the data keys directly (the transaction without the
// record). It reports the write latency and the bytes each watcher
// receives per change.
func BenchmarkFeedChoice(b *testing.B) {
	m := etcdtest.Start(b)
	cli := m.Client(b)
	c := context.Background()
	lease, err := cli.Grant(c, 600)
	if err != nil {
		b.Fatal(err)
	}
	msg := backplane.Message{Kind: backplane.KindSet, Cache: "bench", Key: "some:key:1234", Source: "0123456789abcdef", Timestamp: time.Now().UnixNano()}
	rec, _ := msg.MarshalBinary()
	for _, size := range []int{128, 10 << 10} {
		value := string(env(1, make([]byte, size)))
		for _, withRecord := range []bool{true, false} {
			name := fmt.Sprintf("value=%dB/data-only(watch-data)", size)
			if withRecord {
				name = fmt.Sprintf("value=%dB/data+record(feed)", size)
			}
			b.Run(name, func(b *testing.B) {
				wctx, cancel := context.WithCancel(c)
				defer cancel()
				watchKey := "feed:data:"
				opts := []clientv3.OpOption{clientv3.WithPrefix()}
				if withRecord {
					watchKey, opts = "feed:rec", nil
				}
				var got atomic.Int64
				wch := cli.Watch(wctx, watchKey, opts...)
				var wg sync.WaitGroup
				wg.Go(func() {
					for r := range wch {
						for _, ev := range r.Events {
							got.Add(int64(len(ev.Kv.Key) + len(ev.Kv.Value)))
						}
					}
				})
				lat := make(latencies, 0, b.N)
				i := 0
				for b.Loop() {
					i++
					key := fmt.Sprintf("feed:data:%d", i%1000)
					ops := []clientv3.Op{clientv3.OpPut(key, value, clientv3.WithLease(lease.ID))}
					if withRecord {
						ops = append(ops, clientv3.OpPut("feed:rec", string(rec)))
					}
					t0 := time.Now()
					if _, err := cli.Txn(c).If(clientv3.Compare(clientv3.Value(key), ">", "\xa7\x01\x7f")).Then(clientv3.OpGet(key)).Else(ops...).Commit(); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				b.StopTimer()
				want := int64(i)
				waitFor(b, 10*time.Second, "the watcher", func() bool { return got.Load() > 0 && got.Load() >= want })
				cancel()
				wg.Wait()
				b.ReportMetric(float64(got.Load())/float64(i), "watch-B/change")
				lat.Report(b)
			})
		}
	}
}

// BenchmarkPropagation: Set on one node -> the other node's copy is gone.
func BenchmarkPropagation(b *testing.B) {
	cl := etcdtest.StartCluster(b, 3)
	a := newNode(b, cl.Members[0].Client(b), "prop")
	r := newNode(b, cl.Members[1].Client(b), "prop")
	c := context.Background()
	hybrid.Set(c, a.c, "k", 0)
	waitFor(b, 5*time.Second, "the first write", func() bool { v, ok, _ := hybrid.TryGet[int](c, r.c, "k"); return ok && v == 0 })
	lat := make(latencies, 0, b.N)
	i := 0
	for b.Loop() {
		i++
		// r holds the old value in memory.
		if v, ok, _ := hybrid.TryGet[int](c, r.c, "k"); !ok || v != i-1 {
			b.Fatalf("r holds %d; want %d", v, i-1)
		}
		t0 := time.Now()
		hybrid.Set(c, a.c, "k", i)
		for {
			v, ok, _ := hybrid.TryGet[int](c, r.c, "k")
			if ok && v == i {
				break
			}
			time.Sleep(20 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
	}
	lat.Report(b)
}

// countingHandler counts the distinct keys received.
type countingHandler struct {
	mu   sync.Mutex
	keys map[string]bool
	gaps int
}

func (h *countingHandler) HandleMessage(m backplane.Message) {
	h.mu.Lock()
	h.keys[m.Key] = true
	h.mu.Unlock()
}
func (h *countingHandler) HandleGap() { h.mu.Lock(); h.gaps++; h.mu.Unlock() }
func (h *countingHandler) count() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.keys) }

// BenchmarkLostAfterDisconnect: a watcher is cut off (its connections
// reset, new ones held) while another node writes 1,000 changes; then it is
// let back. It reports the changes never delivered, for the etcd backplane
// and for the Redis pub/sub backplane.
func BenchmarkLostAfterDisconnect(b *testing.B) {
	const changes = 1000
	b.Run("etcd", func(b *testing.B) {
		m := etcdtest.Start(b)
		p, err := tcpproxy.New(m.Addr())
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		sub, err := etcd.NewBackplane(clientOn(b, "http://"+p.Addr()), etcd.BackplaneOptions{FeedKey: etcd.FeedKey("lost:"), Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		pub, _ := etcd.NewBackplane(m.Client(b), etcd.BackplaneOptions{FeedKey: etcd.FeedKey("lost:"), Logger: quietLogger()})
		lost(b, p, sub, pub, changes)
	})
	b.Run("redis", func(b *testing.B) {
		rs := redistest.Start(b)
		p, err := tcpproxy.New(rs.Addr())
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		o := rs.Options()
		o.Addr = p.Addr()
		subc := redis.NewClient(o)
		defer subc.Close()
		sub, _ := backplane.NewRedis(subc, backplane.RedisOptions{Channel: "lost", Logger: quietLogger()})
		defer sub.Close()
		pub, _ := backplane.NewRedis(rs.Client(b), backplane.RedisOptions{Channel: "lost", Logger: quietLogger()})
		lost(b, p, sub, pub, changes)
	})
}

// lost runs one round whatever b.N is (Subscribe may be called once per
// backplane): run it with -benchtime=1x.
func lost(b *testing.B, p *tcpproxy.Proxy, sub, pub backplane.Backplane, changes int) {
	total, gaps := 0, 0
	{
		h := &countingHandler{keys: map[string]bool{}}
		b.StopTimer()
		if err := sub.Subscribe(h); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c := context.Background()
		pub.Publish(c, backplane.Message{Kind: backplane.KindSet, Cache: "lost", Key: "probe", Timestamp: 1})
		waitFor(b, 5*time.Second, "the probe", func() bool { return h.count() == 1 })
		p.Pause()
		p.ResetAll()
		for i := range changes {
			if err := pub.Publish(c, backplane.Message{Kind: backplane.KindSet, Cache: "lost", Key: fmt.Sprint(i), Timestamp: int64(i + 2)}); err != nil {
				b.Fatal(err)
			}
		}
		p.Resume()
		pub.Publish(c, backplane.Message{Kind: backplane.KindSet, Cache: "lost", Key: "last", Timestamp: 1 << 40})
		// Wait for a message published after the reconnect: what came before
		// it and is missing is lost.
		deadline := time.Now().Add(15 * time.Second)
		for {
			h.mu.Lock()
			done := h.keys["last"]
			h.mu.Unlock()
			if done || time.Now().After(deadline) {
				break
			}
			pub.Publish(c, backplane.Message{Kind: backplane.KindSet, Cache: "lost", Key: "last", Timestamp: 1 << 40})
			time.Sleep(50 * time.Millisecond)
		}
		got := h.count() - 2
		total += changes - got
		h.mu.Lock()
		gaps += h.gaps
		h.mu.Unlock()
	}
	b.ReportMetric(float64(total), "lost")
	b.ReportMetric(float64(gaps), "gaps")
}
