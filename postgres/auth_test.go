package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/internal/testlog"
	"github.com/strata-cache/strata/postgres"
)

// A server that asks for a password (SCRAM): Config.Password, or one in the
// connection string, authenticates; a wrong one is a configuration error
// (waiting will not fix it), and neither password appears in an error or a
// log line.
func TestPasswordAuthentication(t *testing.T) {
	const good, bad = "s3cret-Right-9", "hunter2-Wrong-7"
	srv := pgtest.StartWithPassword(t, good)

	t.Run("Config.Password", func(t *testing.T) {
		tier, err := postgres.NewTier(postgres.Config{ConnString: srv.URL(), Password: good, PruneInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer tier.Close()
		if err := tier.Ping(ctx(t)); err != nil {
			t.Fatalf("Ping with the right password: %v", err)
		}
		l2 := newL2(t, tier, "app:")
		if _, err := l2.Set(ctx(t), "app:k", env(1, []byte("v")), time.Minute); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("in the connection string", func(t *testing.T) {
		url := strings.Replace(srv.URL(), pgtest.User+"@", pgtest.User+":"+good+"@", 1)
		tier, err := postgres.NewTier(postgres.Config{ConnString: url, PruneInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer tier.Close()
		if err := tier.Ping(ctx(t)); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("none", func(t *testing.T) {
		tier, err := postgres.NewTier(postgres.Config{ConnString: srv.URL(), PruneInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer tier.Close()
		if err := tier.Ping(ctx(t)); !errors.Is(err, hybrid.ErrL2Config) {
			t.Fatalf("Ping without a password: %v; want hybrid.ErrL2Config", err)
		}
	})
	for _, c := range []struct{ name, connString, password string }{
		{"wrong Config.Password", srv.URL(), bad},
		{"wrong password in the connection string", strings.Replace(srv.URL(), pgtest.User+"@", pgtest.User+":"+bad+"@", 1), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs testlog.Buffer
			d := strata.ProductionDefaults()
			d.Entry.BackgroundL2Operations = false
			p := newProvider(t, strata.Settings{
				Tier:     postgres.Settings(postgres.Config{ConnString: c.connString, Password: c.password}),
				Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				Defaults: &d,
			})
			cache := register(t, p, "users")
			err := cache.Ping(context.Background())
			if !errors.Is(err, hybrid.ErrL2Config) {
				t.Fatalf("Ping with a wrong password: %v; want hybrid.ErrL2Config", err)
			}
			// The cache still serves, from memory and the factory.
			if v := get(t, cache, "k"); v != "factory" {
				t.Fatalf("GetOrSet = %q", v)
			}
			setErr := hybrid.Set(context.Background(), cache, "k2", "v")
			p.Close() // flushes what the cache would log
			for where, s := range map[string]string{"Ping's error": err.Error(), "logs": logs.String(), "Set's error": errString(setErr)} {
				if strings.Contains(s, bad) {
					t.Errorf("the password appears in %s: %s", where, s)
				}
			}
			if !strings.Contains(logs.String(), "28P01") && !strings.Contains(strings.ToLower(logs.String()), "password authentication failed") {
				t.Errorf("the logs do not say why the tier fails:\n%s", logs.String())
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
