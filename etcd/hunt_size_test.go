package etcd_test

import (
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

// largestAccepted returns the length of the largest string value the
// cache accepts for key: a Set over the limit says how large its envelope
// was and what the limit is.
func largestAccepted(t *testing.T, c *hybrid.Cache, key string) int {
	t.Helper()
	const probe = 1600 << 10 // above etcd's 1.5 MiB, below 2 MiB (same length prefixes as the answer)
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

// huntSizeCase: two providers on m; a holds key's old value in b's
// memory, then writes the largest value the cache accepts: the write must
// reach etcd (no L2 error) and b; one byte more is refused at once.
func huntSizeCase(t *testing.T, m *etcdtest.Member, name, key string, f ...func(*strata.CacheSettings)) {
	t.Helper()
	cfg := etcd.Config{Endpoints: []string{m.Endpoint()}}
	p1 := newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)})
	p2 := newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)})
	a, b := register(t, p1, name, f...), register(t, p2, name, f...)
	c := ctx(t)
	waitFor(t, 10*time.Second, "Ping", func() bool { return a.Ping(c) == nil && b.Ping(c) == nil })
	lo := largestAccepted(t, a, key)
	t.Logf("key of %d bytes: largest value accepted %d bytes", len(key), lo)
	if err := hybrid.Set(c, a, key, "small"); err != nil {
		t.Fatal(err)
	}
	if v := fromL2(t, b, key); v != "small" {
		t.Fatalf("b read %q", v)
	}
	before := a.Stats()
	big := strings.Repeat("y", lo)
	if err := hybrid.Set(c, a, key, big); err != nil {
		t.Fatalf("Set of %d bytes, which the cache accepts: %v", lo, err)
	}
	if st := a.Stats(); st.L2Errors != before.L2Errors || st.ConfigErrors != before.ConfigErrors {
		t.Fatalf("Set of the largest accepted value (%d bytes, key of %d) returned nil but failed in etcd: %d L2 errors, %d config errors",
			lo, len(key), st.L2Errors-before.L2Errors, st.ConfigErrors-before.ConfigErrors)
	}
	waitFor(t, 5*time.Second, "b to read the large value", func() bool {
		v, ok, err := hybrid.TryGet[string](c, b, key)
		return err == nil && ok && v == big
	})
	if err := hybrid.Set(c, a, key, strings.Repeat("z", lo+2)); !errors.Is(err, hybrid.ErrValueTooLarge) {
		t.Fatalf("Set over the limit: %v; want ErrValueTooLarge", err)
	}
	if v, ok, _ := hybrid.TryGet[string](c, b, key); !ok || v != big {
		t.Fatalf("b reads %d bytes (found %v) after a refused Set; want the large value", len(v), ok)
	}
}

// Values at the limit the provider sets for an etcd cache (docs/etcd.md,
// "Size"), with keys up to 900 bytes.
func TestHuntEtcdValueAtTheLimit(t *testing.T) {
	m := etcdtest.Start(t)
	for _, klen := range []int{1, 64, 900} {
		huntSizeCase(t, m, fmt.Sprint("big", klen), strings.Repeat("k", klen))
	}
}
