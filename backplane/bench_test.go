package backplane_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/cputime"
	"github.com/strata-cache/strata/internal/redistest"
)

// chanHandler forwards messages to a channel.
type chanHandler chan backplane.Message

func (h chanHandler) HandleMessage(m backplane.Message) { h <- m }
func (h chanHandler) HandleGap()                        {}

// BenchmarkRedisPublishReceive measures the latency from Publish on one backplane to
// HandleMessage on another, over loopback, one message in flight at a time. It reports
// the p50 and p99 in microseconds.
func BenchmarkRedisPublishReceive(b *testing.B) {
	srv := redistest.Start(b)
	ch := backplane.ChannelName("", "bench")
	got := make(chanHandler, 1)
	newRedisBackplane(b, srv.Client(b), backplane.RedisOptions{Channel: ch}, got)
	pub := newRedisBackplane(b, srv.Client(b), backplane.RedisOptions{Channel: ch}, nil)
	ctx := context.Background()
	m := backplane.Message{Kind: backplane.KindSet, Cache: "bench", Key: "user:42", Source: "bench"}
	samples := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if err := pub.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
		<-got
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(samples)
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
}

// BenchmarkAppendBinary measures encoding into a reused buffer.
func BenchmarkAppendBinary(b *testing.B) {
	m := backplane.Message{Kind: backplane.KindSet, Cache: "users", Key: "user:42", Source: "node-a", Timestamp: 1}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendBinary(buf[:0])
	}
}

// BenchmarkDecodeMessage measures decoding (three string allocations).
func BenchmarkDecodeMessage(b *testing.B) {
	p := backplane.Message{Kind: backplane.KindSet, Cache: "users", Key: "user:42", Source: "node-a", Timestamp: 1}.AppendBinary(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := backplane.DecodeMessage(p); err != nil {
			b.Fatal(err)
		}
	}
}

// countHandler counts the messages it is given and closes done at want.
type countHandler struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (h *countHandler) HandleMessage(backplane.Message) {
	if h.n.Add(1) == h.want {
		close(h.done)
	}
}
func (h *countHandler) HandleGap() {}

// BenchmarkRedisFanOut measures what receiving costs: b.N messages with a 1 KiB value,
// published by 4 goroutines, each delivered to 3 subscribers of one process (each on a
// client of its own, as three nodes of a service would be). It reports the process's
// CPU time (user and system: the subscribers' reading, decoding and dispatching, and the
// publishers' sends) per message published, which unlike the wall time does not depend
// on what else the machine runs; redis-server's own CPU is not in it.
func BenchmarkRedisFanOut(b *testing.B) {
	srv := redistest.Start(b)
	ch := backplane.ChannelName("", "fanout")
	const subscribers, publishers = 3, 4
	hs := make([]*countHandler, subscribers)
	for i := range hs {
		hs[i] = &countHandler{want: int64(b.N), done: make(chan struct{})}
		newRedisBackplane(b, srv.Client(b), backplane.RedisOptions{Channel: ch, QueueSize: 1 << 16}, hs[i])
	}
	pub := newRedisBackplane(b, srv.Client(b), backplane.RedisOptions{Channel: ch}, nil)
	m := backplane.Message{Kind: backplane.KindSet, Cache: "fanout", Key: "user:42", Source: "bench", Value: strings.Repeat("v", 1024)}
	cpu0, cpuOK := cputime.Process()
	b.ResetTimer()
	var wg sync.WaitGroup
	for p := range publishers {
		n := b.N / publishers
		if p < b.N%publishers {
			n++
		}
		wg.Go(func() {
			for range n {
				if err := pub.Publish(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, h := range hs {
		select {
		case <-h.done:
		case <-time.After(time.Minute):
			b.Fatalf("a subscriber got %d of %d messages", h.n.Load(), b.N)
		}
	}
	b.StopTimer()
	if cpu1, ok := cputime.Process(); ok && cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
