package strata_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
)

// With Redis, every cache gets a distributed tier and a backplane on the
// shared client, under its own key prefix and channel. (This example is
// compiled but not run: it needs a Redis server.)
func ExampleNewProvider_redis() {
	url := os.Getenv("REDIS_URL") // for example redis://127.0.0.1:6379/0
	if url == "" {
		fmt.Println("REDIS_URL is not set")
		return
	}
	p, err := strata.NewProvider(strata.Settings{
		Redis: &strata.RedisSettings{URL: url}, // rediss:// for TLS; Addrs for a cluster; Client for your own
	})
	if err != nil {
		log.Fatal(err) // a malformed URL; NewProvider does not contact Redis
	}
	defer p.Close()

	users, err := p.Register("users") // keys "users:<key>", channel "strata:{users:}:bp"
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := users.Ping(ctx); err != nil {
		log.Printf("redis unreachable, serving from memory: %v", err)
	}
	name, err := hybrid.GetOrSet(ctx, users, "user:42", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		return "Ada", nil // the database, in a real service
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(name)
}

// Each configure func passed to Register changes a copy of the provider's
// defaults: an override keeps the other fields, and an explicit false wins
// over a default.
func ExampleProvider_Register() {
	p, err := strata.NewProvider(strata.Settings{
		Logger: slog.New(slog.DiscardHandler), // the example prints what happens itself
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	users, err := p.Register("users") // ProductionDefaults(): fail-safe on
	if err != nil {
		log.Fatal(err)
	}
	sessions, err := p.Register("sessions", func(s *strata.CacheSettings) {
		s.Entry.Duration = 5 * time.Minute
		s.Entry.FailSafe = false // beats the production default
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	down := func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		return "", errors.New("database down")
	}
	for _, c := range []*hybrid.Cache{users, sessions} {
		if err := hybrid.Set(ctx, c, "k", "old value"); err != nil {
			log.Fatal(err)
		}
		if err := c.Expire(ctx, "k"); err != nil {
			log.Fatal(err)
		}
		v, err := hybrid.GetOrSet(ctx, c, "k", down)
		fmt.Printf("%s: %q, %v\n", c.Name(), v, err)
	}

	// Bad settings and a second registration of a name are errors.
	_, err = p.Register("orders", func(s *strata.CacheSettings) { s.Entry.Duration = -time.Second })
	fmt.Println(errors.Is(err, strata.ErrInvalidSettings), errors.Is(err, hybrid.ErrInvalidOptions))
	_, err = p.Register("users")
	fmt.Println(errors.Is(err, strata.ErrDuplicateName))
	// Output:
	// users: "old value", <nil>
	// sessions: "", hybrid: factory "k": database down
	// true true
	// true
}

// Settings.Events observes every cache of the provider; each event carries
// the cache's name.
func ExampleNewProvider_events() {
	p, err := strata.NewProvider(strata.Settings{Events: &hybrid.Events{
		FactoryCall: func(e hybrid.FactoryCallEvent) {
			fmt.Printf("factory call: cache=%s key=%s err=%v\n", e.Cache, e.Key, e.Err)
		},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx := context.Background()
	for _, name := range []string{"users", "orders"} {
		c, err := p.Register(name)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := hybrid.GetOrSet(ctx, c, "id:1", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
			return 1, nil
		}); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// factory call: cache=users key=id:1 err=<nil>
	// factory call: cache=orders key=id:1 err=<nil>
}
