package backplane_test

import (
	"context"
	"errors"
	"testing"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/backplanetest"
)

func TestMemoryHubDelivers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hub := backplane.NewMemoryHub()
	a, b := hub.Backplane("ch"), hub.Backplane("ch")
	other := hub.Backplane("other")
	t.Cleanup(func() { a.Close(); b.Close(); other.Close() })
	ra, rb, ro := newRecorder(), newRecorder(), newRecorder()
	for _, s := range []struct {
		bp backplane.Backplane
		r  *recorder
	}{{a, ra}, {b, rb}, {other, ro}} {
		if err := s.bp.Subscribe(s.r); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}

	m1 := msg(backplane.KindSet, "k1\xff")
	if err := a.Publish(ctx, m1); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	rb.wantMessage(t, m1)
	ra.wantMessage(t, m1) // the sender gets its own message too
	m2 := msg(backplane.KindRemove, "k2")
	if err := b.Publish(ctx, m2); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	ra.wantMessage(t, m2)
	rb.wantMessage(t, m2)

	// The other channel is isolated: its first message is its own probe.
	probe := msg(backplane.KindClear, "")
	if err := other.Publish(ctx, probe); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	ro.wantMessage(t, probe)
	ra.wantNoGap(t)

	st := a.Stats()
	if st.Published != 1 || st.Received != 2 || st.Dropped != 0 || st.Gaps != 0 {
		t.Errorf("Stats = %+v, want Published 1, Received 2", st)
	}
}

func TestMemoryHubOrderPreserved(t *testing.T) {
	t.Parallel()
	hub := backplane.NewMemoryHub()
	a, b := hub.Backplane("ch"), hub.Backplane("ch")
	t.Cleanup(func() { a.Close(); b.Close() })
	rb := newRecorder()
	if err := b.Subscribe(rb); err != nil {
		t.Fatal(err)
	}
	var want []backplane.Message
	for i := range 1000 {
		m := backplane.Message{Kind: backplane.KindSet, Cache: "c", Key: "k", Source: "a", Timestamp: int64(i)}
		want = append(want, m)
		if err := a.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range want {
		rb.wantMessage(t, m)
	}
}

func TestMemoryHubSimulateGap(t *testing.T) {
	t.Parallel()
	hub := backplane.NewMemoryHub()
	a := hub.Backplane("ch")
	t.Cleanup(func() { a.Close() })
	r := newRecorder()
	if err := a.Subscribe(r); err != nil {
		t.Fatal(err)
	}
	r.wantNoGap(t)
	backplanetest.SimulateGap(hub, "ch")
	r.wantGap(t)
	m := msg(backplane.KindExpire, "k")
	if err := a.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	r.wantMessage(t, m)
	if st := a.Stats(); st.Gaps != 1 || st.Resubscribes != 1 {
		t.Errorf("Stats = %+v, want Gaps 1, Resubscribes 1", st)
	}
}

func TestMemoryBackplaneLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hub := backplane.NewMemoryHub()
	a, b := hub.Backplane("ch"), hub.Backplane("ch")
	ra := newRecorder()
	if err := a.Subscribe(ra); err != nil {
		t.Fatal(err)
	}
	if err := a.Subscribe(newRecorder()); !errors.Is(err, backplane.ErrSubscribed) {
		t.Errorf("second Subscribe = %v, want ErrSubscribed", err)
	}
	if err := b.Subscribe(nil); err == nil {
		t.Error("Subscribe(nil) = nil, want an error")
	}
	if err := b.Publish(ctx, backplane.Message{Kind: 9}); !errors.Is(err, backplane.ErrInvalidMessage) {
		t.Errorf("Publish(kind 9) = %v, want ErrInvalidMessage", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Publish(cctx, msg(backplane.KindSet, "k")); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish(cancelled ctx) = %v, want context.Canceled", err)
	}
	for range 2 {
		if err := a.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
	if err := a.Publish(ctx, msg(backplane.KindSet, "k")); !errors.Is(err, backplane.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := a.Subscribe(newRecorder()); !errors.Is(err, backplane.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	// A closed backplane no longer receives; the others still publish fine.
	if err := b.Publish(ctx, msg(backplane.KindSet, "k")); err != nil {
		t.Errorf("Publish = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close of a never-subscribed backplane = %v", err)
	}
	select {
	case m := <-ra.msgs:
		t.Errorf("closed backplane received %+v", m)
	default:
	}
}

func BenchmarkMemoryPublish(b *testing.B) {
	hub := backplane.NewMemoryHub()
	pub, sub := hub.Backplane("ch"), hub.Backplane("ch")
	defer pub.Close()
	defer sub.Close()
	if err := sub.Subscribe(discard{}); err != nil {
		b.Fatal(err)
	}
	m := msg(backplane.KindSet, "key")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = pub.Publish(ctx, m)
	}
}

type discard struct{}

func (discard) HandleMessage(backplane.Message) {}
func (discard) HandleGap()                      {}
