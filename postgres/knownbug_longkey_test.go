package postgres_test

// A known bug, reproduced (skipped unless STRATA_KNOWN_BUGS=1; see knownBug).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// A cache with MaxKeyLength raised (a documented setting, hybrid.Options
// and CacheSettings) on the PostgreSQL tier: a key of 3,000 incompressible
// bytes is accepted by the cache but not by the table's btree primary key
// (index rows are limited to 2,704 bytes: SQLSTATE 54000), so the entry is
// never shared and a change to it is never announced: the other node
// keeps serving its old copy. The tier does not lower MaxKeyLength (it
// only lowers MaxValueSize, and the etcd tier's size limit counts keys).
func TestKnownPgBugLongKeyChangeReachesOtherNode(t *testing.T) {
	knownBug(t, "the primary-key index takes keys up to 2,704 bytes (SQLSTATE 54000)")
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	long := func(cs *strata.CacheSettings) { cs.MaxKeyLength = 8192 }
	a := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), "long", long)
	b := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), "long", long)
	c := context.Background()
	raw := make([]byte, 1500)
	rand.Read(raw)
	key := hex.EncodeToString(raw) // 3,000 bytes
	if err := a.ValidateKey(key); err != nil {
		t.Fatalf("the cache refuses the key: %v", err)
	}
	if err := hybrid.Set(c, a, key, "v1"); err != nil {
		t.Fatal(err)
	}
	if v := get(t, b, key); v != "v1" {
		t.Errorf("b reads %q; want v1 from the table (a: %d L2 errors)", v, a.Stats().L2Errors)
	}
	if err := hybrid.Set(c, a, key, "v2"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		v, ok, _ := hybrid.TryGet[string](c, b, key)
		if !ok || v == "v2" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("3 s after a's Set of v2, b still serves %q (a: %d L2 errors, %d published)", v, a.Stats().L2Errors, a.Stats().BackplanePublished)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
