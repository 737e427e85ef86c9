package strata_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/strata-cache/strata/hybrid"
)

// The fixtures of the multi-node tests of this package: real redis-server
// processes, proxies and fault-fast clients come from internal/redistest
// (Start, StartCluster, Server.FastClient, Server.Proxy, Eventually); the
// nodes are providers (bpNode, redisProvider) or bare engines (engineNode).

// newCache creates a standalone cache, closed by t.Cleanup.
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

// mustGet is TryGet that fails the test on an error.
func mustGet[T any](t *testing.T, c *hybrid.Cache, key string, opts ...hybrid.Option) (T, bool) {
	t.Helper()
	v, ok, err := hybrid.TryGet[T](context.Background(), c, key, opts...)
	if err != nil {
		t.Fatalf("TryGet(%q): %v", key, err)
	}
	return v, ok
}
