package hybrid_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// requestSpan puts a span named "request" in ctx, as the caller's own
// span.
func requestSpan(tt *testTracer, ctx context.Context) (context.Context, hybrid.Span) {
	return tt.Start(ctx, "request", hybrid.SpanStart{Attrs: []slog.Attr{slog.String(hybrid.AttrCacheName, "-")}})
}

// A memory hit that slides an entry's expiration writes the extension to
// the distributed tier in the background: work done on the caller's behalf,
// as a BackgroundL2Operations write is, so its "set to cache level" span is
// a child of the caller's span (a memory hit starts none of its own), not
// the root of a trace of its own that nothing leads to; its L2Call event
// carries the caller's context.
func TestSlidingExtensionWriteInCallersTrace(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var tt testTracer
		type ctxKey struct{}
		var calls []hybrid.L2CallEvent
		ev := &hybrid.Events{L2Call: func(e hybrid.L2CallEvent) { calls = append(calls, e) }}
		c := newCache(t, hybrid.Options{Tracer: &tt, Events: ev, L2: &flakyL2{}, Logger: quietLogger(),
			Entry: hybrid.EntryOptions{Duration: time.Hour, SlidingDuration: time.Minute}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "v"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Second) // past half the window: the next hit extends
		synctest.Wait()
		tt.take(t)
		calls = nil
		rctx, req := requestSpan(&tt, ctx)
		rctx, cancel := context.WithCancel(context.WithValue(rctx, ctxKey{}, "request-7"))
		if _, ok, err := hybrid.TryGet[string](rctx, c, "k"); err != nil || !ok {
			t.Fatalf("TryGet = %v, %v", ok, err)
		}
		cancel() // the request ends: the write goes on
		req.End(nil)
		synctest.Wait() // the background write
		got := tt.take(t)
		want := "request > set to cache level {strata.operation.change=set strata.operation.level=l2}"
		if !slices.Contains(got, want) {
			t.Errorf("no span %q in\n  %s", want, strings.Join(got, "\n  "))
		}
		if len(calls) != 1 || calls[0].Ctx.Value(ctxKey{}) != "request-7" {
			t.Errorf("L2Call events %+v; want one, with the caller's context", calls)
		}
	})
}
