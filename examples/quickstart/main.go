// Command quickstart shows Strata at work: named caches, GetOrSet,
// stampede protection and fail-safe. It runs memory-only; with REDIS_URL
// set (redis://127.0.0.1:6379) the caches also use that Redis.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
)

// Product is what the demo caches.
type Product struct {
	SKU   string
	Price float64
}

func main() {
	settings := strata.Settings{
		// Quiet logs: the program prints what happens itself.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}
	if url := os.Getenv("REDIS_URL"); url != "" {
		settings.Redis = &strata.RedisSettings{URL: url}
		fmt.Println("using Redis at", url)
	} else {
		fmt.Println("memory-only (set REDIS_URL to add a Redis tier)")
	}
	p, err := strata.NewProvider(settings)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// Two named caches: each has its own memory tier and key space.
	products, err := p.Register("products", func(s *strata.CacheSettings) {
		s.Entry.Duration = 200 * time.Millisecond // short, so that the demo can expire it
		s.Entry.JitterMaxDuration = 0             // no random extra lifetime in the demo
		s.Entry.FailSafeThrottleDuration = time.Second
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := p.Register("sessions"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("caches:", p.Names())
	ctx := context.Background()

	// 1. Stampede protection: 100 concurrent requests for a cold key, one load.
	var loads atomic.Int64
	fromDB := func(ctx context.Context, fc *hybrid.FactoryContext[Product]) (Product, error) {
		loads.Add(1)
		time.Sleep(50 * time.Millisecond) // a slow query
		return Product{SKU: fc.Key(), Price: 9.99}, nil
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := hybrid.GetOrSet(ctx, products, "sku-1", fromDB); err != nil {
				log.Fatal(err)
			}
		})
	}
	wg.Wait()
	fmt.Printf("stampede: 100 concurrent callers, %d database load\n", loads.Load())

	// 2. A hit is served from memory: no load.
	prod, _ := hybrid.GetOrSet(ctx, products, "sku-1", fromDB)
	fmt.Printf("hit: %s costs %.2f, loads still %d\n", prod.SKU, prod.Price, loads.Load())

	// 3. Fail-safe: the entry expires and the database goes down. The stale
	// value is served with no error, and the database is not hammered.
	time.Sleep(300 * time.Millisecond)
	var failures atomic.Int64
	dbDown := func(ctx context.Context, fc *hybrid.FactoryContext[Product]) (Product, error) {
		failures.Add(1)
		return Product{}, errors.New("database unavailable")
	}
	for i := range 3 {
		prod, err := hybrid.GetOrSet(ctx, products, "sku-1", dbDown)
		fmt.Printf("database down, request %d: %.2f, err=%v\n", i+1, prod.Price, err)
	}
	fmt.Printf("fail-safe: %d failed load (then throttled for 1s)\n", failures.Load())

	// 4. Without a stale value, the error reaches the caller.
	_, err = hybrid.GetOrSet(ctx, products, "sku-2", dbDown)
	fmt.Println("cold key with the database down:", err)
}
