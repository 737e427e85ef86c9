package backplane_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/redistest"
)

// inlineRecorder is an InlineHandler that records the keys it is given and
// any call that overlaps another; gapGate, when not nil, holds HandleGap
// until it is closed.
type inlineRecorder struct {
	mu       sync.Mutex
	keys     []string
	inflight atomic.Int32
	overlaps atomic.Int32
	gaps     atomic.Int32
	gapGate  chan struct{}
}

func (r *inlineRecorder) Inline() bool { return true }

func (r *inlineRecorder) enter() {
	if r.inflight.Add(1) != 1 {
		r.overlaps.Add(1)
	}
}

func (r *inlineRecorder) HandleMessage(m backplane.Message) {
	r.enter()
	defer r.inflight.Add(-1)
	r.mu.Lock()
	r.keys = append(r.keys, m.Key)
	r.mu.Unlock()
}

func (r *inlineRecorder) HandleGap() {
	r.enter()
	defer r.inflight.Add(-1)
	if r.gapGate != nil {
		<-r.gapGate
	}
	r.gaps.Add(1)
}

func (r *inlineRecorder) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.keys...)
}

// An InlineHandler gets every message, in order, never two calls at once,
// also when a gap's HandleGap (on the dispatcher) is slow and the messages
// behind it are queued.
func TestRedisInlineHandler(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	admin := srv.Client(t)
	ch := backplane.ChannelName("", "users")
	r := &inlineRecorder{gapGate: make(chan struct{})}
	sub := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: ch}, r)
	pub := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: ch}, nil)
	ctx := context.Background()

	var want []string
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			k := fmt.Sprint("k", i)
			if err := pub.Publish(ctx, backplane.Message{Kind: backplane.KindSet, Cache: "users", Key: k, Timestamp: int64(i)}); err != nil {
				t.Fatal(err)
			}
			want = append(want, k)
		}
	}
	publish(0, 300)
	redistest.Eventually(t, "the first messages", func() bool { return len(r.received()) == 300 })

	// A gap whose handler is held: what follows it waits in the queue.
	if n, err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil || n != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %d, %v", n, err)
	}
	redistest.Eventually(t, "the resubscription", func() bool { return sub.Stats().Resubscribes == 1 })
	publish(300, 310)
	redistest.Eventually(t, "the messages behind the gap to arrive", func() bool { return sub.Stats().Received == 310 })
	if got := len(r.received()); got != 300 {
		t.Fatalf("%d messages handled while HandleGap is held, want 300 (the rest queued behind it)", got)
	}
	close(r.gapGate)
	publish(310, 400)
	redistest.Eventually(t, "every message", func() bool { return len(r.received()) == 400 })

	got := r.received()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d is %q, want %q: out of order", i, got[i], want[i])
		}
	}
	if n := r.overlaps.Load(); n != 0 {
		t.Fatalf("%d handler calls overlapped another", n)
	}
	if n := r.gaps.Load(); n != 1 {
		t.Fatalf("%d gaps, want 1", n)
	}
}
