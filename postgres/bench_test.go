package postgres_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/internal/tiertest"
	"github.com/strata-cache/strata/postgres"
)

// Run from postgres/:
//
//	go test -run '^$' -bench . -benchtime=3000x -count=3 .

// The benchmark value and the latency report are tiertest's.
type (
	product   = tiertest.Product
	latencies = tiertest.Latencies
)

var sample = tiertest.Sample

// benchSetup starts a server, a provider with one cache on it (writes
// waited for), and a raw pool on the same server.
func benchSetup(b *testing.B) (*hybrid.Cache, *pgxpool.Pool) {
	srv := pgtest.Start(b)
	d := strata.ProductionDefaults()
	d.Entry.BackgroundL2Operations = false
	d.WaitForInitialBackplaneSubscribe = 5 * time.Second
	p := newProvider(b, strata.Settings{Tier: postgres.Settings(postgres.Config{ConnString: srv.URL()}), Defaults: &d})
	c := register(b, p, "bench")
	pool, err := pgxpool.New(context.Background(), srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return c, pool
}

// BenchmarkL2Hit: a read of the table with memory skipped, against a raw
// SELECT of the same row plus the envelope and msgpack decoding.
func BenchmarkL2Hit(b *testing.B) {
	c, pool := benchSetup(b)
	ctx := context.Background()
	if err := hybrid.Set(ctx, c, "k", sample); err != nil {
		b.Fatal(err)
	}
	b.Run("impl=strata-TryGet-SkipL1", func(b *testing.B) {
		skip := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true; o.SkipL1Write = true })
		lat := make(latencies, 0, b.N)
		for b.Loop() {
			t0 := time.Now()
			v, ok, err := hybrid.TryGet[product](ctx, c, "k", skip)
			lat = append(lat, time.Since(t0))
			if err != nil || !ok || v.SKU != sample.SKU {
				b.Fatal(v, ok, err)
			}
		}
		lat.Report(b)
	})
	b.Run("impl=raw-select+decode", func(b *testing.B) {
		lat := make(latencies, 0, b.N)
		for b.Loop() {
			t0 := time.Now()
			var raw []byte
			if err := pool.QueryRow(ctx, `SELECT value FROM strata_cache WHERE key = $1 AND expires_at > $2`, "bench:k", time.Now().UnixMilli()).Scan(&raw); err != nil {
				b.Fatal(err)
			}
			e, err := envelope.Decode(raw)
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

// BenchmarkSet: a synchronous Set (the newest-wins upsert and its
// notification in one statement) against a raw upsert of the same bytes
// without the newest-wins condition or the notification.
func BenchmarkSet(b *testing.B) {
	c, pool := benchSetup(b)
	ctx := context.Background()
	b.Run("impl=strata-Set", func(b *testing.B) {
		lat := make(latencies, 0, b.N)
		i := 0
		for b.Loop() {
			i++
			t0 := time.Now()
			if err := hybrid.Set(ctx, c, fmt.Sprint("k", i%1000), sample); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		lat.Report(b)
	})
	b.Run("impl=raw-upsert", func(b *testing.B) {
		val, err := msgpack.Marshal(sample)
		if err != nil {
			b.Fatal(err)
		}
		lat := make(latencies, 0, b.N)
		i := 0
		for b.Loop() {
			i++
			t0 := time.Now()
			if _, err := pool.Exec(ctx, `INSERT INTO strata_cache (key, value, ts, expires_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, ts = EXCLUDED.ts, expires_at = EXCLUDED.expires_at`,
				fmt.Sprint("raw:", i%1000), val, time.Now().UnixNano(), time.Now().Add(time.Hour).UnixMilli()); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		lat.Report(b)
	})
}

// BenchmarkPropagation: Set on one node until the other node's memory
// copy is replaced (a notification carrying the entry), one at a time.
func BenchmarkPropagation(b *testing.B) {
	srv := pgtest.Start(b)
	d := strata.ProductionDefaults()
	d.Entry.BackgroundL2Operations = false
	d.WaitForInitialBackplaneSubscribe = 5 * time.Second
	cfg := postgres.Config{ConnString: srv.URL()}
	n1 := register(b, newProvider(b, strata.Settings{Tier: postgres.Settings(cfg), Defaults: &d}), "bench")
	n2 := register(b, newProvider(b, strata.Settings{Tier: postgres.Settings(cfg), Defaults: &d}), "bench")
	ctx := context.Background()
	if err := hybrid.Set(ctx, n1, "k", 0); err != nil {
		b.Fatal(err)
	}
	if _, ok, _ := hybrid.TryGet[int](ctx, n2, "k"); !ok {
		b.Fatal("n2 does not read k")
	}
	lat := make(latencies, 0, b.N)
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		if err := hybrid.Set(ctx, n1, "k", i); err != nil {
			b.Fatal(err)
		}
		for {
			v, ok, _ := hybrid.TryGet[int](ctx, n2, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true }))
			if ok && v == i {
				break
			}
			if time.Since(t0) > 5*time.Second {
				b.Fatalf("set %d not seen on n2 after 5s", i)
			}
			runtime.Gosched() // let the receiving goroutine run
		}
		lat = append(lat, time.Since(t0))
	}
	lat.Report(b)
}
