package hybrid_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
)

// testTracer records spans as "parent > name {attrs}" lines; the
// OpenTelemetry implementation is tested in hybrid/otelhybrid.
type testTracer struct {
	mu    sync.Mutex
	spans []*testSpan
}

type testSpan struct {
	tr     *testTracer
	name   string
	parent *testSpan
	linked bool
	attrs  map[string]string
	ended  bool
	err    error
}

type spanCtxKey struct{}

func (tt *testTracer) Start(ctx context.Context, name string, o hybrid.SpanStart) (context.Context, hybrid.Span) {
	s := &testSpan{tr: tt, name: name, linked: o.Linked, attrs: map[string]string{}}
	if p, ok := ctx.Value(spanCtxKey{}).(*testSpan); ok {
		s.parent = p
	}
	s.SetAttributes(o.Attrs...)
	tt.mu.Lock()
	tt.spans = append(tt.spans, s)
	tt.mu.Unlock()
	return context.WithValue(ctx, spanCtxKey{}, s), s
}

func (s *testSpan) SetAttributes(attrs ...slog.Attr) {
	s.tr.mu.Lock()
	defer s.tr.mu.Unlock()
	for _, a := range attrs {
		s.attrs[a.Key] = a.Value.String()
	}
}

func (s *testSpan) End(err error) {
	s.tr.mu.Lock()
	defer s.tr.mu.Unlock()
	s.ended, s.err = true, err
}

// take returns the spans as lines and forgets them; every span must have
// ended.
func (tt *testTracer) take(t *testing.T) []string {
	t.Helper()
	tt.mu.Lock()
	defer tt.mu.Unlock()
	var out []string
	for _, s := range tt.spans {
		if !s.ended {
			t.Errorf("span %q not ended", s.name)
		}
		parent := "-"
		if s.parent != nil {
			parent = s.parent.name
		}
		if s.linked {
			parent = "link:" + parent
		}
		var kv []string
		for k, v := range s.attrs {
			if k != hybrid.AttrCacheName {
				kv = append(kv, k+"="+v)
			}
		}
		slices.Sort(kv)
		line := fmt.Sprintf("%s > %s {%s}", parent, s.name, strings.Join(kv, " "))
		if s.err != nil {
			line += " err"
		}
		if s.attrs[hybrid.AttrCacheName] == "" {
			t.Errorf("span %q without %s", s.name, hybrid.AttrCacheName)
		}
		out = append(out, line)
	}
	tt.spans = nil
	return out
}

func wantSpans(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got spans\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestTracerSpans(t *testing.T) {
	t.Parallel()
	hub, l2 := backplane.NewMemoryHub(), &flakyL2{}
	var tt testTracer
	c := newCache(t, hybrid.Options{Name: "app", Tracer: &tt, L2: l2, Backplane: hub.Backplane("ch"), Logger: quietLogger()})
	ctx := context.Background()
	var k counter

	hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil))
	wantSpans(t, "GetOrSet miss", tt.take(t),
		"- > get or set from cache {strata.hit=false}",
		"get or set from cache > get from cache level {strata.hit=false strata.operation.level=l2}",
		"get or set from cache > execute factory {strata.factory.eager_refresh=false strata.operation.background=false}",
		"get or set from cache > set to cache level {strata.operation.change=set strata.operation.level=l2}",
		"get or set from cache > publish to backplane {strata.backplane.message_action=set}",
	)
	hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil))
	mustGet[string](t, c, "k")
	wantSpans(t, "memory hits", tt.take(t))

	other := newCache(t, hybrid.Options{Name: "app", L2: l2, Logger: quietLogger()})
	hybrid.Set(ctx, other, "k2", "v")
	mustGet[string](t, c, "k2")
	wantSpans(t, "TryGet from L2", tt.take(t),
		"- > get from cache {strata.hit=true strata.operation.level=l2}",
		"get from cache > get from cache level {strata.hit=true strata.operation.level=l2}",
		// The first entry read from L2: the Clear record is read too.
		"get from cache > get from cache level {strata.hit=false strata.operation.level=l2}",
	)

	c.Remove(ctx, "k")
	c.Expire(ctx, "k2")
	c.RemoveByTag(ctx, "t")
	c.Clear(ctx, true)
	wantSpans(t, "writes", tt.take(t),
		"- > remove from cache {}",
		"remove from cache > set to cache level {strata.operation.change=remove strata.operation.level=l2}",
		"remove from cache > publish to backplane {strata.backplane.message_action=remove}",
		"- > expire from cache {}",
		"expire from cache > set to cache level {strata.operation.change=expire strata.operation.level=l2}",
		"expire from cache > publish to backplane {strata.backplane.message_action=expire}",
		"- > remove from cache by tag {strata.tags.count=1}",
		"remove from cache by tag > get from cache level {strata.hit=false strata.operation.level=l2}", // the record, merged
		"remove from cache by tag > set to cache level {strata.operation.change=set strata.operation.level=l2}",
		"remove from cache by tag > publish to backplane {strata.backplane.message_action=expire}",
		"- > clear cache {}",
		"clear cache > get from cache level {strata.hit=false strata.operation.level=l2}", // the record, merged
		"clear cache > set to cache level {strata.operation.change=set strata.operation.level=l2}",
		"clear cache > publish to backplane {strata.backplane.message_action=expire}",
	)

	l2.down.Store(true)
	hybrid.GetOrSet(ctx, c, "bad", k.factory("", errDB))
	wantSpans(t, "L2 down, factory error", tt.take(t),
		"- > get or set from cache {strata.hit=false} err",
		"get or set from cache > get from cache level {strata.hit=false strata.operation.level=l2} err",
		"get or set from cache > execute factory {strata.factory.eager_refresh=false strata.operation.background=false} err",
	)
}

// TestTracerKeys: keys are span attributes only with TraceKeys, and never
// with RedactKeys.
func TestTracerKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		traceKeys, redact bool
		want              string
	}{
		{false, false, "- > set to cache {}"},
		{true, false, "- > set to cache {strata.operation.key=secret}"},
		{true, true, "- > set to cache {}"},
	} {
		var tt testTracer
		c := newCache(t, hybrid.Options{Tracer: &tt, TraceKeys: tc.traceKeys, RedactKeys: tc.redact, Logger: quietLogger()})
		hybrid.Set(context.Background(), c, "secret", 1)
		wantSpans(t, fmt.Sprintf("TraceKeys=%v RedactKeys=%v", tc.traceKeys, tc.redact), tt.take(t), tc.want)
	}
}

// TestTracerRecoveryLinked: the replay of a queued change is a span of its
// own, linked to the operation that made the change.
func TestTracerRecoveryLinked(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l2 := &flakyL2{}
		var tt testTracer
		c := newCache(t, hybrid.Options{Tracer: &tt, L2: l2, Logger: quietLogger(), L2CircuitBreakerDuration: 10 * time.Second})
		defer c.Close()
		l2.down.Store(true)
		hybrid.Set(context.Background(), c, "k", "v")
		wantSpans(t, "Set with L2 down", tt.take(t),
			"- > set to cache {}",
			"set to cache > set to cache level {strata.operation.change=set strata.operation.level=l2} err",
		)
		l2.down.Store(false)
		time.Sleep(2 * time.Second) // the breaker's next probe
		synctest.Wait()
		wantSpans(t, "replay", tt.take(t), "link:set to cache > process auto-recovery item {strata.operation.change=set}")
	})
}

// TestTracerBatchSpans: each batch call is one span with its key count;
// its L2 and factory work are children of it; an empty call makes none.
func TestTracerBatchSpans(t *testing.T) {
	t.Parallel()
	var tt testTracer
	c := newCache(t, hybrid.Options{Name: "app", Tracer: &tt, Logger: quietLogger()})
	ctx := context.Background()
	if err := hybrid.SetMany(ctx, c, map[string]int{"a": 1, "b": 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := hybrid.TryGetMany[int](ctx, c, []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveMany(ctx, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := hybrid.TryGetMany[int](ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	got := tt.take(t)
	for _, want := range []string{
		"- > set many to cache {strata.keys.count=2}",
		"- > get many from cache {strata.keys.count=3}",
		"- > remove many from cache {strata.keys.count=1}",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no span %q in\n  %s", want, strings.Join(got, "\n  "))
		}
	}
	if _, err := hybrid.GetOrSetMany(ctx, c, []string{"x"}, func(ctx context.Context, bc *hybrid.BatchContext[int]) (map[string]int, error) {
		return map[string]int{"x": 1}, nil
	}); err != nil {
		t.Fatal(err)
	}
	got = tt.take(t)
	if len(got) == 0 || got[0] != "- > get or set many from cache {strata.keys.count=1}" {
		t.Fatalf("GetOrSetMany spans:\n  %s", strings.Join(got, "\n  "))
	}
	for _, s := range got[1:] {
		if !strings.HasPrefix(s, "get or set many from cache > ") {
			t.Errorf("span %q is not a child of the batch call", s)
		}
	}
}
