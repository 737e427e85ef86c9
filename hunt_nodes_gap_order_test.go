package strata_test

// A receive-queue overflow is handled before the messages already queued
// (they arrived before the dropped one): a value such a message carries
// must not count as verified after the gap, or the node serves it while a
// later change of the key was lost. (Values from messages were verified as
// of their receipt; they are now verified as of their write.)

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// huntSlowBP is a Redis backplane whose handler blocks on the message of
// one key until released: a receiver whose dispatcher is slow for a moment
// (a GC pause, a starved CPU), so that its bounded receive queue overflows.
type huntSlowBP struct {
	*backplane.Redis
	blockKey string
	entered  chan struct{}
	release  chan struct{}
	once     atomic.Bool
}

type huntSlowHandler struct {
	backplane.Handler
	bp *huntSlowBP
}

func (h huntSlowHandler) HandleMessage(m backplane.Message) {
	if m.Key == h.bp.blockKey && h.bp.once.CompareAndSwap(false, true) {
		close(h.bp.entered)
		<-h.bp.release
	}
	h.Handler.HandleMessage(m)
}

func (b *huntSlowBP) Subscribe(h backplane.Handler) error {
	return b.Redis.Subscribe(huntSlowHandler{h, b})
}

func (b *huntSlowBP) StartSubscribe(h backplane.Handler) (<-chan struct{}, error) {
	return b.Redis.StartSubscribe(huntSlowHandler{h, b})
}

// Node B's receive queue overflows: the message of A's second Set of k is
// dropped while the message of A's first Set of k still waits in B's queue.
// The inbox's dispatcher calls HandleGap as soon as the gap is flagged,
// before the messages already queued, so B then applies the older queued
// message after the gap, installing the entry it carries with
// verified = now: that entry passes the gap's "verify before use" check and
// B serves A's first value from memory while L2 holds the second, until the
// entry expires (docs/backplane.md: "no stale value is served: a key
// changed during the gap is read from L2").
func TestHuntNodesGapBeforeQueuedMessagesVerified(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	e := hybrid.EntryOptions{Duration: time.Hour, FailSafe: true}
	ca := srv.FastClient(t, "")
	a := fnode(t, ca, ca, e)
	cb := srv.FastClient(t, "")
	inner, err := backplane.NewRedis(cb, backplane.RedisOptions{Channel: backplane.ChannelName("", "app:"), QueueSize: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	slow := &huntSlowBP{Redis: inner, blockKey: "blocker", entered: make(chan struct{}), release: make(chan struct{})}
	b := newCache(t, hybrid.Options{Name: "app", L2: hybrid.NewRedisL2(cb), Backplane: slow, Logger: quiet,
		WaitForInitialBackplaneSubscribe: 10 * time.Second, Entry: e})

	if err := hybrid.Set(ctx, a, "k", "v0"); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, b, "k"); v != "v0" {
		t.Fatalf("setup: %q", v)
	}
	heard(t, b, a)

	// B's dispatcher stalls on the blocker's message.
	if err := hybrid.Set(ctx, a, "blocker", "x"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-slow.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("B's handler never got the blocker's message")
	}
	if err := hybrid.Set(ctx, a, "k", "v1"); err != nil { // queued at B (the queue holds 1)
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, a, "k", "v2"); err != nil { // dropped at B: a gap
		t.Fatal(err)
	}
	redistest.Eventually(t, "B's queue to drop v2's message", func() bool { return inner.Stats().Dropped >= 1 })
	close(slow.release)
	redistest.Eventually(t, "B to handle the gap and the queued message", func() bool {
		st := b.Stats()
		return st.BackplaneGaps >= 1 && st.BackplaneReceived >= 3 // k=v0, blocker, k=v1
	})
	v, _ := get(t, b, "k")
	l2v, _ := get(t, fnode(t, srv.FastClient(t, ""), nil, e), "k")
	if v != l2v {
		t.Fatalf("after the overflow B serves k = %q while L2 holds %q (B stats %+v)", v, l2v, b.Stats())
	}
}
