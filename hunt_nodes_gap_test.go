package strata_test

// A node whose connection to Redis (backplane included) is cut while the
// others change every kind of entry, then restored: after the gap it must
// not serve what changed (docs/backplane.md, "Reconnects and overflows:
// verify before use"); and Redis restarted empty while nodes hold copies.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

func huntNotFound(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
	return fc.NotFound()
}

var huntNotFoundFor = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.NotFoundDuration = time.Hour })

// Every kind of change made while node B's connection is cut: after the gap
// B serves none of the values it held that changed, for single-key and
// batch reads alike, and keeps the one that did not change.
func TestHuntNodesEveryChangeLostInGap(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprint("batch reads=", batch), func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			px := srv.Proxy(t)
			a := bpNode(t, srv.FastClient(t, ""))
			b := bpNode(t, srv.FastClient(t, px.Addr()))
			large := strings.Repeat("L", 16<<10)
			before := map[string]string{
				"small": "old", "large": "old" + large, "removed": "old", "expired": "old",
				"tagged": "old", "deltagged": "old", "setmany": "old", "removemany": "old", "same": "same",
			}
			tags := map[string]string{"tagged": "t", "deltagged": "dt"}
			for k, v := range before {
				var o []hybrid.Option
				if tg := tags[k]; tg != "" {
					o = append(o, hybrid.WithTags(tg))
				}
				if err := hybrid.Set(ctx, a, k, v, o...); err != nil {
					t.Fatal(err)
				}
			}
			// B holds them all, and a cached "not found".
			for k, v := range before {
				if got, _ := get(t, b, k); got != v {
					t.Fatalf("setup: B %s = %.6q", k, got)
				}
			}
			if _, err := hybrid.GetOrSet(ctx, b, "notfound", huntNotFound, huntNotFoundFor); !errors.Is(err, hybrid.ErrNotFound) {
				t.Fatalf("setup: %v", err)
			}
			heard(t, b, a)

			px.Pause()
			px.ResetAll()
			gaps := b.Stats().BackplaneGaps
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(hybrid.Set(ctx, a, "small", "new"))
			must(hybrid.Set(ctx, a, "large", "new"+large))
			must(a.Remove(ctx, "removed"))
			must(a.Expire(ctx, "expired"))
			must(a.RemoveByTag(ctx, "t"))
			must(a.RemoveByTagWith(ctx, hybrid.DeleteTagged, "dt"))
			must(hybrid.SetMany(ctx, a, map[string]string{"setmany": "new"}))
			must(a.RemoveMany(ctx, []string{"removemany"}))
			must(hybrid.Set(ctx, a, "notfound", "exists now"))
			px.Resume()
			redistest.EventuallyWithin(t, 20*time.Second, "B's gap", func() bool { return b.Stats().BackplaneGaps > gaps })

			want := map[string]string{ // "" = a miss for a fresh read
				"small": "new", "large": "new" + large, "removed": "", "expired": "", "tagged": "", "deltagged": "",
				"setmany": "new", "removemany": "", "same": "same", "notfound": "exists now",
			}
			keys := make([]string, 0, len(want))
			for k := range want {
				keys = append(keys, k)
			}
			got := map[string]string{}
			if batch {
				res, err := hybrid.TryGetMany[string](ctx, b, keys)
				must(err)
				for i, r := range res {
					if r.Err != nil {
						t.Fatalf("%s: %v", keys[i], r.Err)
					}
					got[keys[i]] = r.Value
				}
			} else {
				for _, k := range keys {
					got[k], _ = get(t, b, k)
				}
			}
			for _, k := range keys {
				if got[k] != want[k] {
					t.Errorf("after the gap B serves %s = %.9q; want %.9q", k, got[k], want[k])
				}
			}
			// The fail-safe fallbacks the changes left: expired and tagged
			// (expired by tag) still answer a failing factory; deltagged and
			// removed do not.
			for k, ok := range map[string]bool{"expired": true, "tagged": true, "deltagged": false, "removed": false, "removemany": false} {
				v, err := hybrid.GetOrSet(ctx, b, k, failing[string]())
				if ok && (err != nil || v != "old") {
					t.Errorf("B GetOrSet(%s) with a failing factory = %q, %v; want the fallback old", k, v, err)
				}
				if !ok && err == nil {
					t.Errorf("B GetOrSet(%s) with a failing factory = %q; want no fallback", k, v)
				}
			}
		})
	}
}

// The gap is reported, and B's first read after it is not served from a
// stale copy, even when the writes continue on A right across the
// reconnect: once A stops, B converges on A's last write for every key.
func TestHuntNodesWritesAcrossRepeatedResets(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	px := srv.Proxy(t)
	a := bpNode(t, srv.FastClient(t, ""))
	b := bpNode(t, srv.FastClient(t, px.Addr()))
	keys := []string{"k0", "k1", "k2", "k3"}
	last := map[string]string{}
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // B keeps reading (so it holds the keys) while A writes
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, k := range keys {
				hybrid.TryGet[string](ctx, b, k)
			}
		}
	}()
	for i := range 300 {
		k := keys[i%len(keys)]
		v := fmt.Sprint("v", i)
		if i%7 == 3 {
			v += strings.Repeat("-", 6000) // not carried by the message
		}
		if i%11 == 5 {
			if err := a.Remove(ctx, k); err != nil {
				t.Fatal(err)
			}
			last[k] = ""
		} else {
			if err := hybrid.Set(ctx, a, k, v); err != nil {
				t.Fatal(err)
			}
			last[k] = v
		}
		if i%40 == 20 {
			px.ResetAll()
		}
	}
	close(stop)
	<-readerDone
	// B reconnects by itself; then every key converges.
	redistest.EventuallyWithin(t, 20*time.Second, "B to converge on A's last writes", func() bool {
		for _, k := range keys {
			if v, _ := get(t, b, k); v != last[k] {
				return false
			}
		}
		return true
	})
	if b.Stats().BackplaneGaps == 0 {
		t.Error("B reported no gap: the resets did not cut its subscription")
	}
	// And stays there when read from memory alone.
	for _, k := range keys {
		if v, _ := get(t, b, k, l1Only); v != last[k] {
			t.Errorf("B's memory holds %s = %.6q; want %.6q", k, v, last[k])
		}
	}
}

// Redis restarted empty while both nodes hold a key: once both have
// reconnected, neither serves its old copy as fresh; the first GetOrSet
// reloads and the other node takes that result from L2.
func TestHuntNodesRedisRestartedEmpty(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := bpNode(t, srv.FastClient(t, ""))
	b := bpNode(t, srv.FastClient(t, ""))
	for _, n := range []*hybrid.Cache{a, b} {
		if v, err := hybrid.GetOrSet(ctx, n, "k", val("v1")); err != nil || v != "v1" {
			t.Fatalf("setup: %q, %v", v, err)
		}
	}
	ga, gb := a.Stats().BackplaneGaps, b.Stats().BackplaneGaps
	srv.Kill(t)
	srv.Restart(t)
	redistest.EventuallyWithin(t, 20*time.Second, "both nodes' gaps", func() bool {
		return a.Stats().BackplaneGaps > ga && b.Stats().BackplaneGaps > gb
	})
	// Wait for L2 to answer again (the breaker may have opened on the kill).
	redistest.EventuallyWithin(t, 40*time.Second, "the L2 circuit breakers to close", func() bool {
		_, _ = get(t, a, "probe")
		_, _ = get(t, b, "probe")
		return !a.Stats().L2CircuitOpen && !b.Stats().L2CircuitOpen
	})
	if v, ok := get(t, a, "k"); ok {
		t.Errorf("A serves %q as fresh: Redis lost the key", v)
	}
	if v, err := hybrid.GetOrSet(ctx, a, "k", val("reloaded")); err != nil || v != "reloaded" {
		t.Fatalf("A GetOrSet = %q, %v; want a reload", v, err)
	}
	if v, err := hybrid.GetOrSet(ctx, b, "k", val("B's own")); err != nil || v != "reloaded" {
		t.Fatalf("B GetOrSet = %q, %v; want A's reload from L2", v, err)
	}
}

// Changes made while Redis is down are replayed when it comes back empty:
// a Remove, an Expire, a RemoveByTag and a SetMany of node A reach node B,
// which held the old values all along.
func TestHuntNodesChangesQueuedAcrossEmptyRestart(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	sync := func(s *strata.CacheSettings) { s.Entry.BackgroundL2Operations = false }
	a := bpNode(t, srv.FastClient(t, ""), sync)
	b := bpNode(t, srv.FastClient(t, ""))
	for _, k := range []string{"removed", "expired", "tagged", "setmany"} {
		if err := hybrid.Set(ctx, a, k, "old", hybrid.WithTags("t-"+k)); err != nil {
			t.Fatal(err)
		}
		if v, _ := get(t, b, k); v != "old" {
			t.Fatalf("setup %s: %q", k, v)
		}
	}
	srv.Kill(t)
	if err := a.Remove(ctx, "removed"); err != nil {
		t.Fatal(err)
	}
	if err := a.Expire(ctx, "expired"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveByTag(ctx, "t-tagged"); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.SetMany(ctx, a, map[string]string{"setmany": "new"}); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	redistest.EventuallyWithin(t, 40*time.Second, "A's queue to drain", func() bool {
		st := a.Stats()
		return st.RecoveryPending == 0 && st.Recovered >= 4
	})
	redistest.EventuallyWithin(t, 20*time.Second, "B to see every change", func() bool {
		_, okR := get(t, b, "removed")
		_, okE := get(t, b, "expired")
		_, okT := get(t, b, "tagged")
		v, _ := get(t, b, "setmany")
		return !okR && !okE && !okT && v == "new"
	})
}
