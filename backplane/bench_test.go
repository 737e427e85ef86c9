package backplane_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/strata-cache/strata/backplane"
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
