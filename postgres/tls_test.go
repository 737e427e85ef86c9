package postgres_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// TLS to PostgreSQL: with the server's CA (sslmode=verify-full) the tier
// works; without it the certificate does not verify, which is a
// configuration error (waiting will not fix it). (A host name the
// certificate was not issued for is classified the same way: see
// internal/redisstore's TestClassifyTLS.)
func TestTLS(t *testing.T) {
	srv := pgtest.StartWithTLS(t)
	base := srv.URL() // sslmode=disable
	withMode := func(mode string) string { return strings.Replace(base, "sslmode=disable", mode, 1) }
	cases := []struct {
		name, url string
		ok        bool
	}{
		{"verify-full with the CA", withMode("sslmode=verify-full&sslrootcert=" + srv.CAFile()), true},
		{"require (no verification)", withMode("sslmode=require"), true},
		{"verify-full without the CA", withMode("sslmode=verify-full&sslrootcert=system"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tier, err := postgres.NewTier(postgres.Config{ConnString: c.url, PruneInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer tier.Close()
			err = tier.Ping(ctx(t))
			switch {
			case c.ok && err != nil:
				t.Fatalf("Ping: %v", err)
			case !c.ok && !errors.Is(err, hybrid.ErrL2Config):
				t.Fatalf("Ping: %v; want hybrid.ErrL2Config", err)
			case c.ok:
				l2 := newL2(t, tier, "app:")
				if _, err := l2.Set(ctx(t), "app:k", env(1, []byte("over TLS")), time.Minute); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
