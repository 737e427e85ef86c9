package postgres_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

func randomText(n int) string {
	b := make([]byte, n/2+1)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// Large values travel between nodes: one above the notification's 8,000
// bytes (the Set's message then carries the entry in the feed row only,
// with BackplaneValueMaxSize raised) and one of several MiB.
func TestHuntPgLargeValuesAcrossNodes(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	raise := func(cs *strata.CacheSettings) { cs.BackplaneValueMaxSize = 1 << 20 }
	a, b := pgNode(t, cfg, "large", raise), pgNode(t, cfg, "large", raise)
	c := ctx(t)
	for _, n := range []int{7000, 100 << 10, 900 << 10, 8 << 20} {
		v1, v2 := randomText(n), randomText(n)
		if err := hybrid.Set(c, a, "k", v1); err != nil {
			t.Fatal(err)
		}
		// b may hold the previous round's value: it hears of v1 first.
		waitFor(t, 5*time.Second, "b to read v1", func() bool { v, ok := huntTry(t, b, "k"); return ok && v == v1 })
		if err := hybrid.Set(c, a, "k", v2); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "b to hear of v2 in memory", func() bool { v, ok := peek(b, "k"); return !ok || v == v2 })
		if v, ok := huntTry(t, b, "k"); !ok || v != v2 {
			t.Fatalf("%d bytes: b reads %d bytes (found %v); want v2", n, len(v), ok)
		}
	}
	if st := a.Stats(); st.L2Errors != 0 || st.BackplaneErrors != 0 {
		t.Fatalf("a: %d L2 errors, %d backplane errors", st.L2Errors, st.BackplaneErrors)
	}
	st := b.Stats()
	if st.BackplaneGaps != 0 {
		t.Fatalf("b: %d gaps", st.BackplaneGaps)
	}
	// The entries up to 1 MiB came in the feed's rows (no notification can
	// carry them) and replaced b's copy without a read of the table.
	t.Logf("b: %d entries taken from messages", st.BackplaneValues)
	if st.BackplaneValues < 3 {
		t.Fatalf("b took %d entries from messages; want the 3 rounds' second Sets at least", st.BackplaneValues)
	}
}
