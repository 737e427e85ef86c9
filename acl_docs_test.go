package strata_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// docACL returns the ACL line of docs/redis.md whose code block is marked
// by the comment "# <which>" on the line before it, as ACL SETUSER
// arguments (without the leading "user").
func docACL(t *testing.T, which string) []any {
	t.Helper()
	b, err := os.ReadFile("docs/redis.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == "# "+which && i+1 < len(lines) {
			f := strings.Fields(lines[i+1])
			if len(f) < 2 || f[0] != "user" {
				t.Fatalf("docs/redis.md: the line after %q is not an ACL user line: %q", l, lines[i+1])
			}
			args := []any{"ACL", "SETUSER"}
			for _, x := range f[1:] {
				args = append(args, x)
			}
			return args
		}
	}
	t.Fatalf("docs/redis.md has no ACL line marked %q", which)
	return nil
}

// exerciseACL runs every operation of a cache with a backplane on two
// nodes of the user cacheapp, then checks that Redis denied nothing (ACL
// LOG) and that the commands go-redis sends on its own (the keep-alive PING
// of a quiet subscription, COMMAND on a cluster) are allowed.
func exerciseACL(t *testing.T, admins []*redis.Client, client func() redis.UniversalClient, extra ...[]any) {
	t.Helper()
	ctx := context.Background()
	node := func() *hybrid.Cache {
		p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{Client: client()}, Logger: quiet})
		c, err := p.Register("users", func(s *strata.CacheSettings) {
			s.WaitForInitialBackplaneSubscribe = 10 * time.Second
			s.Entry.BackgroundL2Operations = false
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	n1, n2 := node(), node()
	if err := n1.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := hybrid.Set(ctx, n1, "1", "ada", hybrid.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	waitValue(t, n2, "1", "ada")
	if err := hybrid.Set(ctx, n1, "1", "grace", hybrid.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	waitValue(t, n2, "1", "grace") // through the backplane
	for _, err := range []error{n1.Expire(ctx, "1"), n1.Remove(ctx, "1"), n1.RemoveByTag(ctx, "t"), n1.Clear(ctx, true)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hybrid.GetOrSet(ctx, n2, "2", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "x", nil }); err != nil {
		t.Fatal(err)
	}
	// Cluster-wide stampede protection: the lock's scripts (get-or-lock,
	// renewal, release) on the cache's prefix.
	lockOpt := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.DistributedLock = true; o.DistributedLockLease = 30 * time.Millisecond })
	if _, err := hybrid.GetOrSet(ctx, n2, "3", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		time.Sleep(50 * time.Millisecond) // a factory slower than a renewal interval: the lease is renewed
		return "y", nil
	}, lockOpt); err != nil {
		t.Fatal(err)
	}
	// Batches: MGET, pipelined writes and removals.
	keys := []string{"b1", "b2", "{x}b3"}
	if _, err := hybrid.GetOrSetMany(ctx, n1, keys, func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		m := map[string]string{}
		for _, k := range bc.Keys() {
			m[k] = "v-" + k
		}
		return m, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := hybrid.TryGetMany[string](ctx, n2, keys); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.SetMany(ctx, n2, map[string]string{"b1": "w1", "b2": "w2"}); err != nil {
		t.Fatal(err)
	}
	if err := n1.RemoveMany(ctx, keys); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*hybrid.Cache{n1, n2} {
		if st := c.Stats(); st.ConfigErrors != 0 || st.L2Errors != 0 || st.BackplaneErrors != 0 {
			t.Errorf("with the documented ACL: %+v", st)
		}
	}
	for i, admin := range admins {
		denied, err := admin.Do(ctx, "ACL", "LOG").Slice()
		if err != nil {
			t.Fatal(err)
		}
		if len(denied) > 0 {
			t.Errorf("node %d denied commands of the documented user: %v", i, denied)
		}
		for _, cmd := range append([][]any{{"PING"}}, extra...) {
			if res, err := admin.Do(ctx, append([]any{"ACL", "DRYRUN", "cacheapp"}, cmd...)...).Text(); err != nil || res != "OK" {
				t.Errorf("ACL DRYRUN cacheapp %s = %q, %v: go-redis sends it on its own", cmd, res, err)
			}
		}
	}
}

// TestDocumentedACLStandalone applies the exact standalone ACL line of
// docs/redis.md to a real Redis and runs a cache through it.
func TestDocumentedACLStandalone(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	if err := admin.Do(context.Background(), docACL(t, "standalone")...).Err(); err != nil {
		t.Fatalf("the documented ACL line: %v", err)
	}
	exerciseACL(t, []*redis.Client{admin}, func() redis.UniversalClient {
		o := srv.Options()
		o.Username, o.Password = "cacheapp", "secret"
		c := redis.NewClient(o)
		t.Cleanup(func() { c.Close() })
		return c
	})
}

// TestDocumentedACLCluster applies the exact cluster ACL line of
// docs/redis.md to every master of a real 3-master cluster.
func TestDocumentedACLCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	var admins []*redis.Client
	for _, n := range cluster.Nodes() {
		a := n.Client(t)
		if err := a.Do(context.Background(), docACL(t, "cluster")...).Err(); err != nil {
			t.Fatalf("the documented ACL line: %v", err)
		}
		admins = append(admins, a)
	}
	exerciseACL(t, admins, func() redis.UniversalClient {
		o := cluster.ClusterOptions()
		o.Username, o.Password = "cacheapp", "secret"
		o.ContextTimeoutEnabled = true
		c := redis.NewClusterClient(o)
		t.Cleanup(func() { c.Close() })
		return c
	}, []any{"COMMAND"}, []any{"CLUSTER", "SLOTS"})
}

// TestPublishRefusedKeepsL2: a Redis user with key access but no channel
// access (Redis 7 users start with no channels) gets NOPERM on PUBLISH. That
// is a configuration error: logged at Error once, counted, not queued, and
// it must not open the circuit breaker, which would stop the healthy
// distributed tier for the whole cache. Ping reports it.
func TestPublishRefusedKeepsL2(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--user", "nochan", "on", ">secret", "resetchannels", "~app:*", "+@all"))
	ctx := context.Background()
	o := srv.Options()
	o.Username, o.Password = "nochan", "secret"
	o.ContextTimeoutEnabled = true
	restricted := redis.NewClient(o)
	t.Cleanup(func() { restricted.Close() })
	var logged atomic.Int64
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{Client: restricted}, Logger: slog.New(countErrors{&logged})})
	n0, err := p.Register("app", func(s *strata.CacheSettings) {
		s.Entry = hybrid.EntryOptions{Duration: time.Hour}
	})
	if err != nil {
		t.Fatal(err)
	}
	n1 := bpNode(t, srv.FastClient(t, ""))

	for i := range 5 {
		if err := hybrid.Set(ctx, n0, fmt.Sprint("k", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	st := n0.Stats()
	if st.ConfigErrors < 5 || st.RecoveryPending != 0 || st.L2CircuitOpen {
		t.Fatalf("after refused publishes: %+v; want them counted as configuration errors, not queued, breaker closed", st)
	}
	if n := logged.Load(); n < 1 || n > 2 {
		t.Errorf("%d Error records for 5 refused publishes, want one (rate-limited)", n)
	}
	// The distributed tier still works both ways.
	if v, ok := get(t, n1, "k0"); !ok || v != "v" {
		t.Fatalf("node 1 reads %q, %v from Redis; want node 0's write", v, ok)
	}
	if err := hybrid.Set(ctx, n1, "other", "x"); err != nil {
		t.Fatal(err)
	}
	if v, ok := get(t, n0, "other"); !ok || v != "x" {
		t.Fatalf("node 0 reads %q, %v from Redis after refused publishes; want node 1's write", v, ok)
	}
	if err := n0.Ping(ctx); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Ping = %v, want the NOPERM of the backplane channel", err)
	}
}
