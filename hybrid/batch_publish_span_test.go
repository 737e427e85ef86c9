package hybrid_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
)

// downBatchBackplane is a memory backplane whose publishes fail (a refused
// connection) while down is set.
type downBatchBackplane struct {
	*backplane.MemoryBackplane
	down atomic.Bool
}

func (b *downBatchBackplane) Publish(ctx context.Context, m backplane.Message) error {
	if b.down.Load() {
		return errRefused
	}
	return b.MemoryBackplane.Publish(ctx, m)
}

func (b *downBatchBackplane) PublishBatch(ctx context.Context, ms []backplane.Message) []error {
	if b.down.Load() {
		errs := make([]error, len(ms))
		for i := range errs {
			errs[i] = errRefused
		}
		return errs
	}
	return b.MemoryBackplane.PublishBatch(ctx, ms)
}

var _ backplane.BatchPublisher = (*downBatchBackplane)(nil)

// The notifications of a batch call sent in one PublishBatch are traced as
// a single key's is: one "publish to backplane" span for the call (no key),
// a child of the batch operation, failed when a message was not sent. A
// SetMany whose messages went out untraced left the trace without the
// publish, and a failed one without its error.
func TestTracerBatchPublishSpan(t *testing.T) {
	t.Parallel()
	bp := &downBatchBackplane{MemoryBackplane: backplane.NewMemoryHub().Backplane("ch")}
	var tt testTracer
	c := newCache(t, hybrid.Options{Name: "app", Tracer: &tt, Backplane: bp, Logger: quietLogger()})
	ctx := context.Background()
	if err := hybrid.SetMany(ctx, c, map[string]int{"a": 1, "b": 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveMany(ctx, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	got := tt.take(t)
	for _, want := range []string{
		"set many to cache > publish to backplane {strata.backplane.message_action=set}",
		"remove many from cache > publish to backplane {strata.backplane.message_action=remove}",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no span %q in\n  %s", want, strings.Join(got, "\n  "))
		}
	}

	bp.down.Store(true)
	if err := hybrid.SetMany(ctx, c, map[string]int{"a": 1, "b": 2}); err != nil {
		t.Fatal(err)
	}
	got = tt.take(t)
	want := "set many to cache > publish to backplane {strata.backplane.message_action=set} err"
	if !slices.Contains(got, want) {
		t.Fatalf("no span %q in\n  %s", want, strings.Join(got, "\n  "))
	}
	// Both messages failed; auto-recovery may already have retried one
	// (and failed again, the backplane still down), so at least 2.
	if st := c.Stats(); st.BackplaneErrors < 2 {
		t.Errorf("BackplaneErrors = %d, want at least 2", st.BackplaneErrors)
	}
}
