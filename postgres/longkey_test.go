package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// The table's primary key is a btree, whose entries PostgreSQL limits to
// 2,704 bytes (SQLSTATE 54000): with MaxKeyLength raised, a longer key was
// accepted by the cache, refused at every write by the table, and never
// announced, so another node kept its old copy. The tier lowers the
// cache's MaxKeyLength: such a key is refused at once, changing nothing,
// and the longest key accepted is shared and announced like any other.
func TestLongKeysRefusedAtOnceOrShared(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	long := func(cs *strata.CacheSettings) { cs.MaxKeyLength = 8192 }
	a := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), "long", long)
	b := register(t, newProvider(t, strata.Settings{Tier: postgres.Settings(cfg)}), "long", long)
	c := context.Background()
	hexKey := func(n int) string {
		raw := make([]byte, (n+1)/2)
		rand.Read(raw)
		return hex.EncodeToString(raw)[:n] // incompressible: the index cannot shrink it
	}

	tooLong := hexKey(3000)
	if err := a.ValidateKey(tooLong); !errors.Is(err, hybrid.ErrInvalidKey) {
		t.Fatalf("ValidateKey of a 3,000-byte key = %v; want ErrInvalidKey (the table cannot index it)", err)
	}
	if err := hybrid.Set(c, a, tooLong, "v1"); !errors.Is(err, hybrid.ErrInvalidKey) {
		t.Fatalf("Set of a 3,000-byte key = %v; want ErrInvalidKey", err)
	}
	if st := a.Stats(); st.L2Errors != 0 {
		t.Errorf("a refused key reached the table: %d L2 errors", st.L2Errors)
	}

	// The longest key accepted: found by ValidateKey, then shared.
	n := 3000
	for n > 0 && a.ValidateKey(hexKey(n)) != nil {
		n--
	}
	if n < 2000 {
		t.Fatalf("the longest key accepted is %d bytes; want most of the index's 2,704", n)
	}
	key := hexKey(n)
	if err := hybrid.Set(c, a, key, "v1"); err != nil {
		t.Fatal(err)
	}
	if v := get(t, b, key); v != "v1" {
		t.Fatalf("b reads %q for a %d-byte key; want v1 from the table (a: %d L2 errors)", v, n, a.Stats().L2Errors)
	}
	if err := hybrid.Set(c, a, key, "v2"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, ok, _ := hybrid.TryGet[string](c, b, key)
		if !ok || v == "v2" {
			break // the change was heard: b's copy is gone or replaced
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after a's Set of v2, b still serves %q (a: %d L2 errors)", v, a.Stats().L2Errors)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := a.Stats(); st.L2Errors != 0 {
		t.Errorf("%d L2 errors writing a %d-byte key", st.L2Errors, n)
	}
}
