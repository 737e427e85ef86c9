package strata_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/redistest"
)

// slowLoad starts a GetOrSet of key on c whose factory returns v once
// release is closed; it returns when the factory has started, and done
// delivers the GetOrSet's result.
func slowLoad(t *testing.T, c *hybrid.Cache, key, v string, release chan struct{}, opts ...hybrid.Option) (done chan error) {
	t.Helper()
	started := make(chan struct{})
	done = make(chan error, 1)
	go func() {
		_, err := hybrid.GetOrSet(context.Background(), c, key, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			close(started)
			<-release
			return v, nil
		}, opts...)
		done <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the factory did not start")
	}
	return done
}

// TestNoResurrectionAcrossNodes: node 1's factory reads v1 and is slow;
// meanwhile node 0 removes (or expires) the key; node 1's load then writes
// v1. Redis must refuse it (it keeps a timestamped removal record, or the
// expired copy with the expiry's timestamp), so that node 2, which never
// held the key, does not serve v1 as fresh.
func TestNoResurrectionAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	skipL2Read := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true })
	for _, tc := range []struct {
		name   string
		before string // written by node 0 before the race, "" for none
		change func(c *hybrid.Cache, key string) error
		stale  string // what node 2 may serve as a fail-safe fallback, "" for nothing
	}{
		{"remove", "", func(c *hybrid.Cache, key string) error { return c.Remove(ctx, key) }, ""},
		{"remove a stored key", "v0", func(c *hybrid.Cache, key string) error { return c.Remove(ctx, key) }, ""},
		{"expire", "", func(c *hybrid.Cache, key string) error { return c.Expire(ctx, key) }, ""},
		{"expire a stored key", "v0", func(c *hybrid.Cache, key string) error { return c.Expire(ctx, key) }, "v0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 4 {
				key := fmt.Sprintf("%s-%d", tc.name, round)
				n0 := bpNode(t, srv.FastClient(t, ""))
				n1 := bpNode(t, srv.FastClient(t, ""))
				n2 := bpNode(t, srv.FastClient(t, ""))
				if tc.before != "" {
					if err := hybrid.Set(ctx, n0, key, tc.before); err != nil {
						t.Fatal(err)
					}
				}
				release := make(chan struct{})
				done := slowLoad(t, n1, key, "v1", release, skipL2Read) // started before the change: older
				if err := tc.change(n0, key); err != nil {
					t.Fatal(err)
				}
				close(release)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if v, ok := get(t, n2, key); ok {
					t.Fatalf("round %d: node 2 served %q as fresh after the %s", round, v, tc.name)
				}
				v, ok := get(t, n2, key, allowStale)
				if tc.stale == "" && ok || tc.stale != "" && v != tc.stale {
					t.Fatalf("round %d: node 2's fallback = %q, %v; want %q", round, v, ok, tc.stale)
				}
			}
		})
	}
}

// TestCorruptValueRepairedBySet: a payload whose checksum fails but whose
// header claims a timestamp far in the future must not block the key: the
// next Set replaces it, and the other nodes read the new value.
func TestCorruptValueRepairedBySet(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rdb := srv.Client(t)
	n0 := bpNode(t, srv.FastClient(t, ""))
	n1 := bpNode(t, srv.FastClient(t, ""))

	bad := (&envelope.Envelope{Timestamp: 1 << 62, FreshUntil: 1 << 62, Type: "string", Value: []byte("\xa5evil")}).Append(nil)
	bad[len(bad)-6] ^= 0x01 // one flipped bit
	if err := rdb.Set(ctx, "app:k", bad, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(t, n1, "k"); ok {
		t.Fatal("a corrupt payload was served")
	}
	if err := hybrid.Set(ctx, n0, "k", "good"); err != nil {
		t.Fatal(err)
	}
	b, err := rdb.Get(ctx, "app:k").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if env, err := envelope.Decode(b); err != nil || env.Removed {
		t.Fatalf("Redis still holds the corrupt payload after Set: %v", err)
	}
	waitValue(t, n1, "k", "good")
}

// TestReplayedRemoveLosesToNewerWrite: a Remove queued while Redis was
// unreachable is replayed newest-wins: a newer write that reached Redis
// meanwhile (from another node) stays, and the stale removal is not
// announced.
func TestReplayedRemoveLosesToNewerWrite(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	proxy := srv.Proxy(t)
	short := func(s *strata.CacheSettings) { s.Entry.L2HardTimeout = 200 * time.Millisecond }
	n0 := bpNode(t, srv.FastClient(t, proxy.Addr()), short)
	n1 := bpNode(t, srv.FastClient(t, ""))
	if err := hybrid.Set(ctx, n0, "k", "v0"); err != nil {
		t.Fatal(err)
	}
	proxy.Pause()
	proxy.ResetAll()
	if err := n0.Remove(ctx, "k"); err != nil { // fails, queued for recovery
		t.Fatal(err)
	}
	redistest.Eventually(t, "the removal to be queued", func() bool { return n0.Stats().RecoveryPending == 1 })
	if err := hybrid.Set(ctx, n1, "k", "newer"); err != nil {
		t.Fatal(err)
	}
	refused := n0.Stats().L2Refused
	proxy.Resume()
	redistest.Eventually(t, "the replay", func() bool { return n0.Stats().RecoveryPending == 0 })
	if got := n0.Stats().L2Refused; got <= refused {
		t.Errorf("L2Refused = %d, want the replayed removal refused", got)
	}
	n2 := bpNode(t, srv.FastClient(t, ""))
	if v, ok := get(t, n2, "k"); !ok || v != "newer" {
		t.Fatalf("after the replay Redis serves %q, %v; want the newer write", v, ok)
	}
	if v, ok := get(t, n1, "k"); !ok || v != "newer" {
		t.Fatalf("node 1 lost its newer value to the replayed removal: %q, %v", v, ok)
	}
}
