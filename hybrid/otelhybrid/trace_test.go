package otelhybrid_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/hybrid/otelhybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

func newTracing(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider, hybrid.Tracer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tr, err := otelhybrid.NewTracer(tp)
	if err != nil {
		t.Fatal(err)
	}
	return rec, tp, tr
}

// tree renders the ended spans as "parent > name {attrs}" lines, in the
// order they ended, with every span's parent looked up by span id.
func tree(spans []sdktrace.ReadOnlySpan) []string {
	names := map[trace.SpanID]string{}
	for _, s := range spans {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	var out []string
	for _, s := range spans {
		parent := "-"
		if p := s.Parent(); p.IsValid() {
			parent = names[p.SpanID()]
			if parent == "" {
				parent = "?"
			}
		}
		var kv []string
		for _, a := range s.Attributes() {
			if a.Key != hybrid.AttrCacheName {
				kv = append(kv, string(a.Key)+"="+a.Value.String())
			}
		}
		slices.Sort(kv)
		line := fmt.Sprintf("%s > %s {%s}", parent, s.Name(), strings.Join(kv, " "))
		if s.Status().Code == codes.Error {
			line += " error"
		}
		out = append(out, line)
	}
	return out
}

func wantTree(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got spans\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func attr(s sdktrace.ReadOnlySpan, k string) attribute.Value {
	for _, a := range s.Attributes() {
		if string(a.Key) == k {
			return a.Value
		}
	}
	return attribute.Value{}
}

// TestTracerRedis: a GetOrSet miss on a cache over a real Redis (L2 and
// backplane) yields one span with children for the L2 read, the factory,
// and the L2 write that also published the message, all in the caller's
// trace; a memory hit yields none.
func TestTracerRedis(t *testing.T) {
	srv := redistest.Start(t)
	rec, tp, tr := newTracing(t)
	client := srv.FastClient(t, "")
	bp, err := backplane.NewRedis(client, backplane.RedisOptions{Channel: "strata", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := hybrid.New(hybrid.Options{Name: "users", L2: hybrid.NewRedisL2(client), Backplane: bp,
		Tracer: tr, Logger: slog.New(slog.DiscardHandler), WaitForInitialBackplaneSubscribe: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	factory := func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
		_, db := tp.Tracer("test").Start(ctx, "db query") // the factory's own work nests under it
		db.End()
		return "v", nil
	}
	if v, err := hybrid.GetOrSet(ctx, c, "k", factory); err != nil || v != "v" {
		t.Fatalf("GetOrSet: %q, %v", v, err)
	}
	if _, err := hybrid.GetOrSet(ctx, c, "k", factory); err != nil { // a memory hit
		t.Fatal(err)
	}
	req.End()
	spans := rec.Ended()
	wantTree(t, "GetOrSet miss then hit", tree(spans),
		"get or set from cache > get from cache level {strata.hit=false strata.operation.level=l2}",
		"execute factory > db query {}",
		"get or set from cache > execute factory {strata.factory.eager_refresh=false strata.operation.background=false}",
		// The newest-wins script publishes the message itself (the backplane
		// shares the client of a standalone Redis): one span for both.
		"get or set from cache > set to cache level {strata.backplane.announced=true strata.operation.change=set strata.operation.level=l2}",
		"request > get or set from cache {strata.hit=false}",
		"- > request {}",
	)
	for _, s := range spans {
		if s.SpanContext().TraceID() != req.SpanContext().TraceID() {
			t.Errorf("span %q is in another trace", s.Name())
		}
		if s.Name() != "request" && s.Name() != "db query" {
			if got := attr(s, hybrid.AttrCacheName).AsString(); got != "users" {
				t.Errorf("span %q: %s = %q", s.Name(), hybrid.AttrCacheName, got)
			}
			if s.SpanKind() != trace.SpanKindInternal {
				t.Errorf("span %q of kind %v", s.Name(), s.SpanKind())
			}
			if s.InstrumentationScope().Name != otelhybrid.ScopeName {
				t.Errorf("span %q of scope %q", s.Name(), s.InstrumentationScope().Name)
			}
		}
	}
}

// TestTracerLinkedAndFailures: an eager refresh is a trace of its own,
// linked to the request whose hit started it; a background completion's
// factory span says so; a failed factory marks its span and the
// operation's (without the key in the message unless keys are traced).
func TestTracerLinkedAndFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec, tp, tr := newTracing(t)
		c, err := hybrid.New(hybrid.Options{Tracer: tr, Logger: slog.New(slog.DiscardHandler), Entry: hybrid.EntryOptions{
			Duration: 10 * time.Second, EagerRefreshThreshold: 0.5, FailSafe: true, FactorySoftTimeout: time.Second,
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		v := func(s string) hybrid.Factory[string] {
			return func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return s, nil }
		}
		hybrid.GetOrSet(context.Background(), c, "k", v("1"))
		rec.Reset()

		time.Sleep(6 * time.Second)
		ctx, req := tp.Tracer("test").Start(context.Background(), "request")
		hybrid.GetOrSet(ctx, c, "k", v("2")) // a hit past the threshold
		req.End()
		synctest.Wait()
		spans := rec.Ended()
		rec.Reset()
		slices.SortFunc(spans, func(a, b sdktrace.ReadOnlySpan) int { return strings.Compare(a.Name(), b.Name()) })
		wantTree(t, "eager refresh", tree(spans),
			"- > eager refresh {strata.hit=false}",
			"eager refresh > execute factory {strata.factory.eager_refresh=true strata.operation.background=false}",
			"- > request {}",
		)
		eager := spans[0]
		if l := eager.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != req.SpanContext().SpanID() {
			t.Fatalf("eager refresh links %v, want the request %v", l, req.SpanContext().SpanID())
		}
		if eager.SpanContext().TraceID() == req.SpanContext().TraceID() {
			t.Fatal("the eager refresh is in the request's trace, want a trace of its own")
		}

		// Background completion: the caller gets the stale value at the
		// soft timeout; the factory's span ends later and says so.
		time.Sleep(11 * time.Second)
		slow := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			time.Sleep(3 * time.Second)
			return "3", nil
		}
		if got, err := hybrid.GetOrSet(context.Background(), c, "k", slow); err != nil || got != "2" {
			t.Fatalf("soft timeout: %q, %v", got, err)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		wantTree(t, "background completion", tree(rec.Ended()),
			"- > get or set from cache {strata.failsafe=factory_timeout strata.hit=false strata.stale=true strata.timeout=soft}",
			"get or set from cache > execute factory {strata.factory.eager_refresh=false strata.operation.background=true}",
		)
		rec.Reset()

		bad := func(context.Context, *hybrid.FactoryContext[int]) (int, error) { return 0, errors.New("db down") }
		if _, err := hybrid.GetOrSet(context.Background(), c, "secret-key", bad); err == nil {
			t.Fatal("no error")
		}
		spans = rec.Ended()
		wantTree(t, "factory error", tree(spans),
			"get or set from cache > execute factory {strata.factory.eager_refresh=false strata.operation.background=false} error",
			"- > get or set from cache {strata.hit=false} error",
		)
		for _, s := range spans {
			if strings.Contains(s.Status().Description, "secret-key") {
				t.Errorf("span %q names the key: %q", s.Name(), s.Status().Description)
			}
		}
	})
}

func TestNewTracerNil(t *testing.T) {
	if _, err := otelhybrid.NewTracer(nil); !errors.Is(err, otelhybrid.ErrNilTracerProvider) {
		t.Fatalf("got %v", err)
	}
}

// TestHitSpanEvents: with WithHitSpanEvents a memory hit, which starts no
// span, shows as an event on the caller's span.
func TestHitSpanEvents(t *testing.T) {
	rec, tp, _ := newTracing(t)
	ev, err := otelhybrid.Events(noopMeter{}, otelhybrid.WithHitSpanEvents())
	if err != nil {
		t.Fatal(err)
	}
	c, err := hybrid.New(hybrid.Options{Name: "users", Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hybrid.Set(context.Background(), c, "k", 1)
	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	if _, ok, _ := hybrid.TryGet[int](ctx, c, "k"); !ok {
		t.Fatal("miss")
	}
	req.End()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("got %d spans, want the request's only", len(spans))
	}
	evs := spans[0].Events()
	if len(evs) != 1 || evs[0].Name != "strata.cache.hit" {
		t.Fatalf("events of the request's span: %+v", evs)
	}
	got := map[string]string{}
	for _, a := range evs[0].Attributes {
		got[string(a.Key)] = a.Value.String()
	}
	if got[hybrid.AttrCacheName] != "users" || got[hybrid.AttrTier] != "l1" {
		t.Fatalf("event attributes: %v", got)
	}
}

type noopMeter struct{ noop.MeterProvider }
