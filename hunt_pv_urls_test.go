package strata_test

// Redis URLs of every form docs/redis.md lists ("URL (the provider creates
// and closes the client)"), against real redis-server processes: database
// numbers in the path and as ?db=, passwords of the default user and of ACL
// users holding characters that must be percent-encoded, rediss:// with
// skip_verify, unix sockets, query parameters. Each form must reach the
// Redis it names, keep the cache's keys there, and be closed by
// Provider.Close.

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// pvSync makes L2 writes block the caller, so that the test can look at
// Redis as soon as Set returns.
func pvSync(s *strata.CacheSettings) { s.Entry.BackgroundL2Operations = false }

// pvWait makes Register wait for the backplane subscription.
func pvWait(s *strata.CacheSettings) { s.WaitForInitialBackplaneSubscribe = 10 * time.Second }

// pvProvider returns a provider on the shared Redis of URL u, closed by
// t.Cleanup.
func pvProvider(t *testing.T, u string) *strata.Provider {
	t.Helper()
	return newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: u}, Logger: quiet})
}

// pvRegister is Register that fails the test on an error.
func pvRegister(t *testing.T, p *strata.Provider, name string, configure ...func(*strata.CacheSettings)) *hybrid.Cache {
	t.Helper()
	c, err := p.Register(name, configure...)
	if err != nil {
		t.Fatalf("Register(%q): %v", name, err)
	}
	return c
}

// pvDBClient returns a raw client of srv on database db.
func pvDBClient(t *testing.T, srv *redistest.Server, db int) *redis.Client {
	t.Helper()
	o := srv.Options()
	o.DB = db
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// pvRoundTrip checks that c writes to Redis through its URL (the key
// appears where raw looks) and that Ping succeeds.
func pvRoundTrip(t *testing.T, c *hybrid.Cache, raw redis.UniversalClient, key string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping of %q: %v", c.Name(), err)
	}
	if err := hybrid.Set(ctx, c, "k", "v"); err != nil {
		t.Fatalf("Set on %q: %v", c.Name(), err)
	}
	if !exists(t, raw, key) {
		t.Fatalf("%s is not in the Redis the URL names", key)
	}
}

// Database numbers, in the path and as ?db=: the keys land in that
// database only, and a second process on the same URL reads them from
// there.
func TestHuntPVURLDatabaseNumbers(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	db0, db2, db3 := pvDBClient(t, srv, 0), pvDBClient(t, srv, 2), pvDBClient(t, srv, 3)

	p2 := pvProvider(t, srv.URL()+"/2")
	c2 := pvRegister(t, p2, "users", pvSync, noBackplane)
	pvRoundTrip(t, c2, db2, "users:k")

	p3 := pvProvider(t, srv.URL()+"?db=3")
	c3 := pvRegister(t, p3, "users", pvSync, noBackplane)
	if err := hybrid.Set(ctx, c3, "k", "on db 3"); err != nil {
		t.Fatal(err)
	}
	if !exists(t, db3, "users:k") {
		t.Fatal("?db=3: users:k is not in database 3")
	}
	if n, err := db0.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("database 0 holds %d keys (%v), want 0", n, err)
	}

	// Another process on database 2 reads database 2's value.
	other := pvRegister(t, pvProvider(t, srv.URL()+"/2"), "users", noBackplane)
	waitValue(t, other, "k", "v")
	// One on database 0 finds nothing.
	zero := pvRegister(t, pvProvider(t, srv.URL()), "users", noBackplane)
	if v, ok, err := hybrid.TryGet[string](ctx, zero, "k"); ok || err != nil {
		t.Fatalf("the cache on database 0 read %q, %v, %v", v, ok, err)
	}
}

// Passwords of every documented form, holding characters that must be
// percent-encoded (docs/redis.md: "Percent-encode special characters in
// the password (p%40ss for p@ss, %2F for /, %3F for ?, %23 for #)"): the
// default user's (requirepass) and an ACL user's. Each connects, and
// neither the logs nor errors show the password.
func TestHuntPVURLSpecialPasswords(t *testing.T) {
	for _, pw := range []string{
		"p@ss",
		"a/b?c#d",
		"pct%41:colon",
		"sp ace+plus&amp=eq",
		"ünï-çødé",
	} {
		t.Run(url.PathEscape(pw), func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			admin := srv.Client(t)
			if err := admin.Do(ctx, "ACL", "SETUSER", "cache.app-1", "on", ">"+pw, "~*", "&*", "+@all").Err(); err != nil {
				t.Fatal(err)
			}
			logger, logs := bwLogs()

			// ACL user: url.UserPassword escapes what must be escaped.
			u := url.URL{Scheme: "redis", User: url.UserPassword("cache.app-1", pw), Host: srv.Addr()}
			p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: u.String()}, Logger: logger})
			c := pvRegister(t, p, "acl", pvSync, pvWait)
			pvRoundTrip(t, c, admin, "acl:k")

			// The default user's password (requirepass), set last: the
			// admin client authenticates as nobody.
			if err := admin.Do(ctx, "ACL", "SETUSER", "default", "resetpass", ">"+pw).Err(); err != nil {
				t.Fatal(err)
			}
			d := url.URL{Scheme: "redis", User: url.UserPassword("", pw), Host: srv.Addr(), Path: "/1"}
			pd := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: d.String()}, Logger: logger})
			cd := pvRegister(t, pd, "dflt", pvSync, pvWait)
			authed := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: pw, DB: 1})
			defer authed.Close()
			pvRoundTrip(t, cd, authed, "dflt:k")

			// A wrong password next to the right one: a config error,
			// never the password in a log or an error.
			w := url.URL{Scheme: "redis", User: url.UserPassword("cache.app-1", pw+"-wrong"), Host: srv.Addr()}
			pw2 := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: w.String()}, Logger: logger})
			cw := pvRegister(t, pw2, "wrong")
			perr := cw.Ping(ctx)
			if perr == nil {
				t.Fatal("Ping with a wrong password succeeded")
			}
			if strings.Contains(perr.Error(), pw) || strings.Contains(perr.Error(), url.QueryEscape(pw)) {
				t.Fatalf("Ping's error shows the password: %v", perr)
			}
			for _, q := range []*strata.Provider{p, pd, pw2} {
				if err := q.Close(); err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw)} {
				if strings.Contains(logs.String(), s) {
					t.Fatalf("the log shows the password (%q):\n%s", s, logs)
				}
			}
		})
	}
}

// rediss:// with skip_verify=true (docs/redis.md: "skip_verify (TLS,
// tests only)"): the cache talks TLS to a server whose certificate no
// system root signs.
func TestHuntPVURLTLSSkipVerify(t *testing.T) {
	srv := redistest.Start(t, redistest.WithTLS())
	raw := srv.Client(t)
	p := pvProvider(t, srv.URL()+"?skip_verify=true")
	c := pvRegister(t, p, "tls", pvSync, pvWait)
	pvRoundTrip(t, c, raw, "tls:k")
	if n := numSub(t, srv, bwChannel("tls:")); n != 1 {
		t.Fatalf("subscribers of the TLS cache's channel = %d, want 1", n)
	}
	// Without skip_verify the system roots refuse the test CA: a Ping
	// error, not a failed Register.
	strict := pvRegister(t, pvProvider(t, srv.URL()), "strict", noBackplane)
	if err := strict.Ping(context.Background()); err == nil {
		t.Fatal("Ping over rediss:// without skip_verify accepted a certificate of an unknown CA")
	}
}

// unix:///path?db=1 (docs/redis.md's last URL form).
func TestHuntPVURLUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "pv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "r.sock")
	srv := redistest.Start(t, redistest.WithArgs("--unixsocket", sock, "--unixsocketperm", "700"))
	db1 := pvDBClient(t, srv, 1)
	p := pvProvider(t, "unix://"+sock+"?db=1")
	c := pvRegister(t, p, "sock", pvSync, pvWait)
	pvRoundTrip(t, c, db1, "sock:k")
	// Database 1: the channel names it (pub/sub is server-wide).
	if n := numSub(t, srv, backplane.ChannelName("strata:db1", "sock:")); n != 1 {
		t.Fatalf("subscribers of the unix socket cache's channel = %d, want 1", n)
	}
}

// go-redis options as query parameters reach the client (client_name is
// visible in CLIENT LIST), and the provider closes that client.
func TestHuntPVURLQueryParameters(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := srv.Client(t)
	if err := raw.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	u := srv.URL() + "/0?client_name=pv-hunt&dial_timeout=2s&read_timeout=1s&write_timeout=1s&pool_size=4&max_retries=2&min_idle_conns=0&pool_fifo=true&conn_max_idle_time=30s"
	p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: u}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c := pvRegister(t, p, "q", pvSync, pvWait)
	pvRoundTrip(t, c, raw, "q:k")
	list, err := raw.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list, "name=pv-hunt") {
		t.Fatalf("client_name did not reach the client:\n%s", list)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "the client named by the URL to close", func() bool {
		l, err := raw.ClientList(ctx).Result()
		return err == nil && !strings.Contains(l, "name=pv-hunt")
	})
}
