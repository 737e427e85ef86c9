package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// Keys of unusual (valid UTF-8, NUL-free) bytes, and of the longest
// length allowed, are shared by two nodes over one PostgreSQL, and a Remove
// on one node reaches the other. (A NUL byte or invalid UTF-8 is not
// stored by the text column: reported separately.)
func TestHuntOddKeysSharedAcrossNodes(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL()}
	n1 := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), "users")
	n2 := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), "users")
	c := context.Background()
	for _, key := range []string{"plain", "sp ace/ü€", "\x01\x02ctl\n\t", "%_like'quote\\", "x__strata:feed", strings.Repeat("é", 512)} {
		if err := hybrid.Set(c, n1, key, "v1"); err != nil {
			t.Fatalf("Set %q: %v", key, err)
		}
		if v := get(t, n2, key); v != "v1" {
			t.Errorf("key %q: n2 reads %q; want v1 from the table", key, v)
			continue
		}
		if err := n1.Remove(c, key); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "n2 to drop "+key, func() bool { _, ok := peek(n2, key); return !ok })
	}
	if st := n1.Stats(); st.L2Errors != 0 {
		t.Errorf("n1: %d L2 errors", st.L2Errors)
	}
}
