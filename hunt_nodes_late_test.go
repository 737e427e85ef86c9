package strata_test

// Nodes that join late, nodes that start while Redis is unreachable for
// them, and a node whose receive queue overflows (docs/backplane.md,
// "Start-up" and "Reconnects and overflows"; docs/tags.md and
// docs/clear.md, "Nodes that start later").

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// A node started after every kind of change serves each key as the nodes
// that saw the changes do: fresh, stale (a fallback) or gone.
func TestHuntNodesLateNodeSeesEveryChange(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := bpNode(t, srv.FastClient(t, ""))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	large := strings.Repeat("L", 10<<10)
	must(hybrid.Set(ctx, a, "cleared", "c"))
	must(a.Clear(ctx, true))
	must(hybrid.Set(ctx, a, "fresh", "f"+large))
	must(hybrid.Set(ctx, a, "expired", "e"))
	must(a.Expire(ctx, "expired"))
	must(hybrid.Set(ctx, a, "removed", "r"))
	must(a.Remove(ctx, "removed"))
	must(hybrid.Set(ctx, a, "tagged", "t", hybrid.WithTags("t")))
	must(a.RemoveByTag(ctx, "t"))
	must(hybrid.Set(ctx, a, "deltagged", "d", hybrid.WithTags("d", "other")))
	must(a.RemoveByTagWith(ctx, hybrid.DeleteTagged, "d"))
	must(hybrid.SetMany(ctx, a, map[string]string{"many1": "m1", "many2": "m2"}))
	must(a.RemoveMany(ctx, []string{"many2"}))
	_, err := hybrid.GetOrSet(ctx, a, "notfound", huntNotFound, huntNotFoundFor)
	if !errors.Is(err, hybrid.ErrNotFound) {
		t.Fatalf("setup: %v", err)
	}
	type want struct {
		fresh, stale string // "" = a miss
	}
	wants := map[string]want{
		"cleared": {"", "c"}, "fresh": {"f" + large, "f" + large}, "expired": {"", "e"}, "removed": {"", ""},
		"tagged": {"", "t"}, "deltagged": {"", ""}, "many1": {"m1", "m1"}, "many2": {"", ""}, "notfound": {"", ""},
	}
	late := bpNode(t, srv.FastClient(t, ""))
	for _, n := range []struct {
		name string
		c    *hybrid.Cache
	}{{"A", a}, {"late", late}} {
		for k, w := range wants {
			if v, _ := get(t, n.c, k); v != w.fresh {
				t.Errorf("node %s %s fresh read = %.6q; want %.6q", n.name, k, v, w.fresh)
			}
			if v, _ := get(t, n.c, k, allowStale); v != w.stale {
				t.Errorf("node %s %s stale read = %.6q; want %.6q", n.name, k, v, w.stale)
			}
		}
		if _, err := hybrid.GetOrSet(ctx, n.c, "notfound", failing[string](), huntNotFoundFor); !errors.Is(err, hybrid.ErrNotFound) {
			t.Errorf("node %s GetOrSet(notfound) = %v; want the cached ErrNotFound", n.name, err)
		}
	}
}

// A node started while Redis is unreachable for it writes a key (queued);
// another node writes the same key later. Once the first node reaches
// Redis, both serve the later write, and a later change by the first node
// reaches the other.
func TestHuntNodesNodeStartedWhileRedisUnreachable(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	px := srv.Proxy(t)
	a := bpNode(t, srv.FastClient(t, ""))
	px.Pause()
	b := bpNode(t, srv.FastClient(t, px.Addr()), func(s *strata.CacheSettings) {
		s.WaitForInitialBackplaneSubscribe = 0
		s.Entry.L2HardTimeout = 300 * time.Millisecond
	})
	if err := hybrid.Set(ctx, b, "k", "B's early write"); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, b, "k"); v != "B's early write" {
		t.Fatalf("B reads its own write as %q", v)
	}
	if err := hybrid.Set(ctx, a, "k", "A's later write"); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, a, "only-a", "a"); err != nil {
		t.Fatal(err)
	}
	px.Resume()
	redistest.EventuallyWithin(t, 20*time.Second, "B to serve A's later write", func() bool {
		v, _ := get(t, b, "k")
		return v == "A's later write"
	})
	if v, _ := get(t, a, "k"); v != "A's later write" {
		t.Fatalf("A serves %q; B's older queued write won", v)
	}
	if v, _ := get(t, b, "only-a"); v != "a" {
		t.Fatalf("B reads only-a = %q", v)
	}
	redistest.EventuallyWithin(t, 20*time.Second, "B's subscription", b.BackplaneSubscribed)
	redistest.EventuallyWithin(t, 20*time.Second, "B's queue to drain", func() bool { return b.Stats().RecoveryPending == 0 })
	if err := hybrid.Set(ctx, b, "k", "B's last"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "A to hear B's last write", func() bool {
		v, _ := get(t, a, "k", l1Only)
		return v == "B's last"
	})
}

// A receiver whose queue overflows under a burst of messages reports a gap
// and serves none of the values the dropped messages changed.
func TestHuntNodesQueueOverflowVerifies(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	ca := srv.FastClient(t, "")
	a := fnode(t, ca, ca, hybrid.EntryOptions{Duration: time.Hour, FailSafe: true})
	cb := srv.FastClient(t, "")
	bp, err := backplane.NewRedis(cb, backplane.RedisOptions{Channel: backplane.ChannelName("", "app:"), QueueSize: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b := newCache(t, hybrid.Options{Name: "app", L2: hybrid.NewRedisL2(cb), Backplane: bp, Logger: quiet,
		WaitForInitialBackplaneSubscribe: 10 * time.Second, Entry: hybrid.EntryOptions{Duration: time.Hour, FailSafe: true}})
	keys := huntKeys("q", 200)
	for round := 0; ; round++ {
		if round == 20 {
			t.Fatalf("no overflow in 20 bursts: %+v", bp.Stats())
		}
		old, next := fmt.Sprint("r", round), fmt.Sprint("r", round+1)
		m := map[string]string{}
		for _, k := range keys {
			m[k] = old
		}
		if err := hybrid.SetMany(ctx, a, m); err != nil {
			t.Fatal(err)
		}
		redistest.Eventually(t, "B to hold the round's values", func() bool {
			res, err := hybrid.TryGetMany[string](ctx, b, keys)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Value != old {
					return false
				}
			}
			return true
		})
		gaps := b.Stats().BackplaneGaps
		for _, k := range keys {
			m[k] = next
		}
		if err := hybrid.SetMany(ctx, a, m); err != nil { // one pipeline: a burst of 200 messages
			t.Fatal(err)
		}
		redistest.Eventually(t, "the burst to be received or dropped", func() bool {
			st := bp.Stats()
			return st.Received+st.Dropped >= a.Stats().BackplanePublished
		})
		if b.Stats().BackplaneGaps == gaps {
			continue // everything was delivered
		}
		res, err := hybrid.TryGetMany[string](ctx, b, keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Value != next {
				t.Fatalf("after an overflow B serves %s = %q; want %q (dropped: %d)", keys[i], r.Value, next, bp.Stats().Dropped)
			}
		}
		return
	}
}

// A node started after a Clear(false), a DeleteTagged and a RemoveByTag
// reads the keys in a batch: the batch path honours the records as the
// single-key path does (no fresh value, and no fallback where the
// invalidation removed it).
func TestHuntNodesLateNodeBatchHonoursInvalidations(t *testing.T) {
	for _, kind := range []string{"Clear(false)", "Clear(true)", "DeleteTagged", "RemoveByTag"} {
		t.Run(kind, func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			a := bpNode(t, srv.FastClient(t, ""))
			keys := huntKeys("b", 5)
			m := map[string]string{}
			for _, k := range keys {
				m[k] = "before"
			}
			if err := hybrid.SetMany(ctx, a, m, hybrid.WithTags("grp")); err != nil {
				t.Fatal(err)
			}
			var err error
			stale := false // may the late node serve "before" as a fallback?
			switch kind {
			case "Clear(false)":
				err = a.Clear(ctx, false)
			case "Clear(true)":
				err, stale = a.Clear(ctx, true), true
			case "DeleteTagged":
				err = a.RemoveByTagWith(ctx, hybrid.DeleteTagged, "grp")
			case "RemoveByTag":
				err, stale = a.RemoveByTag(ctx, "grp"), true
			}
			if err != nil {
				t.Fatal(err)
			}
			late := bpNode(t, srv.FastClient(t, ""))
			res, err := hybrid.TryGetMany[string](ctx, late, keys)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Found {
					t.Errorf("late TryGetMany %s = %q; invalidated by %s", keys[i], r.Value, kind)
				}
			}
			res, err = hybrid.GetOrSetMany(ctx, late, keys, func(context.Context, *hybrid.BatchContext[string]) (map[string]string, error) {
				return nil, errDB
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if stale && (r.Err != nil || r.Value != "before") {
					t.Errorf("late GetOrSetMany %s with a failing factory = %q, %v; want the fallback", keys[i], r.Value, r.Err)
				}
				if !stale && r.Err == nil {
					t.Errorf("late GetOrSetMany %s with a failing factory = %q; %s left no fallback", keys[i], r.Value, kind)
				}
			}
		})
	}
}
