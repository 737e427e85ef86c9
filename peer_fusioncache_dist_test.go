package strata_test

// Distributed scenarios of FusionCache's test suite (L1L2Tests,
// L1L2BackplaneTests, AutoRecoveryTests, with their SkipOptions and tagging
// variants) not ported in peer_fusioncache_nodes_test.go or
// peer_fusioncache_more_test.go: several nodes in one process over a real
// redis-server started by the test (internal/redistest), faults through a
// killed process or a paused proxy. Helpers are those of
// peer_fusioncache_nodes_test.go. Every wait is on an observable condition.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// L1L2Tests.CanHandleConditionalRefreshAsync across two nodes: node B, which
// never held the key, finds the expired entry in L2 and its factory gets
// that entry's value and ETag, so it can answer "not modified"; the kept
// value goes back to L2 with its ETag, and node A's later refresh sees it.
func TestFusionDistConditionalRefreshAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 300 * time.Millisecond, FailSafe: true}
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	a, b := fnode(t, ca, ca, e), fnode(t, cb, cb, e)

	var full, conditional, notModified atomic.Int64
	version := atomic.Int64{}
	version.Store(1)
	endpoint := func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
		cur := int(version.Load())
		etag := "v" + string(rune('0'+cur))
		if old, ok := fc.Stale(); ok && fc.ETag() != "" {
			conditional.Add(1)
			if fc.ETag() == etag {
				notModified.Add(1)
				if v, err := fc.NotModified(); err != nil || v != old {
					return 0, errors.New("NotModified did not keep the stale value")
				}
				return old, nil
			}
		}
		full.Add(1)
		fc.SetETag(etag)
		return cur, nil
	}
	if v := gos(t, a, "foo", endpoint); v != 1 {
		t.Fatalf("A = %d", v)
	}
	redistest.Eventually(t, "the entry to expire", func() bool {
		_, ok := mustGet[int](t, a, "foo", skipL1)
		return !ok
	})
	if v := gos(t, b, "foo", endpoint); v != 1 {
		t.Fatalf("B after expiry = %d, want 1", v)
	}
	if c, nm := conditional.Load(), notModified.Load(); c != 1 || nm != 1 {
		t.Fatalf("B's load: %d conditional requests, %d not modified; want 1, 1 (B's factory must see L2's stale entry and ETag)", c, nm)
	}
	version.Store(2)
	redistest.Eventually(t, "the refreshed entry to expire", func() bool {
		_, ok := mustGet[int](t, b, "foo", skipL1)
		return !ok
	})
	if v := gos(t, a, "foo", endpoint); v != 2 {
		t.Fatalf("A after the change = %d, want 2", v)
	}
	if f, c, nm := full.Load(), conditional.Load(), notModified.Load(); f != 2 || c != 2 || nm != 1 {
		t.Fatalf("full %d, conditional %d, not modified %d; want 2, 2, 1", f, c, nm)
	}
}

// A Set that skips the distributed tier but not the backplane
// (L1L2BackplaneTests with SkipDistributedCacheWrite): the other node's copy
// is older than the message, and L2 holds only the older value; the other
// node must not serve that older value as fresh.
func TestFusionDistSetSkippingL2IsNotUndoneByL2(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, FailSafe: true}
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	a := fnode(t, ca, ca, e, func(o *hybrid.Options) { o.DisableBackplaneValues = true })
	b := fnode(t, cb, cb, e)
	if gos(t, a, "foo", val(1)) != 1 || gos(t, b, "foo", val(9)) != 1 {
		t.Fatal("setup: not in sync")
	}
	heard(t, b, a)
	before := b.Stats().BackplaneReceived
	set(t, a, "foo", 2, opts(func(o *hybrid.EntryOptions) { o.SkipL2Write = true }))
	received(t, b, before, "B to hear A's Set")
	if v := gos(t, b, "foo", val(3)); v == 1 {
		t.Fatalf("B = 1 after A's newer Set: L2's older value was served as fresh")
	}
}

// FailSafeTests throttle across nodes: node A serves a fallback and keeps it
// fresh in its memory for the throttle window; node B's later successful load
// replaces it on A (the throttled copy is not newer than B's write).
func TestFusionDistThrottledCopyTakesNewerWrite(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 300 * time.Millisecond, FailSafe: true, FailSafeThrottleDuration: time.Minute}
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	a, b := fnode(t, ca, ca, e), fnode(t, cb, cb, e)
	if gos(t, a, "foo", val(1)) != 1 || gos(t, b, "foo", val(9)) != 1 {
		t.Fatal("setup: not in sync")
	}
	redistest.Eventually(t, "the entry to expire", func() bool {
		_, okA := mustGet[int](t, a, "foo")
		_, okB := mustGet[int](t, b, "foo")
		return !okA && !okB
	})
	if v := gos(t, a, "foo", failing[int]()); v != 1 {
		t.Fatalf("A with the source down = %d, want the fallback 1", v)
	}
	heard(t, a, b)
	before := a.Stats().BackplaneReceived
	if v := gos(t, b, "foo", val(2), hybrid.WithDuration(time.Minute)); v != 2 {
		t.Fatalf("B = %d, want 2", v)
	}
	received(t, a, before, "A to hear B's write")
	if v := gos(t, a, "foo", val(3)); v != 2 {
		t.Fatalf("A = %d after B's write, want 2", v)
	}
}

// AutoRecoveryTests with Clear(false): Redis is down when node A clears; the
// record waits in A's queue and is replayed once Redis is back; node B,
// which missed the message, does not serve what the Clear removed.
func TestFusionDistClearWhileRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, FailSafe: true}
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	a, b := fnode(t, ca, ca, e), fnode(t, cb, cb, e)
	set(t, a, "foo", 1)
	if getInt(t, b, "foo") != 1 {
		t.Fatal("setup")
	}
	srv.Kill(t)
	if err := a.Clear(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet[int](t, a, "foo", staleToo); ok {
		t.Fatalf("A after its own Clear(false) = %d", v)
	}
	srv.Restart(t)
	redistest.Eventually(t, "A's queue to drain", func() bool {
		st := a.Stats()
		return st.RecoveryPending == 0 && st.Recovered > 0
	})
	redistest.Eventually(t, "B to drop foo", func() bool {
		_, ok := mustGet[int](t, b, "foo", staleToo)
		return !ok
	})
}

// L1L2Tests.CanUseMultiNodeCachesWithSizeLimitAsync: nodes with a small
// memory tier and sized entries share them through L2.
func TestFusionDistSizeLimit(t *testing.T) {
	srv := redistest.Start(t)
	small := func(o *hybrid.Options) { o.L1MaxEntries = 10 }
	c1 := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{Size: 1}, small)
	c2 := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{}, small)
	c3 := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{})
	sized := opts(func(o *hybrid.EntryOptions) { o.Size = 1 })
	set(t, c1, "k1", 1, sized)
	if v, ok := mustGet[int](t, c2, "k1"); !ok || v != 1 {
		t.Fatalf("c2 k1 = %d, %v", v, ok)
	}
	set(t, c3, "k2", 2)
	if v, ok := mustGet[int](t, c1, "k2"); !ok || v != 2 {
		t.Fatalf("c1 k2 = %d, %v", v, ok)
	}
	if v, ok := mustGet[int](t, c2, "k2", sized); !ok || v != 2 {
		t.Fatalf("c2 k2 = %d, %v", v, ok)
	}
}

// L1L2Tests.CanSkipMemoryCacheAsync with a backplane: node 1 writes L2
// only; node 2 hears it and takes the new value, node 1 keeps its memory
// copy as it was (SkipL1Write leaves memory alone, docs/getorset.md).
func TestFusionDistSkipL1WithBackplane(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute}
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	n1, n2 := fnode(t, ca, ca, e), fnode(t, cb, cb, e)
	if gos(t, n1, "foo", val(10)) != 10 || gos(t, n2, "foo", val(20)) != 10 {
		t.Fatal("setup")
	}
	heard(t, n2, n1)
	before := n2.Stats().BackplaneReceived
	set(t, n1, "foo", 30, skipL1)
	received(t, n2, before, "node 2 to hear the Set")
	if v := gos(t, n2, "foo", val(50)); v != 30 {
		t.Fatalf("node 2 = %d, want 30", v)
	}
	if v := gos(t, n1, "foo", val(40), skipL1); v != 30 {
		t.Fatalf("node 1 skipping memory = %d, want 30", v)
	}
}

// cutOff returns node A, whose distributed tier and backplane go through
// proxies that the returned func pauses (every connection reset), and node
// B on direct connections; resume reconnects A.
func cutOffPair(t *testing.T, e hybrid.EntryOptions) (a, b *hybrid.Cache, cut, resume func()) {
	t.Helper()
	srv := redistest.Start(t)
	pl, pb := srv.Proxy(t), srv.Proxy(t)
	a = fnode(t, srv.FastClient(t, pl.Addr()), srv.FastClient(t, pb.Addr()), e)
	b = fnode(t, srv.FastClient(t, ""), srv.FastClient(t, ""), e)
	cut = func() {
		pl.Pause()
		pl.ResetAll()
		pb.Pause()
		pb.ResetAll()
	}
	resume = func() {
		pl.Resume()
		pb.Resume()
	}
	return a, b, cut, resume
}

// drained waits until c's auto-recovery queue has replayed everything.
func drained(t *testing.T, c *hybrid.Cache, what string) {
	t.Helper()
	redistest.Eventually(t, what, func() bool {
		st := c.Stats()
		return st.RecoveryPending == 0 && st.Recovered > 0
	})
}

// AutoRecoveryTests, a queued change that loses: node A changes a key while
// cut off (a Remove, an Expire, a Set); node B writes the key afterwards.
// Once A is back, its replayed change loses to B's newer value (docs/l2.md,
// "Auto-recovery"), and both nodes serve B's value: A must not go on missing
// (Remove, Expire) or serve its own older one (Set; with its data kept in
// Redis, unlike TestFusionNodesAutoRecoveryThreeNodesNewestWins).
func TestFusionDistReplayedChangeLosesOnBothNodes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failSafe bool
		change   func(t *testing.T, a *hybrid.Cache)
	}{
		{"remove", true, func(t *testing.T, a *hybrid.Cache) {
			if err := a.Remove(context.Background(), "foo"); err != nil {
				t.Fatal(err)
			}
		}},
		{"expire", true, func(t *testing.T, a *hybrid.Cache) {
			if err := a.Expire(context.Background(), "foo"); err != nil {
				t.Fatal(err)
			}
		}},
		{"set", false, func(t *testing.T, a *hybrid.Cache) { set(t, a, "foo", 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := hybrid.EntryOptions{Duration: 10 * time.Minute, FailSafe: tc.failSafe, L2HardTimeout: 300 * time.Millisecond}
			a, b, cut, resume := cutOffPair(t, e)
			set(t, a, "foo", 1)
			if getInt(t, b, "foo") != 1 {
				t.Fatal("setup")
			}
			cut()
			tc.change(t, a)
			set(t, b, "foo", 3)
			resume()
			drained(t, a, "A's queued "+tc.name+" to be replayed")
			redistest.Eventually(t, "A to serve B's newer 3", func() bool {
				v, ok := mustGet[int](t, a, "foo")
				return ok && v == 3
			})
			if v, ok := mustGet[int](t, b, "foo"); !ok || v != 3 {
				t.Fatalf("B = %d, %v; want its own 3, fresh", v, ok)
			}
		})
	}
}

// AutoRecoveryTests with tags, both orders: a RemoveByTag made by node A
// while cut off applies, once replayed, to a tagged entry that node B wrote
// before it, and not to one B wrote after it; on both nodes.
func TestFusionDistReplayedRemoveByTagOrders(t *testing.T) {
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, L2HardTimeout: 300 * time.Millisecond}
	a, b, cut, resume := cutOffPair(t, e)
	set(t, a, "seen", 1, hybrid.WithTags("x"))
	if getInt(t, b, "seen") != 1 {
		t.Fatal("setup")
	}
	cut()
	set(t, b, "before", 2, hybrid.WithTags("x"))
	if err := a.RemoveByTag(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	set(t, b, "after", 3, hybrid.WithTags("x"))
	resume()
	drained(t, a, "A's queued RemoveByTag to be replayed")
	for _, n := range []struct {
		name string
		c    *hybrid.Cache
	}{{"B", b}, {"A", a}} {
		redistest.Eventually(t, n.name+" to honour the replayed RemoveByTag", func() bool {
			return getInt(t, n.c, "seen") == 0 && getInt(t, n.c, "before") == 0
		})
		if v := getInt(t, n.c, "after"); v != 3 {
			t.Fatalf("%s: after = %d, want 3 (written after the RemoveByTag)", n.name, v)
		}
	}
}

// prodNode is one process's provider with the production defaults
// (BackgroundL2Operations on: writes and announcements run after the call
// returns) and a cache "app" on its own client.
func prodNode(t *testing.T, srv *redistest.Server) (*strata.Provider, *hybrid.Cache) {
	t.Helper()
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{Client: srv.FastClient(t, "")}, Logger: quiet})
	c, err := p.Register("app", func(s *strata.CacheSettings) { s.WaitForInitialBackplaneSubscribe = 10 * time.Second })
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// L1L2BackplaneTests with AllowBackgroundDistributedCacheOperations and
// AllowBackgroundBackplaneOperations (the production defaults): a node that
// changes keys and shuts down at once (Provider.Close right after the calls
// returned) still reaches Redis and the other nodes; Close waits for the
// background writes and their announcements (docs/l2.md).
func TestFusionDistBackgroundChangesThenClose(t *testing.T) {
	srv := redistest.Start(t)
	pa, a := prodNode(t, srv)
	_, b := prodNode(t, srv)
	ctx := context.Background()
	for _, k := range []string{"set", "removed", "expired", "tagged", "kept"} {
		if err := hybrid.Set(ctx, a, k, "old", hybrid.WithTags("t-"+k)); err != nil {
			t.Fatal(err)
		}
		redistest.Eventually(t, "B to hold "+k, func() bool { v, _ := get(t, b, k); return v == "old" })
	}
	if err := hybrid.Set(ctx, a, "set", "new"); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(ctx, "removed"); err != nil {
		t.Fatal(err)
	}
	if err := a.Expire(ctx, "expired"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveByTag(ctx, "t-tagged"); err != nil {
		t.Fatal(err)
	}
	if err := pa.Close(); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "B to see every change of the closed node", func() bool {
		s, _ := get(t, b, "set")
		_, r := get(t, b, "removed")
		_, e := get(t, b, "expired")
		_, g := get(t, b, "tagged")
		return s == "new" && !r && !e && !g
	})
	if v, _ := get(t, b, "kept"); v != "old" {
		t.Fatalf("kept = %q", v)
	}
	// A node started now reads the same from Redis.
	_, c := prodNode(t, srv)
	s, _ := get(t, c, "set")
	_, r := get(t, c, "removed")
	_, e := get(t, c, "expired")
	_, g := get(t, c, "tagged")
	if s != "new" || r || e || g {
		t.Fatalf("a new node reads set=%q removed=%v expired=%v tagged=%v; want new, misses", s, r, e, g)
	}
}

// L1L2Tests.MemoryCacheDurationIsRespectedAsync on a node that takes its
// copy from a backplane message carrying the entry: L1Duration bounds how
// long it trusts that copy, as one read from Redis, so that a write it is
// not told about (a writer that skips the backplane) is picked up.
func TestFusionDistL1DurationOfCarriedEntry(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute}
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	a := fnode(t, ca, ca, e)
	b := fnode(t, cb, cb, hybrid.EntryOptions{Duration: 10 * time.Minute, L1Duration: 300 * time.Millisecond})
	set(t, a, "foo", 1)
	if getInt(t, b, "foo") != 1 {
		t.Fatal("setup")
	}
	heard(t, b, a) // a late first message would be taken for the second's below
	before := b.Stats().BackplaneReceived
	values := b.Stats().BackplaneValues
	set(t, a, "foo", 2)
	received(t, b, before, "B to hear A's Set")
	if b.Stats().BackplaneValues == values {
		t.Fatal("A's Set did not carry its entry")
	}
	if v := getInt(t, b, "foo", l1Only); v != 2 {
		t.Fatalf("B = %d, want 2 from the message", v)
	}
	set(t, a, "foo", 3, opts(func(o *hybrid.EntryOptions) { o.SkipBackplane = true }))
	redistest.Eventually(t, "B to pick up the unannounced 3 after its L1Duration", func() bool { return getInt(t, b, "foo") == 3 })
}

// FailSafeTests.ThrottleDurationWorksCorrectly on a node whose backplane
// reconnects during the outage of the source: the fallback it serves stays
// fresh in memory for the throttle window (docs/failsafe.md), a gap or not.
// Verification after the gap finds Redis still holding the same (expired)
// entry, so memory's throttled copy is still the newest and answers; it used
// to be dropped for L2's expired entry, and the failing source was called
// again by every key's next read after a reconnect.
func TestFusionDistThrottleSurvivesBackplaneGap(t *testing.T) {
	srv := redistest.Start(t)
	pb := srv.Proxy(t)
	e := hybrid.EntryOptions{Duration: 300 * time.Millisecond, FailSafe: true, FailSafeThrottleDuration: time.Minute}
	a := fnode(t, srv.FastClient(t, ""), srv.FastClient(t, pb.Addr()), e)
	gos(t, a, "foo", val(1))
	redistest.Eventually(t, "the entry to expire", func() bool {
		_, ok := mustGet[int](t, a, "foo")
		return !ok
	})
	var calls atomic.Int64
	down := func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
		calls.Add(1)
		return 0, errDB
	}
	if v := gos(t, a, "foo", down); v != 1 {
		t.Fatalf("fallback = %d, want 1", v)
	}
	gaps := a.Stats().BackplaneGaps
	pb.ResetAll()
	redistest.Eventually(t, "the backplane to reconnect", func() bool { return a.Stats().BackplaneGaps > gaps })
	for range 2 {
		if v := gos(t, a, "foo", down); v != 1 {
			t.Fatalf("after the gap = %d, want the throttled 1", v)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the failing source was called %d times within the throttle window, want 1", n)
	}
}
