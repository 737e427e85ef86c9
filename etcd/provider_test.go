package etcd_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

func fromL2(t testing.TB, c *hybrid.Cache, key string) string {
	t.Helper()
	v, err := hybrid.GetOrSet(context.Background(), c, key, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "factory", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestProviderSharingAndIsolation(t *testing.T) {
	shared := etcdtest.Start(t)
	other := etcdtest.Start(t)
	cfg := etcd.Config{Endpoints: []string{shared.Endpoint()}}
	own := etcd.Config{Endpoints: []string{other.Endpoint()}}
	// Two processes: each has the shared etcd for every cache, and "orders"
	// isolated on another etcd.
	p1 := newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)})
	p2 := newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)})
	isolate := func(cs *strata.CacheSettings) { cs.Tier = etcd.Settings(own) }
	users1, users2 := register(t, p1, "users"), register(t, p2, "users")
	orders1, orders2 := register(t, p1, "orders", isolate), register(t, p2, "orders", isolate)
	products1 := register(t, p1, "products")
	c := ctx(t)

	hybrid.Set(c, users1, "k", "u")
	hybrid.Set(c, orders1, "k", "o")
	if v := fromL2(t, users2, "k"); v != "u" {
		t.Fatalf("users on p2 read %q; want u from the shared etcd", v)
	}
	if v := fromL2(t, orders2, "k"); v != "o" {
		t.Fatalf("orders on p2 read %q; want o from the isolated etcd", v)
	}
	if v := fromL2(t, products1, "k"); v != "factory" {
		t.Fatalf("products read %q: caches sharing an etcd must not see each other's keys", v)
	}
	// Where the data is: users on the shared etcd, orders on the other only.
	sc, oc := shared.Client(t), other.Client(t)
	if r, _ := sc.Get(c, "users:k"); len(r.Kvs) != 1 {
		t.Error("users:k is not on the shared etcd")
	}
	if r, _ := sc.Get(c, "orders:k"); len(r.Kvs) != 0 {
		t.Error("orders:k is on the shared etcd; it is isolated")
	}
	if r, _ := oc.Get(c, "orders:k"); len(r.Kvs) != 1 {
		t.Error("orders:k is not on its own etcd")
	}
	// And invalidation travels: p2's copy goes when p1 writes.
	hybrid.Set(c, users1, "k", "u2")
	waitFor(t, 5*time.Second, "p2 to see u2", func() bool { return fromL2(t, users2, "k") == "u2" })
	for _, cache := range []*hybrid.Cache{users1, orders1} {
		if err := cache.Ping(c); err != nil {
			t.Errorf("Ping %s: %v", cache.Name(), err)
		}
	}
}

func TestProviderMixesRedisAndEtcd(t *testing.T) {
	rs := redistest.Start(t)
	m := etcdtest.Start(t)
	cli := m.Client(t)
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: rs.URL()}})
	onRedis := register(t, p, "r")
	onEtcd := register(t, p, "e", func(cs *strata.CacheSettings) { cs.Tier = etcd.ClientSettings(cli, etcd.TierOptions{}) })
	c := ctx(t)
	hybrid.Set(c, onRedis, "k", "redis")
	hybrid.Set(c, onEtcd, "k", "etcd")
	if n, err := rs.Client(t).Exists(c, "r:k").Result(); err != nil || n != 1 {
		t.Errorf("r:k not in Redis: %d, %v", n, err)
	}
	if n, _ := rs.Client(t).Exists(c, "e:k").Result(); n != 0 {
		t.Error("e:k is in Redis; the cache is on etcd")
	}
	if r, _ := cli.Get(c, "e:k"); len(r.Kvs) != 1 {
		t.Error("e:k not in etcd")
	}
	p.Close()
	// The caller's client is still open.
	if _, err := cli.Get(c, "e:k"); err != nil {
		t.Fatalf("the provider closed the caller's etcd client: %v", err)
	}
}

func TestProviderAuth(t *testing.T) {
	m := etcdtest.Start(t)
	etcdtest.EnableAuth(t, m.Client(t), "cacheapp", "s3cret-pw", "app:")
	inPrefix := func(cs *strata.CacheSettings) { cs.KeyPrefix = "app:users:" }
	good := etcd.Config{Endpoints: []string{m.Endpoint()}, Username: "cacheapp", Password: "s3cret-pw"}
	p := newProvider(t, strata.Settings{Tier: etcd.Settings(good)})
	c := register(t, p, "users", inPrefix)
	cx := ctx(t)
	waitFor(t, 10*time.Second, "Ping with the right password", func() bool { return c.Ping(cx) == nil })
	hybrid.Set(cx, c, "k", "v")
	p2 := newProvider(t, strata.Settings{Tier: etcd.Settings(good)})
	users2 := register(t, p2, "users", inPrefix)
	// The client authenticates in the background; Ping (as at start-up)
	// until it is there, before the first read.
	waitFor(t, 10*time.Second, "the second provider to authenticate", func() bool { return users2.Ping(cx) == nil })
	if v := fromL2(t, users2, "k"); v != "v" {
		t.Fatalf("second provider read %q; want v", v)
	}

	// A key range the user has no permission on: a configuration error.
	outside := register(t, p, "other")
	err := outside.Ping(cx)
	if !errors.Is(err, hybrid.ErrL2Config) {
		t.Fatalf("Ping outside the granted range: %v; want ErrL2Config", err)
	}

	bad := good
	bad.Password = "wrong-pw"
	pb := newProvider(t, strata.Settings{Tier: etcd.Settings(bad)})
	cb := register(t, pb, "users", inPrefix)
	// Authentication runs in the background: until it has failed once, Ping
	// reports the tier as unavailable; then as a configuration error.
	waitFor(t, 10*time.Second, "Ping to report the wrong password", func() bool {
		pctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		err = cb.Ping(pctx)
		if !errors.Is(err, hybrid.ErrL2Config) && !errors.Is(err, hybrid.ErrL2Unavailable) {
			t.Fatalf("Ping with a wrong password: %v; want ErrL2Config (or ErrL2Unavailable while authenticating)", err)
		}
		return errors.Is(err, hybrid.ErrL2Config)
	})
	if strings.Contains(err.Error(), "wrong-pw") {
		t.Fatalf("the password appears in the error: %v", err)
	}
	// The cache still answers from its factory.
	if v := fromL2(t, cb, "k2"); v != "factory" {
		t.Fatalf("GetOrSet with a failing tier = %q", v)
	}
}

func TestProviderTLS(t *testing.T) {
	m := etcdtest.Start(t, etcdtest.WithTLS())
	p := newProvider(t, strata.Settings{Tier: etcd.Settings(etcd.Config{Endpoints: []string{m.Endpoint()}, TLS: m.TLSConfig()})})
	c := register(t, p, "secure")
	cx := ctx(t)
	if err := c.Ping(cx); err != nil {
		t.Fatalf("Ping over TLS: %v", err)
	}
	hybrid.Set(cx, c, "k", "v")
	if r, err := m.Client(t).Get(cx, "secure:k"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("secure:k not written over TLS: %v", err)
	}
	// Without the CA the handshake fails: Ping reports it.
	pn := newProvider(t, strata.Settings{Tier: etcd.Settings(etcd.Config{Endpoints: []string{m.Endpoint()}})})
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := register(t, pn, "secure").Ping(pctx); err == nil {
		t.Fatal("Ping without TLS settings succeeded against a TLS-only etcd")
	}
	// TLS without the server's CA: the certificate does not verify, which
	// is a configuration error (waiting will not fix it), and says so.
	pu := newProvider(t, strata.Settings{Tier: etcd.Settings(etcd.Config{Endpoints: []string{m.Endpoint()}, TLS: &tls.Config{}})})
	uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ucancel()
	err := register(t, pu, "secure").Ping(uctx)
	if !errors.Is(err, hybrid.ErrL2Config) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Ping with an untrusted server certificate: %v; want hybrid.ErrL2Config naming the certificate", err)
	}
}

func closedPort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestProviderUnreachableAtStartup(t *testing.T) {
	for _, cfg := range []etcd.Config{
		{Endpoints: []string{"http://" + closedPort(t)}},
		{Endpoints: []string{"http://" + closedPort(t)}, Username: "u", Password: "p", DialTimeout: 10 * time.Second},
	} {
		start := time.Now()
		p := newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)})
		c := register(t, p, "down")
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("NewProvider+Register took %s with etcd unreachable; must not wait for it", d)
		}
		for range 3 {
			if v := fromL2(t, c, "k"); v != "factory" {
				t.Fatalf("GetOrSet = %q; want the factory's value", v)
			}
		}
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(pctx)
		cancel()
		if !errors.Is(err, hybrid.ErrL2Unavailable) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ping with etcd unreachable: %v", err)
		}
		p.Close()
	}
}

func TestProviderBadSettings(t *testing.T) {
	for name, s := range map[string]*strata.TierSettings{
		"no endpoints":      etcd.Settings(etcd.Config{}),
		"password only":     etcd.Settings(etcd.Config{Endpoints: []string{"http://127.0.0.1:1"}, Password: "hunter2-secret"}),
		"negative duration": etcd.Settings(etcd.Config{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: -1}),
		"nil client":        etcd.ClientSettings(nil, etcd.TierOptions{}),
		"both fields":       {New: etcd.Settings(etcd.Config{Endpoints: []string{"x"}}).New, Tier: &etcd.Tier{}},
	} {
		_, err := strata.NewProvider(strata.Settings{Tier: s})
		if !errors.Is(err, strata.ErrInvalidSettings) {
			t.Errorf("%s: %v; want ErrInvalidSettings", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the password appears in the error", name)
		}
	}
	rs := &strata.RedisSettings{URL: "redis://127.0.0.1:1"}
	if _, err := strata.NewProvider(strata.Settings{Redis: rs, Tier: etcd.Settings(etcd.Config{Endpoints: []string{"x"}})}); !errors.Is(err, strata.ErrInvalidSettings) {
		t.Errorf("Redis and Tier both set: %v", err)
	}
	p := newProvider(t, strata.Settings{})
	if _, err := p.Register("x", func(cs *strata.CacheSettings) {
		cs.Redis = rs
		cs.Tier = etcd.Settings(etcd.Config{Endpoints: []string{"x"}})
	}); !errors.Is(err, strata.ErrInvalidSettings) {
		t.Errorf("a cache with Redis and Tier: %v", err)
	}
}
