package backplane_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/redistest"
)

func batchOf(n int) []backplane.Message {
	ms := make([]backplane.Message, n)
	for i := range ms {
		ms[i] = msg(backplane.KindSet, fmt.Sprintf("user:%d", i))
	}
	return ms
}

func checkBatch(t *testing.T, pub backplane.BatchPublisher, rec *recorder) {
	t.Helper()
	ms := batchOf(20)
	bad := msg(backplane.Kind(99), "bad")
	ms = append(ms[:10], append([]backplane.Message{bad}, ms[10:]...)...)
	errs := pub.PublishBatch(t.Context(), ms)
	if len(errs) != len(ms) || !errors.Is(errs[10], backplane.ErrInvalidMessage) {
		t.Fatalf("errs = %v, want ErrInvalidMessage at 10", errs)
	}
	for i, err := range errs {
		if i != 10 && err != nil {
			t.Fatalf("errs[%d] = %v", i, err)
		}
	}
	for i, m := range ms {
		if i != 10 {
			rec.wantMessage(t, m) // in order, each an ordinary message
		}
	}
	if errs := pub.PublishBatch(t.Context(), nil); errs != nil {
		t.Fatalf("empty batch: %v", errs)
	}
}

func TestPublishBatchRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rec := newRecorder()
	newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: "c"}, rec)
	pub := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: "c"}, nil)
	checkBatch(t, pub, rec)
	if got := pub.Stats().Published; got != 20 {
		t.Fatalf("Published = %d, want 20", got)
	}
	pub.Close()
	if errs := pub.PublishBatch(t.Context(), batchOf(2)); len(errs) != 2 || !errors.Is(errs[1], backplane.ErrClosed) {
		t.Fatalf("after Close: %v", errs)
	}
}

func TestPublishBatchRedisClusterSharded(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	ch := backplane.ChannelName("strata", "users")
	rec := newRecorder()
	newRedisBackplane(t, cl.Client(t), backplane.RedisOptions{Channel: ch}, rec)
	pub := newRedisBackplane(t, cl.Client(t), backplane.RedisOptions{Channel: ch}, nil)
	if !pub.Sharded() {
		t.Fatal("cluster backplane not sharded")
	}
	checkBatch(t, pub, rec)
}

func TestPublishBatchMemory(t *testing.T) {
	t.Parallel()
	hub := backplane.NewMemoryHub()
	rec := newRecorder()
	sub := hub.Backplane("c")
	t.Cleanup(func() { sub.Close() })
	if err := sub.Subscribe(rec); err != nil {
		t.Fatal(err)
	}
	pub := hub.Backplane("c")
	t.Cleanup(func() { pub.Close() })
	checkBatch(t, pub, rec)
}
