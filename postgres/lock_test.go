package postgres_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/internal/testlog"
	"github.com/strata-cache/strata/postgres"
)

// DistributedLock needs a distributed tier with a lock (hybrid.Locker);
// the PostgreSQL tier has none. The option is then ignored (each process
// loads on its own, and loads work) and the cache says so in its log, once.
func TestDistributedLockIgnoredWithAWarning(t *testing.T) {
	srv := pgtest.Start(t)
	var logs testlog.Buffer
	p := newProvider(t, strata.Settings{
		Tier:   postgres.Settings(postgres.Config{ConnString: srv.URL()}),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	c := register(t, p, "users", func(s *strata.CacheSettings) { s.Entry.DistributedLock = true })
	var calls atomic.Int64
	for _, k := range []string{"a", "b", "c"} {
		v, err := hybrid.GetOrSet(context.Background(), c, k, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			calls.Add(1)
			return "v", nil
		})
		if err != nil || v != "v" {
			t.Fatalf("GetOrSet(%s) = %q, %v", k, v, err)
		}
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d factory calls for three cold keys", n)
	}
	if n := strings.Count(logs.String(), "DistributedLock is ignored"); n != 1 {
		t.Fatalf("the warning was logged %d times; want once:\n%s", n, logs.String())
	}
}
