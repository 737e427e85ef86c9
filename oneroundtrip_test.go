package strata_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// countingHook counts the round trips a client makes: one per command,
// one per pipeline.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// TestWriteIsOneRoundTrip: on a standalone Redis a synchronous Set with L2
// and backplane is one round trip (the newest-wins script publishes the
// message itself), the other node still hears of it, and a write that lost
// to a newer value announces nothing.
func TestWriteIsOneRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	client := srv.FastClient(t, "")
	hook := &countingHook{}
	client.AddHook(hook)
	sync := func(s *strata.CacheSettings) { s.Entry.BackgroundL2Operations = false }
	n1 := bpNode(t, client, sync)
	n2 := bpNode(t, srv.FastClient(t, ""), sync)
	if err := hybrid.Set(ctx, n1, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, n2, "k"); v != "v1" {
		t.Fatalf("setup: %q", v)
	}
	for _, change := range []struct {
		name string
		do   func() error
	}{
		{"Set", func() error { return hybrid.Set(ctx, n1, "k", "v2") }},
		{"Remove", func() error { return n1.Remove(ctx, "k") }},
		{"RemoveByTag", func() error { return n1.RemoveByTag(ctx, "t") }},
	} {
		before, published := hook.n.Load(), n1.Stats().BackplanePublished
		if err := change.do(); err != nil {
			t.Fatal(err)
		}
		want := int64(1)
		if change.name == "RemoveByTag" {
			want = 2 // it reads the tag's record first, to merge an earlier removal
		}
		if got := hook.n.Load() - before; got != want {
			t.Errorf("%s took %d round trips, want %d", change.name, got, want)
		}
		if n1.Stats().BackplanePublished != published+1 {
			t.Errorf("%s: BackplanePublished did not count the announcement", change.name)
		}
	}
	redistest.Eventually(t, "node 2 to hear of the removal", func() bool {
		_, ok := get(t, n2, "k", allowStale)
		return !ok
	})
	// A write that loses to a newer one announces nothing: node 1's slow
	// load started before node 2's Set.
	release := make(chan struct{})
	done := slowLoad(t, n1, "x", "older", release, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true }))
	if err := hybrid.Set(ctx, n2, "x", "newer"); err != nil {
		t.Fatal(err)
	}
	published := n1.Stats().BackplanePublished
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := n1.Stats(); st.BackplanePublished != published || st.L2Refused == 0 {
		t.Fatalf("the losing write: published %d -> %d, L2Refused %d; want nothing announced, the refusal counted",
			published, st.BackplanePublished, st.L2Refused)
	}
	if v, _ := get(t, n2, "x"); v != "newer" {
		t.Fatalf("node 2 holds %q, want the newer write", v)
	}
}
