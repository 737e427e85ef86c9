package etcd_test

// Values at the size limit must reach etcd and the other node, or be
// refused at once (they were accepted, then refused by etcd, and lost).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
)

func sizeLargestAccepted(t *testing.T, c *hybrid.Cache, key string) int {
	t.Helper()
	const probe = 1600 << 10
	err := hybrid.Set(ctx(t), c, key, strings.Repeat("x", probe))
	if !errors.Is(err, hybrid.ErrValueTooLarge) {
		t.Fatalf("Set of %d bytes: %v; want ErrValueTooLarge", probe, err)
	}
	var size, limit int
	msg := err.Error()
	if _, serr := fmt.Sscanf(msg[strings.LastIndex(msg, "encodes to "):], "encodes to %d bytes, the maximum is %d", &size, &limit); serr != nil {
		t.Fatalf("cannot read the sizes from %q: %v", msg, serr)
	}
	return limit - (size - probe)
}

// Two nodes; b holds "small"; a Sets a value of n bytes (n <= what the
// cache accepts). Expected: Set fails with ErrValueTooLarge, or the value
// reaches etcd and b. It used to return nil while etcd refused the
// transaction ("etcdserver: request is too large", counted in L2Errors):
// nothing was announced, and b served "small" while a served the new value.
func sizeCase(t *testing.T, name, key string, n int, f ...func(*strata.CacheSettings)) {
	m := etcdtest.Start(t)
	cfg := etcd.Config{Endpoints: []string{m.Endpoint()}}
	p1 := newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)})
	p2 := newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)})
	a, b := register(t, p1, name, f...), register(t, p2, name, f...)
	c := ctx(t)
	waitFor(t, 10*time.Second, "Ping", func() bool { return a.Ping(c) == nil && b.Ping(c) == nil })
	if n == 0 {
		n = sizeLargestAccepted(t, a, key)
	}
	if err := hybrid.Set(c, a, key, "small"); err != nil {
		t.Fatal(err)
	}
	if v, _ := hybrid.GetOrSet(c, b, key, func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "factory", nil }); v != "small" {
		t.Fatalf("b read %q", v)
	}
	big := strings.Repeat("y", n)
	err := hybrid.Set(c, a, key, big)
	if errors.Is(err, hybrid.ErrValueTooLarge) {
		return // refused at once: fine
	}
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		v, ok, _ := hybrid.TryGet[string](c, b, key)
		if ok && v == big {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Set of %d bytes (key of %d) returned nil, but 3 s later b still reads %q (%d bytes, found %v); a: %d L2 errors",
				n, len(key), v[:min(len(v), 10)], len(v), ok, a.Stats().L2Errors)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A key of DefaultMaxKeyLength (1024) bytes and the largest value the
// provider's MaxValueSize lets through.
func TestHuntEtcdSizeValueAtTheLimitLongKey(t *testing.T) {
	sizeCase(t, "bigkey", strings.Repeat("k", 1024), 0)
}

// BackplaneValueMaxSize raised to 2 MiB: a 1 MiB value (well under the
// 1.5 MiB limit) is put twice in the transaction (the entry and the feed
// record carrying it), which the size check does not count.
func TestHuntEtcdSizeBackplaneValuesRaised(t *testing.T) {
	sizeCase(t, "bpvalues", "k", 1<<20, func(cs *strata.CacheSettings) { cs.BackplaneValueMaxSize = 2 << 20 })
}
