package hybrid_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/strata-cache/strata/hybrid"
)

func newCache(t testing.TB, o hybrid.Options) *hybrid.Cache {
	t.Helper()
	c, err := hybrid.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// counter is a factory that counts its calls and returns value, or err.
type counter struct {
	calls atomic.Int64
}

func (k *counter) factory(v string, err error) hybrid.Factory[string] {
	return func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		k.calls.Add(1)
		return v, err
	}
}

var errDB = errors.New("database down")

func mustGet[T any](t *testing.T, c *hybrid.Cache, key string, opts ...hybrid.Option) (T, bool) {
	t.Helper()
	v, ok, err := hybrid.TryGet[T](context.Background(), c, key, opts...)
	if err != nil {
		t.Fatalf("TryGet(%q): %v", key, err)
	}
	return v, ok
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// node is one process's view of a cache named "app" on the shared Redis.
// The multi-node tests of the engine over Redis live in the root package
// (l2_nodes_test.go); this one is for the events tests.
func node(t *testing.T, client redis.UniversalClient, entry hybrid.EntryOptions, mod ...func(*hybrid.Options)) *hybrid.Cache {
	t.Helper()
	o := hybrid.Options{Name: "app", Entry: entry, L2: hybrid.NewRedisL2(client), Logger: quietLogger()}
	for _, m := range mod {
		m(&o)
	}
	return newCache(t, o)
}
