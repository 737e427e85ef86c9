package etcd_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/hybrid"
)

// Every cache of a provider on etcd, and one cache isolated on an etcd of
// its own. Set ETCD_ENDPOINTS (comma-separated URLs) to run it against your
// etcd; it is compiled, not run, by go test.
func Example() {
	endpoints := strings.Split(os.Getenv("ETCD_ENDPOINTS"), ",")
	p, err := strata.NewProvider(strata.Settings{
		Tier: etcd.Settings(etcd.Config{
			Endpoints:   endpoints,
			DialTimeout: 2 * time.Second,
			Username:    os.Getenv("ETCD_USER"),
			Password:    os.Getenv("ETCD_PASSWORD"),
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close() // closes the caches, then the etcd client

	users, err := p.Register("users") // keys "users:*", feed key "users:__strata:feed"
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := users.Ping(ctx); err != nil {
		log.Printf("etcd does not accept the cache yet: %v", err) // the cache still works from memory
	}
	name, err := hybrid.GetOrSet(ctx, users, "42", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
		return "Ada", nil // the database call
	})
	fmt.Println(name, err)
}

// A cache on the caller's own etcd client, which Strata never closes, next
// to caches on Redis.
func ExampleClientSettings() {
	var cli = myEtcdClient()
	p, _ := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: os.Getenv("REDIS_URL")}})
	defer p.Close()
	_, _ = p.Register("sessions") // on Redis
	_, _ = p.Register("config", func(s *strata.CacheSettings) {
		s.Tier = etcd.ClientSettings(cli, etcd.TierOptions{}) // on etcd
	})
}
