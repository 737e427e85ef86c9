package strata_test

// More multi-node scenarios after FusionCache's test suite (L1L2BackplaneTests,
// L1Tests.CanExpire), over real redis-server processes started by the tests
// (internal/redistest). Helpers are those of peer_fusioncache_nodes_test.go.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// L1L2BackplaneTests.CanExpireOnMultiNodes with fail-safe off: FusionCache's
// Expire without fail-safe removes the entry, locally and on the nodes that
// hear it. Strata: the entry, written without fail-safe, is no fallback on
// any node once expired (docs/failsafe.md), not even for AllowStaleOnRead or
// a load with fail-safe on. Node B's memory copy used to stay a fallback
// until the entry's original expiry. With an Expire that asks for
// fail-safe, how the entry was written still decides, in Redis too: node C
// never held the entry, so it can only find a fallback in Redis, which used
// to keep the entry there as a stale copy for FailSafeMaxDuration.
func TestFusionMoreNodesExpireWithoutFailSafe(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []hybrid.Option
	}{
		{"expire-default", nil},
		{"expire-with-fail-safe", []hybrid.Option{hybrid.WithFailSafe(true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			e := hybrid.EntryOptions{Duration: 10 * time.Minute}
			var n [3]*hybrid.Cache
			for i := range n {
				c := srv.FastClient(t, "")
				n[i] = fnode(t, c, c, e)
			}
			a, b := n[0], n[1]
			set(t, a, "foo", 42)
			if v := getInt(t, b, "foo"); v != 42 {
				t.Fatalf("B = %d", v)
			}
			heard(t, b, a, n[2])
			before := b.Stats().BackplaneReceived
			if err := a.Expire(context.Background(), "foo", tc.opts...); err != nil {
				t.Fatal(err)
			}
			received(t, b, before, "B to hear the Expire")
			// C first: what it finds can only come from Redis.
			for _, i := range []int{2, 0, 1} {
				node := n[i]
				if v, ok := mustGet[int](t, node, "foo", staleToo); ok {
					t.Fatalf("node %d: AllowStaleOnRead after Expire = %d; want a miss (written without fail-safe)", i+1, v)
				}
				if v, err := hybrid.GetOrSet(context.Background(), node, "foo", failing[int](), hybrid.WithFailSafe(true)); !errors.Is(err, errDB) {
					t.Fatalf("node %d: GetOrSet with fail-safe after Expire = %d, %v; want the factory's error", i+1, v, err)
				}
			}
		})
	}
}

// L1Tests.GetOrDefaultDoesNotReturnStaleDataWithoutFailSafe for a sliding
// entry on two nodes: left unread past its window, an entry written without
// fail-safe is gone on both, in memory and in Redis (its TTL is the window's
// end), not a fallback until its absolute limit (Duration).
func TestFusionMoreNodesSlidingWithoutFailSafe(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Minute, SlidingDuration: 300 * time.Millisecond}
	ca, cb, cc := srv.FastClient(t, ""), srv.FastClient(t, ""), srv.FastClient(t, "")
	a, b, c := fnode(t, ca, ca, e), fnode(t, cb, cb, e), fnode(t, cc, cc, e)
	set(t, a, "foo", 42)
	if v := getInt(t, b, "foo"); v != 42 {
		t.Fatalf("B = %d", v)
	}
	// Not read meanwhile (a read would slide it): the end of the window
	// shows in Redis, whose TTL it is (and Redis expires the key no
	// earlier than the window's end, the TTL being counted from the write).
	redistest.Eventually(t, "Redis to drop app:foo at the window's end", func() bool {
		n, err := ca.Exists(context.Background(), "app:foo").Result()
		return err == nil && n == 0
	})
	for i, node := range []*hybrid.Cache{a, b, c} {
		if v, ok := mustGet[int](t, node, "foo", staleToo); ok {
			t.Fatalf("node %d: AllowStaleOnRead after the window = %d; want a miss", i+1, v)
		}
	}
}

// An entry written with fail-safe, expired with the cache's default
// options (fail-safe off): how it was written decides, in Redis too. Node
// C, which never held it, finds it in Redis as a stale fallback, as nodes A
// and B find it in memory; Redis used to get a removal record (the call's
// FailSafe off), so C had no fallback while A and B had one.
func TestFusionMoreNodesExpireOfFailSafeEntry(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: 10 * time.Minute}
	var n [3]*hybrid.Cache
	for i := range n {
		c := srv.FastClient(t, "")
		n[i] = fnode(t, c, c, e)
	}
	a, b := n[0], n[1]
	if err := hybrid.Set(context.Background(), a, "foo", 42, hybrid.WithFailSafe(true)); err != nil {
		t.Fatal(err)
	}
	if v := getInt(t, b, "foo"); v != 42 {
		t.Fatalf("B = %d", v)
	}
	heard(t, b, a, n[2])
	before := b.Stats().BackplaneReceived
	if err := a.Expire(context.Background(), "foo"); err != nil {
		t.Fatal(err)
	}
	received(t, b, before, "B to hear the Expire")
	for _, i := range []int{2, 0, 1} { // C first: what it finds can only come from Redis
		node := n[i]
		if v := getInt(t, node, "foo"); v != 0 {
			t.Fatalf("node %d: fresh read after Expire = %d; want a miss", i+1, v)
		}
		// (What a node reads from Redis is a fallback under its own
		// options: the read asks for fail-safe.)
		if v, ok := mustGet[int](t, node, "foo", staleToo, hybrid.WithFailSafe(true)); !ok || v != 42 {
			t.Fatalf("node %d: AllowStaleOnRead after Expire = %d, %v; want the fallback 42", i+1, v, ok)
		}
		if v, err := hybrid.GetOrSet(context.Background(), node, "foo", failing[int](), hybrid.WithFailSafe(true)); err != nil || v != 42 {
			t.Fatalf("node %d: GetOrSet with fail-safe after Expire = %d, %v; want the fallback 42", i+1, v, err)
		}
	}
}
