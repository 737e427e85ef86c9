package etcd_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/tcpproxy"
)

// Three nodes (providers) mixing writes and loads on shared keys while the
// third node's connections are cut for a second in the middle: once they
// stop and every recovery queue has drained, every node agrees with etcd,
// and the cut was no gap.
func TestHuntEtcdMixedOpsWithACutConverge(t *testing.T) {
	m := etcdtest.Start(t)
	proxy, err := tcpproxy.New(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	direct := etcd.Config{Endpoints: []string{m.Endpoint()}}
	cut := etcd.Config{Endpoints: []string{"http://" + proxy.Addr()}}
	var nodes []*hybrid.Cache
	for _, cfg := range []etcd.Config{direct, direct, cut} {
		nodes = append(nodes, register(t, newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)}), "mixcut"))
	}
	c := ctx(t)
	for _, n := range nodes {
		waitFor(t, 10*time.Second, "Ping", func() bool { return n.Ping(c) == nil })
	}
	keys := []string{"a", "b", "c", "d", "e", "f"}
	var seq atomic.Int64
	uniq := func(who string) string { return fmt.Sprintf("%s-%d", who, seq.Add(1)) }
	bg := context.Background()
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for ni, n := range nodes {
		for g := range 3 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(ni), uint64(g)))
				for time.Now().Before(stop) {
					k := keys[r.IntN(len(keys))]
					var err error
					switch r.IntN(6) {
					case 0, 1:
						err = hybrid.Set(bg, n, k, uniq(fmt.Sprint("set-n", ni)))
					case 2:
						err = n.Remove(bg, k)
					case 3:
						err = n.Expire(bg, k)
					case 4:
						_, err = hybrid.GetOrSet(bg, n, k, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
							return uniq(fmt.Sprint("load-n", ni)), nil
						})
					case 5:
						err = hybrid.SetMany(bg, n, map[string]string{k: uniq("many"), keys[r.IntN(len(keys))]: uniq("many")})
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	// Cut once the nodes are well into their work, for as long as the
	// others make 200 more changes.
	waitFor(t, 10*time.Second, "200 operations before the cut", func() bool { return seq.Load() >= 200 })
	proxy.Pause()
	proxy.ResetAll()
	during := seq.Load()
	waitFor(t, 10*time.Second, "200 operations during the cut", func() bool { return seq.Load() >= during+200 || time.Now().After(stop) })
	proxy.Resume()
	wg.Wait()
	for i, n := range nodes {
		waitFor(t, 30*time.Second, fmt.Sprintf("node %d's recovery queue to drain", i), func() bool { return n.Stats().RecoveryPending == 0 })
	}
	judge := register(t, newProvider(t, strata.Settings{Tier: etcd.Settings(direct)}), "mixcut")
	for _, k := range keys {
		want, wantOK, err := hybrid.TryGet[string](c, judge, k)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range nodes {
			waitFor(t, 5*time.Second, fmt.Sprintf("node %d to agree with etcd on %q (%q, found %v)", i, k, want, wantOK), func() bool {
				v, ok, err := hybrid.TryGet[string](c, n, k)
				return err == nil && ok == wantOK && v == want
			})
		}
	}
	if g := nodes[2].Stats().BackplaneGaps; g != 0 {
		t.Errorf("the cut node reported %d gaps; a cut without compaction is none", g)
	}
}
