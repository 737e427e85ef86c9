package strata_test

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
)

func Example() {
	// No Redis configured: every cache is memory-only, with the production
	// defaults (30m entries, fail-safe, eager refresh, jitter).
	p, err := strata.NewProvider(strata.Settings{})
	if err != nil {
		panic(err)
	}
	defer p.Close()

	// "users" keeps the defaults; "prices" overrides one field and keeps the rest.
	if _, err := p.Register("users"); err != nil {
		panic(err)
	}
	if _, err := p.Register("prices", func(s *strata.CacheSettings) { s.Entry.Duration = 10 * time.Second }); err != nil {
		panic(err)
	}

	prices := p.MustGetCache("prices")
	v, err := hybrid.GetOrSet(context.Background(), prices, "sku:1", func(ctx context.Context, fc *hybrid.FactoryContext[float64]) (float64, error) {
		return 9.99, nil
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Names(), v)
	// Output:
	// [prices users] 9.99
}
