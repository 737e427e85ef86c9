package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// Three nodes doing Set, Remove, Expire, GetOrSet loads, SetMany and
// RemoveMany on a few keys at once; once they stop, every node converges
// on what the table holds (a node started afterwards reads it).
func TestHuntPgMixedOpsConverge(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	nodes := huntNodes(t, cfg, "mix", 3)
	keys := []string{"a", "b", "c", "d", "e", "f"}
	var seq atomic.Int64
	uniq := func(who string) string { return fmt.Sprintf("%s-%d", who, seq.Add(1)) }
	c := context.Background()
	var wg sync.WaitGroup
	stop := time.Now().Add(2 * time.Second)
	for ni, n := range nodes {
		for g := range 3 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(ni), uint64(g)))
				for time.Now().Before(stop) {
					k := keys[r.IntN(len(keys))]
					var err error
					switch op := r.IntN(7); op {
					case 0, 1:
						err = hybrid.Set(c, n, k, uniq(fmt.Sprint("set-n", ni)))
					case 2:
						err = n.Remove(c, k)
					case 3:
						err = n.Expire(c, k)
					case 4:
						_, err = hybrid.GetOrSet(c, n, k, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
							return uniq(fmt.Sprint("load-n", ni)), nil
						})
					case 5:
						err = hybrid.SetMany(c, n, map[string]string{k: uniq("many"), keys[(r.IntN(len(keys)))]: uniq("many")})
					case 6:
						err = n.RemoveMany(c, []string{k, keys[r.IntN(len(keys))]})
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	judge := pgNode(t, cfg, "mix")
	for _, k := range keys {
		want, wantOK := huntTry(t, judge, k)
		for i, n := range nodes {
			waitFor(t, 5*time.Second, fmt.Sprintf("node %d to agree with the table on %q (%q, found %v)", i, k, want, wantOK), func() bool {
				v, ok := huntTry(t, n, k)
				return ok == wantOK && v == want
			})
		}
	}
	for i, n := range nodes {
		if st := n.Stats(); st.L2Errors != 0 || st.BackplaneGaps != 0 {
			t.Errorf("node %d: %d L2 errors, %d gaps", i, st.L2Errors, st.BackplaneGaps)
		}
	}
}
