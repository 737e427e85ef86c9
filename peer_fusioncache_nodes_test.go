package strata_test

// Scenarios of FusionCache's own multi-node test suite (memory + distributed
// cache, backplane, auto-recovery), ported to Strata's engine over real
// redis-server processes started by the tests. Each test names the
// FusionCache test it ports (ZiggyCreatures/FusionCache, tests/
// ZiggyCreatures.FusionCache.Tests/<file>.<method>). FusionCache's tests
// sleep for "MultiNodeOperationsDelay"; here every wait is on an observable
// condition. Where Strata documents a deliberate difference, the test
// asserts Strata's behaviour and cites the doc.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// fnode is one process's instance of a cache (named "app" unless a mod
// renames it): its distributed tier on l2c (nil: memory-only) and its
// backplane on bpc (nil: none), on the cache's own channel as the provider
// wires it. The circuit breaker is short (200ms) so that recovery tests do
// not wait 30s.
func fnode(t *testing.T, l2c, bpc redis.UniversalClient, entry hybrid.EntryOptions, mods ...func(*hybrid.Options)) *hybrid.Cache {
	t.Helper()
	o := hybrid.Options{Name: "app", Entry: entry, Logger: quiet, L2CircuitBreakerDuration: 200 * time.Millisecond}
	if l2c != nil {
		o.L2 = hybrid.NewRedisL2(l2c)
	}
	for _, m := range mods {
		m(&o)
	}
	if bpc != nil {
		prefix := o.KeyPrefix
		if prefix == "" {
			prefix = o.Name + ":"
		}
		bp, err := backplane.NewRedis(bpc, backplane.RedisOptions{Channel: backplane.ChannelName("", prefix), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		o.Backplane = bp
		o.WaitForInitialBackplaneSubscribe = 10 * time.Second
	}
	return newCache(t, o)
}

func named(name string) func(*hybrid.Options) { return func(o *hybrid.Options) { o.Name = name } }

// val is a factory that returns v.
func val[T any](v T) hybrid.Factory[T] {
	return func(context.Context, *hybrid.FactoryContext[T]) (T, error) { return v, nil }
}

// failing is a factory that fails.
func failing[T any]() hybrid.Factory[T] {
	return func(context.Context, *hybrid.FactoryContext[T]) (T, error) {
		var zero T
		return zero, errDB
	}
}

func opts(f func(o *hybrid.EntryOptions)) hybrid.Option { return hybrid.WithOptions(f) }

var (
	skipL2   = opts(func(o *hybrid.EntryOptions) { o.SkipL2Read, o.SkipL2Write = true, true })
	skipL1   = opts(func(o *hybrid.EntryOptions) { o.SkipL1Read, o.SkipL1Write = true, true })
	bpOn     = opts(func(o *hybrid.EntryOptions) { o.SkipBackplane = false })
	staleToo = opts(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })
)

// gos is GetOrSet that fails the test on an error.
func gos[T any](t *testing.T, c *hybrid.Cache, key string, f hybrid.Factory[T], o ...hybrid.Option) T {
	t.Helper()
	v, err := hybrid.GetOrSet(context.Background(), c, key, f, o...)
	if err != nil {
		t.Fatalf("GetOrSet(%q): %v", key, err)
	}
	return v
}

// set is Set that fails the test on an error.
func set[T any](t *testing.T, c *hybrid.Cache, key string, v T, o ...hybrid.Option) {
	t.Helper()
	if err := hybrid.Set(context.Background(), c, key, v, o...); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

// getInt is FusionCache's GetOrDefault<int>: the value, or 0 on a miss.
func getInt(t *testing.T, c *hybrid.Cache, key string, o ...hybrid.Option) int {
	t.Helper()
	v, _ := mustGet[int](t, c, key, o...)
	return v
}

// received waits until c has applied more than n messages of other nodes.
func received(t *testing.T, c *hybrid.Cache, n uint64, what string) {
	t.Helper()
	redistest.Eventually(t, what, func() bool { return c.Stats().BackplaneReceived > n })
}

// heard waits until to has applied every backplane message that the nodes
// from have published so far, so that a late message of an earlier write
// is not taken for the next one's by received.
func heard(t *testing.T, to *hybrid.Cache, from ...*hybrid.Cache) {
	t.Helper()
	redistest.Eventually(t, "the messages published so far to arrive", func() bool {
		var sent uint64
		for _, f := range from {
			sent += f.Stats().BackplanePublished
		}
		return to.Stats().BackplaneReceived >= sent
	})
}

func receivedAll(nodes ...*hybrid.Cache) []uint64 {
	out := make([]uint64, len(nodes))
	for i, n := range nodes {
		out[i] = n.Stats().BackplaneReceived
	}
	return out
}

// L1L2BackplaneTests.BackplaneWorksAsync: without a backplane a Set on
// node 1 leaves the others' memory copies alone; with one, Set and Remove
// reach every node.
func TestFusionNodesBackplaneWorks(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, FailSafe: true}
	var plain, bp [3]*hybrid.Cache
	for i := range plain {
		plain[i] = fnode(t, srv.FastClient(t, ""), nil, e, named("plain"))
		c := srv.FastClient(t, "")
		bp[i] = fnode(t, c, c, e, named("bp"))
	}
	for i := range 3 {
		if v := gos(t, plain[i], "k", val(i+1)); v != 1 {
			t.Fatalf("plain node %d: GetOrSet = %d, want 1 (from L2)", i+1, v)
		}
	}
	set(t, plain[0], "k", 21)
	for i, want := range []int{21, 1, 1} {
		if v := getInt(t, plain[i], "k"); v != want {
			t.Fatalf("no backplane, node %d = %d, want %d", i+1, v, want)
		}
	}

	for i := range 3 {
		if v := gos(t, bp[i], "k", val(i+1)); v != 1 {
			t.Fatalf("node %d: GetOrSet = %d, want 1", i+1, v)
		}
	}
	set(t, bp[0], "k", 42)
	for i := range 3 {
		redistest.Eventually(t, fmt.Sprint("node ", i+1, " to serve 42"), func() bool { return getInt(t, bp[i], "k", l1Only) == 42 })
	}
	if err := bp[0].Remove(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		redistest.Eventually(t, fmt.Sprint("node ", i+1, " to miss after Remove"), func() bool {
			_, ok := mustGet[int](t, bp[i], "k")
			return !ok
		})
	}
}

// L1L2BackplaneTests.CanHandleExpireOnMultiNodesAsync. Deliberate
// difference: FusionCache's Expire removes the distributed entry, so node C
// (which never held the key) finds nothing even with AllowStaleOnRead.
// Strata keeps it there as stale ("An Expire with fail-safe rewrites the
// stored entry as stale with the expiry's timestamp", docs/l2.md, "Removals
// are records, not deletes"), so C can serve it as a stale value too.
func TestFusionNodesExpireOnMultiNodes(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, FailSafe: true}
	var n [3]*hybrid.Cache
	for i := range n {
		c := srv.FastClient(t, "")
		n[i] = fnode(t, c, c, e)
	}
	a, b := n[0], n[1]
	set(t, a, "foo", 42)
	if v := getInt(t, a, "foo"); v != 42 {
		t.Fatalf("A = %d", v)
	}
	if v := getInt(t, b, "foo"); v != 42 {
		t.Fatalf("B = %d", v)
	}
	before := b.Stats().BackplaneReceived
	if err := a.Expire(context.Background(), "foo"); err != nil {
		t.Fatal(err)
	}
	received(t, b, before, "B to hear the Expire")
	for i, node := range n {
		if _, ok := mustGet[int](t, node, "foo"); ok {
			t.Fatalf("node %d: fresh read after Expire found a value", i+1)
		}
	}
	for i, node := range n {
		if v, ok := mustGet[int](t, node, "foo", staleToo); !ok || v != 42 {
			t.Fatalf("node %d: AllowStaleOnRead after Expire = %d, %v; want the stale 42", i+1, v, ok)
		}
	}
}

// L1L2BackplaneTests.BackgroundFactoryCompleteNotifyOtherNodesAsync, first
// half: a factory that outlived the soft timeout completes in the
// background, and its result reaches the other node.
func TestFusionNodesBackgroundFactoryNotifiesOtherNodes(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Minute, FailSafe: true, FactorySoftTimeout: 50 * time.Millisecond}
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	a, b := fnode(t, ca, ca, e), fnode(t, cb, cb, e)
	short := hybrid.WithDuration(300 * time.Millisecond)
	if v := gos(t, a, "foo", val(10), short); v != 10 {
		t.Fatalf("A = %d", v)
	}
	if v := gos(t, b, "foo", val(20), short); v != 10 {
		t.Fatalf("B = %d, want 10 from L2", v)
	}
	redistest.Eventually(t, "the entries to expire", func() bool {
		_, okA := mustGet[int](t, a, "foo")
		_, okB := mustGet[int](t, b, "foo")
		return !okA && !okB
	})
	release := make(chan struct{})
	slow := func(ctx context.Context, _ *hybrid.FactoryContext[int]) (int, error) {
		<-release
		return 30, nil
	}
	if v := gos(t, a, "foo", slow, hybrid.WithDuration(time.Minute)); v != 10 {
		t.Fatalf("A after the soft timeout = %d, want the stale 10", v)
	}
	close(release)
	redistest.Eventually(t, "B's memory copy to become the background result", func() bool {
		return getInt(t, b, "foo", l1Only) == 30
	})
	if v := getInt(t, a, "foo"); v != 30 {
		t.Fatalf("A = %d, want 30", v)
	}
}

// L1L2BackplaneTests.BackgroundFactoryCompleteNotifyOtherNodesAsync, as
// written. Deliberate difference: FusionCache ends with the background
// factory's 30 on both nodes, although node B wrote 40 after that factory
// started. In Strata a factory result is timestamped when the factory
// started and newest wins (SPEC.md "Timestamps: newest wins"; docs/
// timeouts.md "its value is stored (timestamp = when it started; a newer
// Set meanwhile wins)"), so both nodes keep B's 40.
func TestFusionNodesBackgroundFactoryLosesToNewerWrite(t *testing.T) {
	srv := redistest.Start(t)
	var factoryDone atomic.Int64
	ev := &hybrid.Events{FactoryCall: func(e hybrid.FactoryCallEvent) { factoryDone.Add(1) }}
	e := hybrid.EntryOptions{Duration: time.Minute, FailSafe: true, FactorySoftTimeout: 50 * time.Millisecond}
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	a := fnode(t, ca, ca, e, func(o *hybrid.Options) { o.Events = ev })
	b := fnode(t, cb, cb, e)
	short := hybrid.WithDuration(300 * time.Millisecond)
	gos(t, a, "foo", val(10), short)
	if v := gos(t, b, "foo", val(20), short); v != 10 {
		t.Fatalf("B = %d, want 10 from L2", v)
	}
	redistest.Eventually(t, "the entries to expire", func() bool {
		_, okA := mustGet[int](t, a, "foo")
		_, okB := mustGet[int](t, b, "foo")
		return !okA && !okB
	})
	release := make(chan struct{})
	slow := func(ctx context.Context, _ *hybrid.FactoryContext[int]) (int, error) {
		<-release
		return 30, nil
	}
	calls := factoryDone.Load()
	if v := gos(t, a, "foo", slow, hybrid.WithDuration(time.Minute)); v != 10 {
		t.Fatalf("A after the soft timeout = %d, want the stale 10", v)
	}
	before := a.Stats().BackplaneReceived
	if v := gos(t, b, "foo", val(40), hybrid.WithDuration(time.Minute)); v != 40 {
		t.Fatalf("B = %d, want its own 40", v)
	}
	received(t, a, before, "A to hear B's write")
	close(release)
	redistest.Eventually(t, "A's background factory to return", func() bool { return factoryDone.Load() > calls })
	probe := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{})
	redistest.Eventually(t, "both nodes and L2 to agree", func() bool {
		return getInt(t, a, "foo") == 40 && getInt(t, b, "foo") == 40 && getInt(t, probe, "foo", skipL1) == 40
	})
}

// L1L2BackplaneTests.CanRemoveByTagAsync: three nodes, tags set by Set and
// GetOrSet, RemoveByTag on one node seen by the others.
func TestFusionNodesRemoveByTag(t *testing.T) {
	srv := redistest.Start(t)
	var n [3]*hybrid.Cache
	for i := range n {
		c := srv.FastClient(t, "")
		n[i] = fnode(t, c, c, hybrid.EntryOptions{})
	}
	c1, c2, c3 := n[0], n[1], n[2]
	set(t, c1, "foo", 1, hybrid.WithTags("x", "y"))
	set(t, c2, "bar", 2, hybrid.WithTags("y", "z"))
	gos(t, c3, "baz", val(3), hybrid.WithTags("x", "z"))

	if v := gos(t, c1, "foo", val(11), hybrid.WithTags("x", "y")); v != 1 {
		t.Fatalf("foo = %d", v)
	}
	if v := gos(t, c2, "bar", val(22), hybrid.WithTags("y", "z")); v != 2 {
		t.Fatalf("bar = %d", v)
	}
	if v := gos(t, c3, "baz", val(33), hybrid.WithTags("x", "z")); v != 3 {
		t.Fatalf("baz = %d", v)
	}

	r := receivedAll(c2, c3)
	if err := c1.RemoveByTag(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	received(t, c2, r[0], "node 2 to hear RemoveByTag(x)")
	received(t, c3, r[1], "node 3 to hear RemoveByTag(x)")
	if v := getInt(t, c3, "foo"); v != 0 {
		t.Fatalf("foo on node 3 after RemoveByTag(x) = %d, want a miss", v)
	}
	if v := gos(t, c1, "bar", val(222), hybrid.WithTags("y", "z")); v != 2 {
		t.Fatalf("bar on node 1 = %d, want 2", v)
	}
	if v := gos(t, c2, "baz", val(333), hybrid.WithTags("x", "z")); v != 333 {
		t.Fatalf("baz on node 2 = %d, want 333 (reloaded)", v)
	}

	r = receivedAll(c1, c2)
	if err := c3.RemoveByTag(context.Background(), "y"); err != nil {
		t.Fatal(err)
	}
	received(t, c1, r[0], "node 1 to hear RemoveByTag(y)")
	received(t, c2, r[1], "node 2 to hear RemoveByTag(y)")
	if v := gos(t, c3, "bar", val(2222), hybrid.WithTags("y", "z")); v != 2222 {
		t.Fatalf("bar = %d, want 2222", v)
	}
	if v := gos(t, c2, "foo", val(1111), hybrid.WithTags("x", "y")); v != 1111 {
		t.Fatalf("foo = %d, want 1111", v)
	}
	if v := gos(t, c1, "baz", val(3333), hybrid.WithTags("x", "z")); v != 333 {
		t.Fatalf("baz = %d, want 333 (written after RemoveByTag(x), not tagged y)", v)
	}
}

// L1L2BackplaneTests.CanRemoveByTagWithCacheKeyPrefixAsync: a custom key
// prefix, tags set inside a factory, then Clear.
func TestFusionNodesRemoveByTagWithKeyPrefix(t *testing.T) {
	srv := redistest.Start(t)
	prefix := func(o *hybrid.Options) { o.Name, o.KeyPrefix = "food", "menu:" }
	var n [3]*hybrid.Cache
	for i := range n {
		c := srv.FastClient(t, "")
		n[i] = fnode(t, c, c, hybrid.EntryOptions{}, prefix)
	}
	c1, c2, c3 := n[0], n[1], n[2]
	set(t, c1, "milk", 1, hybrid.WithTags("beverage", "white"))
	set(t, c1, "coconut", 1, hybrid.WithTags("food", "white"))
	set(t, c2, "orange", 1, hybrid.WithTags("fruit", "orange"))
	gos(t, c2, "banana", func(_ context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
		fc.SetTags("fruit", "yellow")
		return 1, nil
	})
	set(t, c2, "red_wine", 1, hybrid.WithTags("beverage", "red"))
	set(t, c3, "trippa", 1, hybrid.WithTags("food", "red"))
	set(t, c3, "risotto_milanese", 1, hybrid.WithTags("food", "yellow"))
	set(t, c3, "kimchi", 1, hybrid.WithTags("food", "red"))
	keys := []string{"milk", "coconut", "orange", "banana", "red_wine", "trippa", "risotto_milanese", "kimchi"}
	check := func(step string, want ...int) {
		t.Helper()
		for i, k := range keys {
			if v := getInt(t, c1, k); v != want[i] {
				t.Errorf("%s: node 1 %s = %d, want %d", step, k, v, want[i])
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	check("start", 1, 1, 1, 1, 1, 1, 1, 1)
	if n, _ := srv.Client(t).Exists(context.Background(), "menu:milk").Result(); n != 1 {
		t.Fatal("menu:milk not in Redis: the key prefix was not used")
	}

	before := c1.Stats().BackplaneReceived
	c3.RemoveByTag(context.Background(), "red")
	received(t, c1, before, "node 1 to hear RemoveByTag(red)")
	check("after RemoveByTag(red)", 1, 1, 1, 1, 0, 0, 1, 0)

	before = c1.Stats().BackplaneReceived
	c2.RemoveByTag(context.Background(), "yellow")
	received(t, c1, before, "node 1 to hear RemoveByTag(yellow)")
	check("after RemoveByTag(yellow)", 1, 1, 1, 0, 0, 0, 0, 0)

	before = c1.Stats().BackplaneReceived
	c2.Clear(context.Background(), true)
	received(t, c1, before, "node 1 to hear Clear")
	check("after Clear", 0, 0, 0, 0, 0, 0, 0, 0)
}

// L1L2BackplaneTests.CanRemoveByTagMultiAsync: several tags in one call,
// an empty call, an unknown tag beside a known one.
func TestFusionNodesRemoveByTagMulti(t *testing.T) {
	srv := redistest.Start(t)
	var n [3]*hybrid.Cache
	for i := range n {
		c := srv.FastClient(t, "")
		n[i] = fnode(t, c, c, hybrid.EntryOptions{})
	}
	ctx := context.Background()
	set(t, n[0], "foo", 1, hybrid.WithTags("x", "y"))
	set(t, n[0], "bar", 2, hybrid.WithTags("y"))
	gos(t, n[0], "baz", val(3), hybrid.WithTags("z"))
	check := func(step string, want ...int) {
		t.Helper()
		for i, node := range n {
			for j, k := range []string{"foo", "bar", "baz"} {
				if v := getInt(t, node, k); v != want[j] {
					t.Fatalf("%s: node %d %s = %d, want %d", step, i+1, k, v, want[j])
				}
			}
		}
	}
	check("start", 1, 2, 3)

	r := receivedAll(n[1], n[2])
	if err := n[0].RemoveByTag(ctx, "x", "z"); err != nil {
		t.Fatal(err)
	}
	received(t, n[1], r[0]+1, "node 2 to hear RemoveByTag(x, z)")
	received(t, n[2], r[1]+1, "node 3 to hear RemoveByTag(x, z)")
	check("after RemoveByTag(x, z)", 0, 2, 0)

	if err := n[2].RemoveByTag(ctx); err != nil {
		t.Fatalf("RemoveByTag with no tags: %v", err)
	}
	if err := n[2].RemoveByTag(ctx, []string{}...); err != nil {
		t.Fatalf("RemoveByTag with an empty list: %v", err)
	}
	check("after empty RemoveByTag", 0, 2, 0)

	r = receivedAll(n[0], n[1])
	if err := n[2].RemoveByTag(ctx, "y", "non-existing"); err != nil {
		t.Fatal(err)
	}
	// One message per tag: wait for both.
	received(t, n[0], r[0]+1, "node 1 to hear RemoveByTag(y, non-existing)")
	received(t, n[1], r[1]+1, "node 2 to hear RemoveByTag(y, non-existing)")
	check("after RemoveByTag(y, non-existing)", 0, 0, 0)
}

// L1L2BackplaneTests.RemoveByTagDoesNotRemoveTaggingDataAsync: a
// RemoveByTag of a tag nobody carries changes nothing, and a later one of
// a real tag still works on both nodes.
func TestFusionNodesRemoveByTagKeepsTaggingData(t *testing.T) {
	srv := redistest.Start(t)
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	c1, c2 := fnode(t, ca, ca, hybrid.EntryOptions{}), fnode(t, cb, cb, hybrid.EntryOptions{})
	for _, k := range []string{"foo", "bar", "baz"} {
		set(t, c1, k, 1, hybrid.WithTags("x", "y", "z"))
		if v := getInt(t, c2, k); v != 1 {
			t.Fatalf("node 2 %s = %d", k, v)
		}
	}
	before := c2.Stats().BackplaneReceived
	c1.RemoveByTag(context.Background(), "blah")
	received(t, c2, before, "node 2 to hear RemoveByTag(blah)")
	if getInt(t, c1, "foo") != 1 || getInt(t, c2, "bar") != 1 || getInt(t, c1, "baz") != 1 {
		t.Fatal("RemoveByTag of an unused tag invalidated tagged entries")
	}
	before = c1.Stats().BackplaneReceived
	c2.RemoveByTag(context.Background(), "y")
	received(t, c1, before, "node 1 to hear RemoveByTag(y)")
	if a, b, c := getInt(t, c2, "foo"), getInt(t, c1, "bar"), getInt(t, c2, "baz"); a != 0 || b != 0 || c != 0 {
		t.Fatalf("after RemoveByTag(y): foo %d, bar %d, baz %d; want misses", a, b, c)
	}
}

// L1L2BackplaneTests.CanClearAsync: Clear(true) leaves stale fallbacks,
// a write after it survives, Clear(false) leaves nothing.
func TestFusionNodesClear(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Minute, FailSafe: true}
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	c1, c2 := fnode(t, ca, ca, e), fnode(t, cb, cb, e)
	ten := hybrid.WithDuration(10 * time.Second)
	ctx := context.Background()
	set(t, c1, "foo", 1, ten)
	set(t, c1, "bar", 2, ten)
	if getInt(t, c1, "foo") != 1 || getInt(t, c1, "bar") != 2 || getInt(t, c2, "bar") != 2 || getInt(t, c2, "foo") != 1 {
		t.Fatal("setup: the nodes do not see foo=1, bar=2")
	}

	before := c1.Stats().BackplaneReceived
	c2.Clear(ctx, true)
	received(t, c1, before, "node 1 to hear Clear(true)")
	before = c1.Stats().BackplaneReceived
	set(t, c2, "bar", 22, ten)
	received(t, c1, before, "node 1 to hear bar=22")
	for i, n := range []*hybrid.Cache{c1, c2} {
		if f, b := getInt(t, n, "foo"), getInt(t, n, "bar"); f != 0 || b != 22 {
			t.Fatalf("node %d after Clear(true) + Set: foo %d, bar %d; want 0, 22", i+1, f, b)
		}
		if f, b := getInt(t, n, "foo", staleToo), getInt(t, n, "bar", staleToo); f != 1 || b != 22 {
			t.Fatalf("node %d AllowStaleOnRead after Clear(true): foo %d, bar %d; want 1, 22", i+1, f, b)
		}
	}

	before = c1.Stats().BackplaneReceived
	c2.Clear(ctx, false)
	received(t, c1, before, "node 1 to hear Clear(false)")
	for i, n := range []*hybrid.Cache{c1, c2} {
		if f, b := getInt(t, n, "foo"), getInt(t, n, "bar"); f != 0 || b != 0 {
			t.Fatalf("node %d after Clear(false): foo %d, bar %d; want misses", i+1, f, b)
		}
		if f, b := getInt(t, n, "foo", staleToo), getInt(t, n, "bar", staleToo); f != 0 || b != 0 {
			t.Fatalf("node %d AllowStaleOnRead after Clear(false): foo %d, bar %d; want misses", i+1, f, b)
		}
	}
}

// L1L2BackplaneTests.CanClearWithColdStartsAsync: a node started after a
// Clear does not serve entries written before it.
func TestFusionNodesClearWithColdStart(t *testing.T) {
	srv := redistest.Start(t)
	ca := srv.FastClient(t, "")
	c1 := fnode(t, ca, ca, hybrid.EntryOptions{})
	ten := hybrid.WithDuration(10 * time.Second)
	set(t, c1, "foo", 1, ten)
	set(t, c1, "bar", 2, ten)
	if getInt(t, c1, "foo") != 1 || getInt(t, c1, "bar") != 2 {
		t.Fatal("setup")
	}
	c1.Clear(context.Background(), true)
	if v := getInt(t, c1, "foo"); v != 0 {
		t.Fatalf("foo after Clear = %d", v)
	}
	cb := srv.FastClient(t, "")
	c2 := fnode(t, cb, cb, hybrid.EntryOptions{})
	if v := getInt(t, c2, "bar"); v != 0 {
		t.Fatalf("a node started after Clear read bar = %d, want a miss", v)
	}
}

// AutoRecoveryTests.CanHandleIssuesWithBothDistributedCacheAndBackplaneAsync:
// Redis down (the process killed), a Set on node B stays local; Redis back
// (empty), B's queued write is replayed and announced, both nodes agree.
func TestFusionNodesAutoRecoveryBothDown(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute}
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	a, b := fnode(t, ca, ca, e), fnode(t, cb, cb, e)
	if gos(t, a, "foo", val(10)) != 10 || gos(t, b, "foo", val(20)) != 10 {
		t.Fatal("setup: not in sync")
	}
	srv.Kill(t)
	set(t, b, "foo", 30)
	if va, vb := getInt(t, a, "foo"), getInt(t, b, "foo"); va != 10 || vb != 30 {
		t.Fatalf("Redis down: A %d, B %d; want 10, 30", va, vb)
	}
	srv.Restart(t)
	redistest.Eventually(t, "B's queued write to be replayed", func() bool {
		st := b.Stats()
		return st.RecoveryPending == 0 && st.Recovered > 0
	})
	redistest.Eventually(t, "A to take B's write", func() bool { return gos(t, a, "foo", val(60)) == 30 })
	if v := gos(t, b, "foo", val(70)); v != 30 {
		t.Fatalf("B = %d, want 30", v)
	}
}

// AutoRecoveryTests.CanRecoverAsync (disabled in FusionCache, its meaning
// is clear): three nodes write the same key in turn while Redis is down;
// once it is back, every node converges on the newest write.
func TestFusionNodesAutoRecoveryThreeNodesNewestWins(t *testing.T) {
	srv := redistest.Start(t)
	var n [3]*hybrid.Cache
	for i := range n {
		c := srv.FastClient(t, "")
		n[i] = fnode(t, c, c, hybrid.EntryOptions{Duration: 10 * time.Minute})
	}
	srv.Kill(t)
	for i, node := range n {
		set(t, node, "foo", i+1)
	}
	for i, node := range n {
		if v := gos(t, node, "foo", val(99)); v != i+1 {
			t.Fatalf("Redis down: node %d = %d, want its own %d", i+1, v, i+1)
		}
	}
	srv.Restart(t)
	for i, node := range n {
		redistest.Eventually(t, fmt.Sprint("node ", i+1, "'s queue to drain"), func() bool {
			st := node.Stats()
			return st.RecoveryPending == 0 && st.Recovered > 0
		})
	}
	for i, node := range n {
		redistest.Eventually(t, fmt.Sprint("node ", i+1, " to converge on 3"), func() bool { return gos(t, node, "foo", val(99)) == 3 })
	}
}

// AutoRecoveryTests.CanHandleDistributedCacheErrorsWithBackplaneRetryAsync:
// the distributed tier is unreachable (a paused proxy) while the backplane
// works: B's Set is not announced before it reaches L2, so A keeps its
// value instead of reloading; once L2 is back, both converge on B's write.
func TestFusionNodesL2DownBackplaneUp(t *testing.T) {
	srv := redistest.Start(t)
	pl := srv.Proxy(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, L2HardTimeout: 300 * time.Millisecond}
	a := fnode(t, srv.FastClient(t, pl.Addr()), srv.FastClient(t, ""), e)
	b := fnode(t, srv.FastClient(t, pl.Addr()), srv.FastClient(t, ""), e)
	if gos(t, a, "foo", val(10)) != 10 || gos(t, b, "foo", val(20)) != 10 {
		t.Fatal("setup: not in sync")
	}
	pl.Pause()
	pl.ResetAll()
	set(t, b, "foo", 30)
	if v := gos(t, a, "foo", val(31)); v != 10 {
		t.Fatalf("A with L2 down = %d, want its own 10", v)
	}
	if v := gos(t, b, "foo", val(40)); v != 30 {
		t.Fatalf("B with L2 down = %d, want its own 30", v)
	}
	pl.Resume()
	redistest.Eventually(t, "B's write to be replayed", func() bool {
		st := b.Stats()
		return st.RecoveryPending == 0 && st.Recovered > 0
	})
	redistest.Eventually(t, "A to take B's write", func() bool { return gos(t, a, "foo", val(50)) == 30 })
	if v := gos(t, b, "foo", val(60)); v != 30 {
		t.Fatalf("B = %d, want 30", v)
	}
}

// AutoRecoveryTests.CanHandleReconnectedBackplaneWithoutReconnectedDistributedCacheAsync:
// both tiers down, the backplane back first: the nodes keep their values
// (B's write waits in its queue); then L2 back: both take B's write.
func TestFusionNodesBackplaneBackBeforeL2(t *testing.T) {
	srv := redistest.Start(t)
	pl, pb := srv.Proxy(t), srv.Proxy(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, L2HardTimeout: 300 * time.Millisecond}
	a := fnode(t, srv.FastClient(t, pl.Addr()), srv.FastClient(t, pb.Addr()), e)
	b := fnode(t, srv.FastClient(t, pl.Addr()), srv.FastClient(t, pb.Addr()), e)
	if gos(t, a, "foo", val(10)) != 10 || gos(t, b, "foo", val(20)) != 10 {
		t.Fatal("setup: not in sync")
	}
	pl.Pause()
	pl.ResetAll()
	pb.Pause()
	pb.ResetAll()
	set(t, b, "foo", 30)
	if va, vb := getInt(t, a, "foo"), getInt(t, b, "foo"); va != 10 || vb != 30 {
		t.Fatalf("both down: A %d, B %d; want 10, 30", va, vb)
	}
	gaps := a.Stats().BackplaneGaps
	pb.Resume()
	redistest.Eventually(t, "A's backplane to reconnect", func() bool { return a.Stats().BackplaneGaps > gaps })
	if va, vb := getInt(t, a, "foo"), getInt(t, b, "foo"); va != 10 || vb != 30 {
		t.Fatalf("backplane back, L2 down: A %d, B %d; want 10, 30", va, vb)
	}
	pl.Resume()
	redistest.Eventually(t, "B's write to be replayed", func() bool {
		st := b.Stats()
		return st.RecoveryPending == 0 && st.Recovered > 0
	})
	redistest.Eventually(t, "A to take B's write", func() bool { return gos(t, a, "foo", val(60)) == 30 })
	if v := gos(t, b, "foo", val(70)); v != 30 {
		t.Fatalf("B = %d, want 30", v)
	}
}

// AutoRecoveryTests.CanHandleIssuesWithOnlyMemoryCacheAndBackplaneAsync:
// memory-only nodes with a backplane that skip notifications by default;
// B's explicit notification fails while the backplane is down and is
// replayed when it is back: A stops serving its old value.
func TestFusionNodesMemoryOnlyBackplaneRecovery(t *testing.T) {
	srv := redistest.Start(t)
	px := srv.Proxy(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, SkipBackplane: true}
	a := fnode(t, nil, srv.FastClient(t, px.Addr()), e)
	b := fnode(t, nil, srv.FastClient(t, px.Addr()), e)
	if gos(t, a, "foo", val(10)) != 10 || gos(t, b, "foo", val(10)) != 10 {
		t.Fatal("setup")
	}
	px.Pause()
	px.ResetAll()
	set(t, b, "foo", 30, bpOn)
	if va, vb := getInt(t, a, "foo"), getInt(t, b, "foo"); va != 10 || vb != 30 {
		t.Fatalf("backplane down: A %d, B %d; want 10, 30", va, vb)
	}
	px.Resume()
	redistest.Eventually(t, "B's message to be replayed", func() bool {
		st := b.Stats()
		return st.RecoveryPending == 0 && st.Recovered > 0
	})
	redistest.Eventually(t, "A to stop serving 10", func() bool { return getInt(t, a, "foo") != 10 })
	if v := gos(t, a, "foo", val(30)); v != 30 {
		t.Fatalf("A = %d, want 30", v)
	}
	if v := gos(t, b, "foo", val(30)); v != 30 {
		t.Fatalf("B = %d, want 30", v)
	}
}

// L1BackplaneTests.CanSkipNotificationsAsync: memory-only nodes whose
// writes skip the backplane each keep their own value.
func TestFusionNodesMemoryOnlySkipNotifications(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, SkipBackplane: true}
	var n [3]*hybrid.Cache
	for i := range n {
		n[i] = fnode(t, nil, srv.FastClient(t, ""), e)
	}
	for i, node := range n {
		set(t, node, "k", i+1)
	}
	r := receivedAll(n[0], n[1])
	set(t, n[2], "marker", 1, bpOn) // a later message on the same channel
	received(t, n[0], r[0], "node 1 to hear the marker")
	received(t, n[1], r[1], "node 2 to hear the marker")
	for i, node := range n {
		if v := getInt(t, node, "k"); v != i+1 {
			t.Fatalf("node %d = %d, want its own %d", i+1, v, i+1)
		}
	}
}

// L1BackplaneTests.WorksWithDifferentCachesAsync: memory-only caches with
// a backplane; only instances of the same cache hear each other.
func TestFusionNodesMemoryOnlyDifferentCaches(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute}
	c1 := fnode(t, nil, srv.FastClient(t, ""), e, named("C1"))
	c2 := fnode(t, nil, srv.FastClient(t, ""), e, named("C2"))
	c2bis := fnode(t, nil, srv.FastClient(t, ""), e, named("C2"))
	gos(t, c1, "k", val(1))
	gos(t, c2, "k", val(2))
	before := c2.Stats().BackplaneReceived
	gos(t, c2bis, "k", val(2))
	received(t, c2, before, "C2 to hear C2bis's write")
	if v := getInt(t, c1, "k"); v != 1 {
		t.Fatalf("C1 = %d, want 1", v)
	}
	if v := getInt(t, c2, "k"); v != 0 {
		t.Fatalf("C2 = %d, want a miss (another instance wrote the key)", v)
	}
	if v := getInt(t, c2bis, "k"); v != 2 {
		t.Fatalf("C2bis = %d, want 2", v)
	}
	if st := c1.Stats(); st.BackplaneReceived != 0 {
		t.Fatalf("C1 applied %d messages of cache C2", st.BackplaneReceived)
	}

	set(t, c1, "k", 21)
	before = c2bis.Stats().BackplaneReceived
	set(t, c2, "k", 42)
	received(t, c2bis, before, "C2bis to hear C2's Set")
	if v := gos(t, c1, "k", val(78)); v != 21 {
		t.Fatalf("C1 = %d, want 21", v)
	}
	if v := gos(t, c2, "k", val(78)); v != 42 {
		t.Fatalf("C2 = %d, want 42", v)
	}
	before = c2.Stats().BackplaneReceived
	if v := gos(t, c2bis, "k", val(78)); v != 78 {
		t.Fatalf("C2bis = %d, want 78 (its copy was invalidated by C2's Set)", v)
	}
	received(t, c2, before, "C2 to hear C2bis's load")
	if v := gos(t, c2, "k", val(88)); v != 88 {
		t.Fatalf("C2 = %d, want 88 (its copy was invalidated by C2bis's load)", v)
	}
}

// L1L2Tests.DistributedCacheCircuitBreakerActuallyWorksAsync. Deliberate
// difference: FusionCache runs this with auto-recovery off, so the writes
// made while the breaker is open never reach the distributed cache (it
// reads 1 at the end). Strata has no such switch: "writes go straight to
// the auto-recovery queue" while the breaker is open (docs/l2.md, "Circuit
// breaker") and are replayed, newest wins: L2 ends with 3. What remains
// the same: while the breaker is open, the write does not reach Redis.
func TestFusionNodesCircuitBreaker(t *testing.T) {
	srv := redistest.Start(t)
	px := srv.Proxy(t)
	e := hybrid.EntryOptions{Duration: time.Minute, FailSafe: true, L2HardTimeout: 300 * time.Millisecond}
	n := fnode(t, srv.FastClient(t, px.Addr()), nil, e, func(o *hybrid.Options) { o.L2CircuitBreakerDuration = 3 * time.Second })
	probe := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{})
	set(t, n, "foo", 1)
	px.Pause()
	px.ResetAll()
	set(t, n, "foo", 2)
	if !n.Stats().L2CircuitOpen {
		t.Fatalf("the breaker did not open: %+v", n.Stats())
	}
	px.Resume()
	errs := n.Stats().L2Errors
	set(t, n, "foo", 3)
	if st := n.Stats(); st.L2CircuitOpen {
		if v := getInt(t, probe, "foo", skipL1); v != 1 {
			t.Fatalf("L2 holds %d while the breaker is open, want 1", v)
		}
		if st.L2Errors != errs {
			t.Fatalf("the open breaker let a call through: L2 errors %d -> %d", errs, st.L2Errors)
		}
	}
	redistest.Eventually(t, "the queued write to reach L2", func() bool { return getInt(t, probe, "foo", skipL1) == 3 })
}

// L1L2Tests.AppliesDistributedCacheSoftTimeoutAsync: with a stale value at
// hand, a hung distributed tier costs the soft timeout, then fail-safe
// answers.
func TestFusionNodesL2SoftTimeout(t *testing.T) {
	srv := redistest.Start(t)
	px := srv.Proxy(t)
	e := hybrid.EntryOptions{FailSafe: true}
	n := fnode(t, srv.FastClient(t, px.Addr()), nil, e)
	set(t, n, "foo", 42, hybrid.WithDuration(300*time.Millisecond))
	redistest.Eventually(t, "the entry to expire", func() bool {
		_, ok := mustGet[int](t, n, "foo")
		return !ok
	})
	px.Pause()
	defer px.Resume()
	start := time.Now()
	v, err := hybrid.GetOrSet(context.Background(), n, "foo", failing[int](), opts(func(o *hybrid.EntryOptions) {
		o.Duration, o.L2SoftTimeout, o.L2HardTimeout = time.Second, 100*time.Millisecond, 5*time.Second
	}))
	took := time.Since(start)
	if err != nil || v != 42 {
		t.Fatalf("GetOrSet = %d, %v; want the stale 42", v, err)
	}
	if took >= 3*time.Second {
		t.Fatalf("GetOrSet took %v: the 100ms L2 soft timeout was not applied", took)
	}
}

// L1L2Tests.AppliesDistributedCacheHardTimeoutAsync: without a stale value
// in memory, the soft timeout does not apply; the hard timeout cuts the
// read, and the factory's error is returned.
func TestFusionNodesL2HardTimeout(t *testing.T) {
	srv := redistest.Start(t)
	px := srv.Proxy(t)
	writer := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{FailSafe: true})
	set(t, writer, "foo", 42, hybrid.WithDuration(time.Minute))
	n := fnode(t, srv.FastClient(t, px.Addr()), nil, hybrid.EntryOptions{FailSafe: true})
	px.Pause()
	defer px.Resume()
	start := time.Now()
	_, err := hybrid.GetOrSet(context.Background(), n, "foo", failing[int](), opts(func(o *hybrid.EntryOptions) {
		o.Duration, o.L2SoftTimeout, o.L2HardTimeout = time.Second, 100*time.Millisecond, 500*time.Millisecond
	}))
	took := time.Since(start)
	if !errors.Is(err, errDB) {
		t.Fatalf("GetOrSet error = %v, want the factory's error", err)
	}
	if took < 400*time.Millisecond {
		t.Fatalf("GetOrSet gave up after %v: the soft timeout applied without a stale value", took)
	}
	if took >= 5*time.Second {
		t.Fatalf("GetOrSet took %v: the 500ms L2 hard timeout was not applied", took)
	}
}

// L1L2Tests.CanSkipDistributedCacheAsync: SkipL2Read + SkipL2Write keep a
// node's value to itself, and ignore the other node's.
func TestFusionNodesSkipL2(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Second, FailSafe: true}
	n1 := fnode(t, srv.FastClient(t, ""), nil, e)
	n2 := fnode(t, srv.FastClient(t, ""), nil, e)
	if v1, v2 := gos(t, n1, "foo", val(1), skipL2), gos(t, n2, "foo", val(2)); v1 != 1 || v2 != 2 {
		t.Fatalf("foo: %d, %d; want 1, 2", v1, v2)
	}
	if v3, v4 := gos(t, n1, "bar", val(3)), gos(t, n2, "bar", val(4), skipL2); v3 != 3 || v4 != 4 {
		t.Fatalf("bar: %d, %d; want 3, 4", v3, v4)
	}
}

// L1L2Tests.CanSkipDistributedCacheOnReadOnlyAsync: with SkipL2Read, a
// read does not touch a dead distributed tier.
func TestFusionNodesSkipL2ReadWithRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	n := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{})
	srv.Kill(t)
	if v, ok := mustGet[int](t, n, "foo", l1Only); ok {
		t.Fatalf("got %d", v)
	}
	if st := n.Stats(); st.L2Errors != 0 {
		t.Fatalf("a read with SkipL2Read reached L2: %+v", st)
	}
}

// L1L2Tests.CanSkipMemoryCacheAsync: a Set that skips memory reaches only
// L2; reads that skip memory take it from there.
func TestFusionNodesSkipL1(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute}
	n1 := fnode(t, srv.FastClient(t, ""), nil, e)
	n2 := fnode(t, srv.FastClient(t, ""), nil, e)
	v1 := gos(t, n1, "foo", val(10))
	v2 := gos(t, n2, "foo", val(20))
	set(t, n1, "foo", 30, skipL1)
	v3 := gos(t, n1, "foo", val(40))
	v4 := gos(t, n2, "foo", val(50))
	v5 := gos(t, n2, "foo", val(60), skipL1)
	if got, want := []int{v1, v2, v3, v4, v5}, []int{10, 10, 10, 10, 30}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// L1L2Tests.CanExecuteBackgroundDistributedCacheOperationsAsync: with
// BackgroundL2Operations a Set does not wait for a slow Redis, and the
// write lands later.
func TestFusionNodesBackgroundL2Operations(t *testing.T) {
	srv := redistest.Start(t)
	px := srv.Proxy(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Second, BackgroundL2Operations: true}
	n := fnode(t, srv.FastClient(t, px.Addr()), nil, e)
	probe := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{})
	set(t, n, "foo", 21)
	redistest.Eventually(t, "the first write to land", func() bool { return getInt(t, probe, "foo", skipL1) == 21 })
	px.SetLatency(time.Second) // a round trip takes 2s
	start := time.Now()
	set(t, n, "foo", 42)
	if took := time.Since(start); took >= time.Second {
		t.Fatalf("Set waited %v for a slow Redis", took)
	}
	if v := getInt(t, n, "foo"); v != 42 {
		t.Fatalf("own read = %d, want 42 at once", v)
	}
	if v := getInt(t, probe, "foo", skipL1); v != 21 {
		t.Fatalf("L2 = %d right after the Set; the write cannot have landed yet", v)
	}
	redistest.Eventually(t, "the background write to land", func() bool { return getInt(t, probe, "foo", skipL1) == 42 })
	px.SetLatency(0)
}

// L1L2Tests.MemoryCacheDurationIsRespectedAsync: L1Duration bounds how long
// a node trusts its memory copy without a backplane.
func TestFusionNodesL1Duration(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Second, L1Duration: 500 * time.Millisecond}
	a := fnode(t, srv.FastClient(t, ""), nil, e)
	b := fnode(t, srv.FastClient(t, ""), nil, e)
	if gos(t, a, "foo", val(1)) != 1 || gos(t, b, "foo", val(2)) != 1 {
		t.Fatal("setup")
	}
	set(t, b, "foo", 3)
	if va, vb := gos(t, a, "foo", val(10)), gos(t, b, "foo", val(20)); va != 1 || vb != 3 {
		t.Fatalf("right after B's Set: A %d, B %d; want 1, 3", va, vb)
	}
	redistest.Eventually(t, "A to read B's write after L1Duration", func() bool { return gos(t, a, "foo", val(20)) == 3 })
	if v := gos(t, b, "foo", val(30)); v != 3 {
		t.Fatalf("B = %d", v)
	}
}

// L1L2Tests.MemoryExpirationAlignedWithDistributedAsync: a node that takes
// an entry from L2 keeps L2's expiration, not its own Duration.
func TestFusionNodesMemoryExpirationAlignedWithL2(t *testing.T) {
	srv := redistest.Start(t)
	n1 := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{})
	n2 := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{})
	written := time.Now()
	set(t, n1, "foo", 21, hybrid.WithDuration(time.Second))
	long := hybrid.WithDuration(10 * time.Second)
	if v := getInt(t, n2, "foo", long); v != 21 {
		t.Fatalf("n2 = %d, want 21", v)
	}
	time.Sleep(time.Until(written.Add(1100 * time.Millisecond))) // wait for the clock, not for a goroutine
	if v, ok := mustGet[int](t, n2, "foo", long); ok {
		t.Fatalf("n2 still serves %d after the writer's 1s: it used its own Duration", v)
	}
}

// L1L2Tests.DistributedLockerWorksAsync: with the distributed lock, two
// nodes loading the same cold key call the factory once.
func TestFusionNodesDistributedLock(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Second, DistributedLock: true}
	a := fnode(t, srv.FastClient(t, ""), nil, e)
	b := fnode(t, srv.FastClient(t, ""), nil, e)
	var calls atomic.Int64
	factory := func(v int) hybrid.Factory[int] {
		return func(ctx context.Context, _ *hybrid.FactoryContext[int]) (int, error) {
			calls.Add(1)
			time.Sleep(300 * time.Millisecond) // a slow source
			return v, nil
		}
	}
	var wg sync.WaitGroup
	var va, vb int
	wg.Go(func() { va, _ = hybrid.GetOrSet(context.Background(), a, "foo", factory(1)) })
	wg.Go(func() { vb, _ = hybrid.GetOrSet(context.Background(), b, "foo", factory(2)) })
	wg.Wait()
	if n := calls.Load(); n != 1 || va != vb || va == 0 {
		t.Fatalf("factory calls %d, values %d and %d; want 1 call, one value", n, va, vb)
	}
}

// L1L2Tests.HandlesDistributedCacheFailuresAsync, with two nodes: Redis
// dies after the entry expired; fail-safe serves the stale value on the
// node that held it, and a node that never held it gets the error.
func TestFusionNodesFailSafeWithRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 300 * time.Millisecond, FailSafe: true}
	n1 := fnode(t, srv.FastClient(t, ""), nil, e)
	n2 := fnode(t, srv.FastClient(t, ""), nil, e)
	n3 := fnode(t, srv.FastClient(t, ""), nil, e)
	if gos(t, n1, "foo", val(42)) != 42 || getInt(t, n2, "foo") != 42 {
		t.Fatal("setup")
	}
	redistest.Eventually(t, "the entry to expire", func() bool {
		_, ok := mustGet[int](t, n2, "foo", l1Only)
		return !ok
	})
	srv.Kill(t)
	for i, n := range []*hybrid.Cache{n1, n2} {
		if v, err := hybrid.GetOrSet(context.Background(), n, "foo", failing[int]()); err != nil || v != 42 {
			t.Fatalf("node %d: GetOrSet = %d, %v; want the stale 42", i+1, v, err)
		}
	}
	if v, err := hybrid.GetOrSet(context.Background(), n3, "foo", failing[int]()); !errors.Is(err, errDB) {
		t.Fatalf("node 3 (never held foo, Redis down): %d, %v; want the factory's error", v, err)
	}
}

// L1L2Tests.FailSafeMaxDurationIsRespectedAsync: past FailSafeMaxDuration
// no node has a fallback any more, not even from L2.
func TestFusionNodesFailSafeMaxDuration(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 200 * time.Millisecond, FailSafe: true,
		FailSafeThrottleDuration: 100 * time.Millisecond, FailSafeMaxDuration: time.Second}
	n1 := fnode(t, srv.FastClient(t, ""), nil, e)
	n2 := fnode(t, srv.FastClient(t, ""), nil, e)
	written := time.Now()
	set(t, n1, "foo", 21)
	redistest.Eventually(t, "the entry to expire", func() bool {
		_, ok := mustGet[int](t, n1, "foo")
		return !ok
	})
	for i, n := range []*hybrid.Cache{n1, n2} {
		if v, err := hybrid.GetOrSet(context.Background(), n, "foo", failing[int]()); err != nil || v != 21 {
			t.Fatalf("node %d within FailSafeMaxDuration: %d, %v; want the stale 21", i+1, v, err)
		}
	}
	for i, n := range []*hybrid.Cache{n1, n2} {
		redistest.Eventually(t, fmt.Sprint("node ", i+1, " to run out of fallback"), func() bool {
			_, err := hybrid.GetOrSet(context.Background(), n, "foo", failing[int]())
			return errors.Is(err, errDB)
		})
	}
	if el := time.Since(written); el < time.Second {
		t.Fatalf("the fallback ran out after %v, before FailSafeMaxDuration", el)
	}
}

// L1L2Tests.HandlesDistributedCacheFailuresInTheMiddleOfAnOperationAsync:
// Redis dies while a factory runs: the caller gets the value, memory holds
// it. Deliberate difference: FusionCache's distributed cache misses the
// value; Strata queues the failed write and replays it once Redis is back
// (docs/l2.md, "Auto-recovery"), so L2 ends with it.
func TestFusionNodesRedisDiesDuringFactory(t *testing.T) {
	srv := redistest.Start(t)
	n := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{Duration: 10 * time.Second})
	gos(t, n, "bar", val(42))
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan int)
	go func() {
		v, _ := hybrid.GetOrSet(context.Background(), n, "foo", func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
			close(started)
			<-release
			return 42, nil
		})
		done <- v
	}()
	<-started
	srv.Kill(t)
	close(release)
	if v := <-done; v != 42 {
		t.Fatalf("GetOrSet = %d, want 42", v)
	}
	if v := getInt(t, n, "foo", l1Only); v != 42 {
		t.Fatalf("memory = %d, want 42", v)
	}
	srv.Restart(t)
	probe := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{})
	redistest.Eventually(t, "the write to be replayed to L2", func() bool { return getInt(t, probe, "foo", skipL1) == 42 })
}

// A node joining later (FusionCache's cold-start scenarios,
// L1L2BackplaneTests.CanClearWithColdStartsAsync and the Simulator's
// late nodes): it reads what the others wrote from L2, and hears their
// later changes.
func TestFusionNodesNodeJoiningLater(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute}
	ca := srv.FastClient(t, "")
	a := fnode(t, ca, ca, e)
	set(t, a, "foo", 1)
	cb := srv.FastClient(t, "")
	late := fnode(t, cb, cb, e)
	if v := gos(t, late, "foo", val(99)); v != 1 {
		t.Fatalf("late node = %d, want 1 from L2", v)
	}
	set(t, a, "foo", 2)
	redistest.Eventually(t, "the late node to hear the Set", func() bool { return getInt(t, late, "foo", l1Only) == 2 })
	a.Remove(context.Background(), "foo")
	redistest.Eventually(t, "the late node to hear the Remove", func() bool {
		_, ok := mustGet[int](t, late, "foo", l1Only)
		return !ok
	})
}

// L1L2Tests.CanHandleEagerRefreshAsync, across nodes: a hit past the
// threshold returns the current value, refreshes in the background, and
// the refreshed value reaches the other node's memory.
func TestFusionNodesEagerRefreshPropagates(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 2 * time.Second, EagerRefreshThreshold: 0.2}
	ca, cb := srv.FastClient(t, ""), srv.FastClient(t, "")
	a, b := fnode(t, ca, ca, e), fnode(t, cb, cb, e)
	var calls atomic.Int64
	factory := func(context.Context, *hybrid.FactoryContext[int64]) (int64, error) {
		return calls.Add(1), nil
	}
	v1 := gos(t, a, "foo", factory)
	if v2 := gos(t, a, "foo", factory); v2 != v1 {
		t.Fatalf("cached %d, then %d", v1, v2)
	}
	if vb, _ := mustGet[int64](t, b, "foo"); vb != v1 {
		t.Fatalf("B = %d, want %d", vb, v1)
	}
	redistest.Eventually(t, "a hit past the threshold to refresh", func() bool {
		if v := gos(t, a, "foo", factory); v != v1 && calls.Load() < 2 {
			t.Fatalf("a hit returned %d before any refresh", v)
		}
		return calls.Load() >= 2
	})
	redistest.Eventually(t, "A to serve the refreshed value", func() bool {
		v, _ := mustGet[int64](t, a, "foo", l1Only)
		return v > v1
	})
	redistest.Eventually(t, "B to serve the refreshed value from memory", func() bool {
		v, _ := mustGet[int64](t, b, "foo", l1Only)
		return v > v1
	})
}

// AutoRecoveryTests (the Remove and Expire cases of FusionCache's
// auto-recovery queue): Redis unreachable (both connections through paused
// proxies, its data kept), node A removes one key and expires another; once
// Redis answers again, the changes are replayed and node B stops serving
// them, while a key nobody touched is still served.
func TestFusionNodesAutoRecoveryRemoveAndExpire(t *testing.T) {
	srv := redistest.Start(t)
	pl, pb := srv.Proxy(t), srv.Proxy(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, FailSafe: true, L2HardTimeout: 300 * time.Millisecond}
	a := fnode(t, srv.FastClient(t, pl.Addr()), srv.FastClient(t, pb.Addr()), e)
	b := fnode(t, srv.FastClient(t, ""), srv.FastClient(t, ""), e)
	set(t, a, "gone", 1)
	set(t, a, "old", 2)
	set(t, a, "kept", 3)
	if getInt(t, b, "gone") != 1 || getInt(t, b, "old") != 2 || getInt(t, b, "kept") != 3 {
		t.Fatal("setup")
	}
	pl.Pause()
	pl.ResetAll()
	pb.Pause()
	pb.ResetAll()
	ctx := context.Background()
	a.Remove(ctx, "gone")
	a.Expire(ctx, "old")
	if getInt(t, b, "gone") != 1 || getInt(t, b, "old") != 2 {
		t.Fatal("B heard of changes made while A was cut off")
	}
	pl.Resume()
	pb.Resume()
	redistest.Eventually(t, "A's queue to drain", func() bool {
		st := a.Stats()
		return st.RecoveryPending == 0 && st.Recovered > 0
	})
	redistest.Eventually(t, "B to stop serving the removed key", func() bool {
		_, ok := mustGet[int](t, b, "gone", staleToo)
		return !ok
	})
	redistest.Eventually(t, "B to treat the expired key as stale", func() bool {
		_, ok := mustGet[int](t, b, "old")
		return !ok
	})
	if v, err := hybrid.GetOrSet(ctx, b, "old", failing[int]()); err != nil || v != 2 {
		t.Fatalf("B fail-safe after the replayed Expire = %d, %v; want the stale 2", v, err)
	}
	if v := getInt(t, b, "kept"); v != 3 {
		t.Fatalf("B kept = %d, want 3", v)
	}
}

// AutoRecoveryTests with tags: a RemoveByTag made while Redis is
// unreachable from node A (paused proxies, data kept) reaches node B once
// Redis answers again; an entry with another tag is still served.
func TestFusionNodesAutoRecoveryRemoveByTag(t *testing.T) {
	srv := redistest.Start(t)
	pl, pb := srv.Proxy(t), srv.Proxy(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, L2HardTimeout: 300 * time.Millisecond}
	a := fnode(t, srv.FastClient(t, pl.Addr()), srv.FastClient(t, pb.Addr()), e)
	b := fnode(t, srv.FastClient(t, ""), srv.FastClient(t, ""), e)
	set(t, a, "foo", 1, hybrid.WithTags("x"))
	set(t, a, "bar", 2, hybrid.WithTags("y"))
	if getInt(t, b, "foo") != 1 || getInt(t, b, "bar") != 2 {
		t.Fatal("setup")
	}
	pl.Pause()
	pl.ResetAll()
	pb.Pause()
	pb.ResetAll()
	if err := a.RemoveByTag(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	if v := getInt(t, a, "foo"); v != 0 {
		t.Fatalf("A serves foo = %d after its own RemoveByTag", v)
	}
	if v := getInt(t, b, "foo"); v != 1 {
		t.Fatalf("B heard of a RemoveByTag made while A was cut off: foo = %d", v)
	}
	pl.Resume()
	pb.Resume()
	redistest.Eventually(t, "A's queue to drain", func() bool {
		st := a.Stats()
		return st.RecoveryPending == 0 && st.Recovered > 0
	})
	redistest.Eventually(t, "B to honour the replayed RemoveByTag(x)", func() bool { return getInt(t, b, "foo") == 0 })
	if v := getInt(t, b, "bar"); v != 2 {
		t.Fatalf("B bar = %d, want 2 (not tagged x)", v)
	}
}

// L1L2BackplaneTests.CanClearAsync with the Clear's message lost: B's
// backplane is cut while A clears; when B reconnects it still honours the
// Clear (it reads the record from L2 after the gap).
func TestFusionNodesClearLostInGap(t *testing.T) {
	srv := redistest.Start(t)
	pb := srv.Proxy(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, FailSafe: true}
	ca := srv.FastClient(t, "")
	a := fnode(t, ca, ca, e)
	b := fnode(t, srv.FastClient(t, ""), srv.FastClient(t, pb.Addr()), e)
	set(t, a, "foo", 1)
	if getInt(t, b, "foo") != 1 {
		t.Fatal("setup")
	}
	pb.Pause()
	pb.ResetAll()
	if err := a.Clear(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	gaps := b.Stats().BackplaneGaps
	pb.Resume()
	redistest.Eventually(t, "B to resubscribe", func() bool { return b.Stats().BackplaneGaps > gaps })
	if v, ok := mustGet[int](t, b, "foo", staleToo); ok {
		t.Fatalf("B serves %d after a Clear(false) it missed", v)
	}
}

// L1BackplaneTests.CanClearAsync: memory-only nodes that skip notifications
// by default; a Clear still reaches the other node (the cache's default
// SkipBackplane is for its entries, not for its invalidations: this failed
// before, the Clear stayed local).
func TestFusionNodesMemoryOnlyClear(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, SkipBackplane: true}
	c1 := fnode(t, nil, srv.FastClient(t, ""), e)
	c2 := fnode(t, nil, srv.FastClient(t, ""), e)
	keys := []string{"foo", "bar", "baz"}
	for _, k := range keys {
		set(t, c1, k, 1)
		if v := gos(t, c1, k, val(2)); v != 1 {
			t.Fatalf("node 1 %s = %d", k, v)
		}
		if v := gos(t, c2, k, val(3)); v != 3 {
			t.Fatalf("node 2 %s = %d, want its own 3", k, v)
		}
	}
	if err := c1.Clear(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if v := getInt(t, c1, k); v != 0 {
			t.Fatalf("node 1 %s after Clear = %d", k, v)
		}
	}
	for _, k := range keys {
		redistest.Eventually(t, "node 2 to honour node 1's Clear for "+k, func() bool { return getInt(t, c2, k) == 0 })
	}
}

// L1BackplaneTests.CanRemoveByTagAsync: memory-only nodes that skip
// notifications by default; RemoveByTag on one node reaches the other (it
// stayed local before).
func TestFusionNodesMemoryOnlyRemoveByTag(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute, SkipBackplane: true}
	c1 := fnode(t, nil, srv.FastClient(t, ""), e)
	c2 := fnode(t, nil, srv.FastClient(t, ""), e)
	tags := map[string][]string{"foo": {"x", "y"}, "bar": {"y", "z"}, "baz": {"x", "z"}}
	read := func(c *hybrid.Cache, k string, v int) int {
		return gos(t, c, k, val(v), hybrid.WithTags(tags[k]...))
	}
	set(t, c1, "foo", 1, hybrid.WithTags(tags["foo"]...))
	set(t, c1, "bar", 2, hybrid.WithTags(tags["bar"]...))
	read(c1, "baz", 3)
	for _, c := range []*hybrid.Cache{c1, c2} {
		if read(c, "foo", 1) != 1 || read(c, "bar", 2) != 2 || read(c, "baz", 3) != 3 {
			t.Fatal("setup")
		}
	}

	if err := c1.RemoveByTag(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "node 2 to honour RemoveByTag(x)", func() bool {
		_, ok := mustGet[int](t, c2, "foo")
		return !ok
	})
	for i, c := range []*hybrid.Cache{c1, c2} {
		if f, b, z := read(c, "foo", 11), read(c, "bar", 22), read(c, "baz", 33); f != 11 || b != 2 || z != 33 {
			t.Fatalf("node %d after RemoveByTag(x): foo %d, bar %d, baz %d; want 11, 2, 33", i+1, f, b, z)
		}
	}

	if err := c2.RemoveByTag(context.Background(), "y"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "node 1 to honour RemoveByTag(y)", func() bool {
		_, ok := mustGet[int](t, c1, "bar")
		return !ok
	})
	for i, c := range []*hybrid.Cache{c1, c2} {
		if f, b, z := read(c, "foo", 111), read(c, "bar", 222), read(c, "baz", 333); f != 111 || b != 222 || z != 33 {
			t.Fatalf("node %d after RemoveByTag(y): foo %d, bar %d, baz %d; want 111, 222, 33", i+1, f, b, z)
		}
	}
}

// The same for a cache whose default options skip L2 writes: its
// RemoveByTag still writes the tag's record to Redis, so a node that has
// no backplane (or starts later) learns of it there. It did not before.
func TestFusionNodesSkipL2WriteDefaultInvalidation(t *testing.T) {
	srv := redistest.Start(t)
	a := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{Duration: 10 * time.Minute, SkipL2Write: true})
	b := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{Duration: 10 * time.Minute})
	set(t, b, "foo", 1, hybrid.WithTags("x"))
	if err := a.RemoveByTag(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	c := fnode(t, srv.FastClient(t, ""), nil, hybrid.EntryOptions{Duration: 10 * time.Minute})
	if v, ok := mustGet[int](t, c, "foo"); ok {
		t.Fatalf("a node reading Redis after RemoveByTag(x) got foo = %d, want a miss", v)
	}
}
