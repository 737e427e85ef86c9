package strata_test

// Named caches on one shared Redis are kept apart by their key prefixes
// (docs/redis.md: "Caches on one client are kept apart by their key
// prefix"): Clear and RemoveByTag of one cache never touch another, in
// this process or in another, in memory or in Redis; closing one cache
// leaves its siblings on the same client working; names with odd (but
// allowed) characters get prefixes that neither collide nor overlap.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// pvNames are cache names whose default prefixes look alike without
// overlapping: none is another's prefix ("a:" against "a.b:", "ab:",
// "A:", "a-:", "a_b:c:").
var pvNames = []string{"a", "a.b", "ab", "A", "a-", "a_b:c"}

// pvAll registers every name of pvNames on p.
func pvAll(t *testing.T, p *strata.Provider, configure ...func(*strata.CacheSettings)) map[string]*hybrid.Cache {
	t.Helper()
	out := make(map[string]*hybrid.Cache, len(pvNames))
	for _, n := range pvNames {
		out[n] = pvRegister(t, p, n, configure...)
	}
	return out
}

// pvMissing polls until TryGet of key on c misses.
func pvMissing(t *testing.T, c *hybrid.Cache, key string) {
	t.Helper()
	redistest.Eventually(t, "cache "+c.Name()+" to miss "+key, func() bool {
		_, ok, err := hybrid.TryGet[string](context.Background(), c, key)
		return !ok && err == nil
	})
}

// pvHas fails the test unless c holds key with value want now.
func pvHas(t *testing.T, c *hybrid.Cache, key, want string) {
	t.Helper()
	v, ok, err := hybrid.TryGet[string](context.Background(), c, key)
	if !ok || err != nil || v != want {
		t.Fatalf("cache %q key %q = %q, %v, %v; want %q", c.Name(), key, v, ok, err, want)
	}
}

func TestHuntPVClearAndRemoveByTagStayInTheirCache(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	p1, p2 := pvProvider(t, srv.URL()), pvProvider(t, srv.URL())
	n1, n2 := pvAll(t, p1, pvSync, pvWait), pvAll(t, p2, pvSync, pvWait)
	tagged := hybrid.WithTags("t", "shared-tag")
	for _, n := range pvNames {
		if err := hybrid.Set(ctx, n1[n], "k", "v-"+n, tagged); err != nil {
			t.Fatal(err)
		}
		if err := hybrid.Set(ctx, n1[n], "untagged", "u-"+n); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range pvNames { // process 2 reads them (from Redis)
		waitValue(t, n2[n], "k", "v-"+n)
		waitValue(t, n2[n], "untagged", "u-"+n)
	}

	// Clear of "a" in process 1.
	if err := n1["a"].Clear(ctx, false); err != nil {
		t.Fatal(err)
	}
	pvMissing(t, n1["a"], "k")
	pvMissing(t, n2["a"], "k") // heard on a's channel
	pvMissing(t, n2["a"], "untagged")
	// RemoveByTag of "a.b" in process 2.
	if err := n2["a.b"].RemoveByTag(ctx, "shared-tag"); err != nil {
		t.Fatal(err)
	}
	pvMissing(t, n2["a.b"], "k")
	pvMissing(t, n1["a.b"], "k")
	pvHas(t, n1["a.b"], "untagged", "u-a.b")

	// Every other cache keeps both keys, in both processes and for a
	// third process that reads Redis only.
	p3 := pvProvider(t, srv.URL())
	n3 := pvAll(t, p3, pvWait)
	for _, n := range pvNames {
		for i, c := range []*hybrid.Cache{n1[n], n2[n], n3[n]} {
			switch n {
			case "a":
				pvMissing(t, c, "k")
				pvMissing(t, c, "untagged")
			case "a.b":
				pvMissing(t, c, "k")
				pvHas(t, c, "untagged", "u-a.b")
			default:
				if i == 2 {
					waitValue(t, c, "k", "v-"+n)
				}
				pvHas(t, c, "k", "v-"+n)
				pvHas(t, c, "untagged", "u-"+n)
			}
		}
	}
	// The records are under their caches' prefixes only.
	keys, err := raw.Keys(ctx, "*__strata:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !strings.HasPrefix(k, "a:__strata:") && !strings.HasPrefix(k, "a.b:__strata:") {
			t.Errorf("invalidation record %q outside the prefixes of a and a.b", k)
		}
	}
	if !slices.Contains(keys, "a:__strata:clear") {
		t.Errorf("no Clear record a:__strata:clear among %v", keys)
	}
	// The cleared cache works again afterwards, and only for itself.
	if err := hybrid.Set(ctx, n1["a"], "k", "again"); err != nil {
		t.Fatal(err)
	}
	waitValue(t, n2["a"], "k", "again")
	pvHas(t, n2["ab"], "k", "v-ab")
}

// Closing one cache on the shared client ends its subscription only: its
// siblings keep their backplane and their distributed tier, the shared
// client stays open, and Provider.Close afterwards closes it without an
// error.
func TestHuntPVClosingOneCacheLeavesSiblings(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	if err := raw.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	p1 := pvProvider(t, srv.URL())
	a1, b1 := pvRegister(t, p1, "a", pvSync, pvWait), pvRegister(t, p1, "b", pvSync, pvWait)
	p2 := pvProvider(t, srv.URL())
	b2 := pvRegister(t, p2, "b", pvSync, pvWait)
	if err := hybrid.Set(ctx, b1, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	waitValue(t, b2, "k", "v1")

	if err := a1.Close(); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "a's subscription to end", func() bool { return numSub(t, srv, bwChannel("a:")) == 0 })
	if n := numSub(t, srv, bwChannel("b:")); n != 2 {
		t.Fatalf("subscribers of b's channel after closing a = %d, want 2", n)
	}
	if err := hybrid.Set(ctx, a1, "k", "x"); !errors.Is(err, hybrid.ErrClosed) {
		t.Fatalf("Set on the closed cache: %v, want hybrid.ErrClosed", err)
	}
	// b in process 1 still writes to Redis and announces: process 2,
	// which holds v1 in memory, gets v2.
	if err := hybrid.Set(ctx, b1, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	waitValue(t, b2, "k", "v2")
	if !exists(t, raw, "b:k") {
		t.Fatal("b:k not in Redis")
	}
	if err := b1.Ping(ctx); err != nil {
		t.Fatalf("Ping of b after closing a: %v", err)
	}
	// GetCache still returns the closed cache (docs/errors.md), and the
	// provider's Close closes it again without complaint.
	if c, err := p1.GetCache("a"); err != nil || c != a1 {
		t.Fatalf("GetCache(a) after its Close = %v, %v", c, err)
	}
	if _, err := p1.Register("a"); !errors.Is(err, strata.ErrDuplicateName) {
		t.Fatalf("Register(a) after closing the cache: %v, want ErrDuplicateName", err)
	}
	if err := p1.Close(); err != nil {
		t.Fatalf("Provider.Close after a cache's own Close: %v", err)
	}
	redistest.Eventually(t, "b's subscription of process 1 to end", func() bool { return numSub(t, srv, bwChannel("b:")) == 1 })
	// Process 2 is untouched.
	if err := hybrid.Set(ctx, b2, "k2", "w"); err != nil {
		t.Fatal(err)
	}
	if err := b2.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// Names at the edges of what Register accepts: ':' inside a name, the
// longest name, and pairs whose default prefixes overlap ("x" and "x:"
// give "x:" and "x::", one beginning the other), refused in either order
// with ErrInvalidSettings naming both and leaving the provider as it was.
func TestHuntPVOddNames(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	p := pvProvider(t, srv.URL())
	long := strings.Repeat("Zz9._-:", strata.MaxNameLength/7) + strings.Repeat("q", strata.MaxNameLength%7)
	if len(long) != strata.MaxNameLength {
		t.Fatalf("test bug: name of %d bytes", len(long))
	}
	c := pvRegister(t, p, long, pvSync, pvWait)
	if err := hybrid.Set(ctx, c, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if !exists(t, raw, long+":k") {
		t.Fatalf("%s:k not in Redis", long)
	}
	if n := numSub(t, srv, bwChannel(long+":")); n != 1 {
		t.Fatalf("subscribers of the long name's channel = %d", n)
	}
	if _, err := p.Register(long + "x"); !errors.Is(err, strata.ErrInvalidSettings) {
		t.Fatalf("a name of %d bytes: %v, want ErrInvalidSettings", len(long)+1, err)
	}

	for _, pair := range [][2]string{{"x", "x:"}, {"y:", "y"}, {"m", "m:n"}, {"q:r", "q"}} {
		first := pvRegister(t, p, pair[0])
		before := p.Names()
		_, err := p.Register(pair[1])
		if !errors.Is(err, strata.ErrInvalidSettings) || !strings.Contains(err.Error(), pair[0]) || !strings.Contains(err.Error(), pair[1]) {
			t.Fatalf("Register(%q) after %q: %v; want ErrInvalidSettings naming both", pair[1], pair[0], err)
		}
		if got := p.Names(); !slices.Equal(got, before) {
			t.Fatalf("a refused Register changed Names: %v, was %v", got, before)
		}
		if _, err := p.GetCache(pair[1]); !errors.Is(err, strata.ErrCacheNotFound) {
			t.Fatalf("GetCache(%q) after a refused Register: %v", pair[1], err)
		}
		// With a prefix of its own it is accepted.
		if _, err := p.Register(pair[1], func(s *strata.CacheSettings) { s.KeyPrefix = "other-" + pair[1] + "/" }); err != nil {
			t.Fatalf("Register(%q) with its own KeyPrefix: %v", pair[1], err)
		}
		if err := hybrid.Set(ctx, first, "k", "v"); err != nil {
			t.Fatal(err)
		}
	}
	// Names are case-sensitive and exact in GetCache.
	for _, n := range []string{"X", "x ", " x", "x::", "m:"} {
		if c, err := p.GetCache(n); !errors.Is(err, strata.ErrCacheNotFound) || c != nil {
			t.Fatalf("GetCache(%q) = %v, %v; want ErrCacheNotFound", n, c, err)
		}
	}
	if c, err := p.GetCache("x"); err != nil || c.Name() != "x" {
		t.Fatalf("GetCache(x) = %v, %v", c, err)
	}
}
