package postgres_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/postgres"
)

// Every cache of a provider on PostgreSQL. Set DATABASE_URL (and
// PGPASSWORD) to run it against your server; it is compiled, not run, by
// go test.
func Example() {
	p, err := strata.NewProvider(strata.Settings{
		Tier: postgres.Settings(postgres.Config{
			ConnString: os.Getenv("DATABASE_URL"), // postgres://app@db:5432/app
			Password:   os.Getenv("PGPASSWORD"),   // kept out of the connection string
			Table:      "cache_entries",           // created if missing
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close() // closes the caches, then the pool

	users, err := p.Register("users") // rows "users:*", channel postgres.ChannelName("users:")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := users.Ping(ctx); err != nil {
		log.Printf("PostgreSQL does not accept the cache yet: %v", err) // the cache still works from memory
	}
	name, err := hybrid.GetOrSet(ctx, users, "42", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
		return "Ada", nil // the database call
	})
	fmt.Println(name, err)
}

// One cache on PostgreSQL next to caches on Redis.
func Example_mixed() {
	p, _ := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: os.Getenv("REDIS_URL")}})
	defer p.Close()
	_, _ = p.Register("sessions") // on Redis
	_, _ = p.Register("reports", func(s *strata.CacheSettings) {
		s.Tier = postgres.Settings(postgres.Config{ConnString: os.Getenv("DATABASE_URL")}) // on PostgreSQL
	})
}
