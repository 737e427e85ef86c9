package otelhybrid_test

// Peer tests: the expectations of OpenTelemetry Go's own test tooling
// (sdk/trace/tracetest's SpanRecorder, sdk/metric's ManualReader) and of
// the semantic conventions (spans always ended, status Error only for
// failures, parent/child through the context, metric names, units and
// kinds, monotonic counters, no unbounded attributes), checked through
// the real SDK against docs/observability.md.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/hybrid/otelhybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

var peerDiscard = slog.New(slog.DiscardHandler)

// peerAllEnded fails unless every span the SDK saw start has ended.
func peerAllEnded(t *testing.T, what string, rec *tracetest.SpanRecorder) {
	t.Helper()
	ended := map[trace.SpanID]bool{}
	for _, s := range rec.Ended() {
		ended[s.SpanContext().SpanID()] = true
	}
	for _, s := range rec.Started() {
		if !ended[s.SpanContext().SpanID()] {
			t.Errorf("%s: span %q started and never ended", what, s.Name())
		}
	}
}

// peerByName returns the ended spans named name.
func peerByName(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func peerOne(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	got := peerByName(spans, name)
	if len(got) != 1 {
		t.Fatalf("%d spans %q, want 1:\n  %s", len(got), name, strings.Join(tree(spans), "\n  "))
	}
	return got[0]
}

// peerWantChild checks that child is a child of parent (same trace,
// parent id), and ended no later than it unless it is allowed to outlive it.
func peerWantChild(t *testing.T, parent, child sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("%q is in trace %v, want %q's %v", child.Name(), child.SpanContext().TraceID(), parent.Name(), parent.SpanContext().TraceID())
	}
	if child.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("%q has parent %v, want %q (%v)", child.Name(), child.Parent().SpanID(), parent.Name(), parent.SpanContext().SpanID())
	}
	if child.EndTime().After(parent.EndTime()) {
		t.Errorf("%q ended after its parent %q", child.Name(), parent.Name())
	}
}

// peerText is everything a span exports as text: name, attributes, status
// description, events and their attributes, links' attributes.
func peerText(s sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|", s.Name(), s.Status().Description)
	for _, a := range s.Attributes() {
		fmt.Fprintf(&b, "%s=%s|", a.Key, a.Value.String())
	}
	for _, e := range s.Events() {
		fmt.Fprintf(&b, "event %s|", e.Name)
		for _, a := range e.Attributes {
			fmt.Fprintf(&b, "%s=%s|", a.Key, a.Value.String())
		}
	}
	for _, l := range s.Links() {
		for _, a := range l.Attributes {
			fmt.Fprintf(&b, "%s=%s|", a.Key, a.Value.String())
		}
	}
	return b.String()
}

func peerMetrics(t *testing.T, opts ...otelhybrid.Option) (*sdkmetric.ManualReader, *hybrid.Events) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	ev, err := otelhybrid.Events(mp, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return reader, ev
}

// peerCollect reads every metric of the adapter's scope, by name.
func peerCollect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelhybrid.ScopeName {
			t.Errorf("metrics of scope %q, want %q", sm.Scope.Name, otelhybrid.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// peerSum is the value of the int64 counter name's data point whose
// attributes include kv (all of them summed when kv is empty).
func peerSum(m map[string]metricdata.Metrics, name string, kv ...attribute.KeyValue) int64 {
	s, ok := m[name].Data.(metricdata.Sum[int64])
	if !ok {
		return 0
	}
	var n int64
	for _, dp := range s.DataPoints {
		match := true
		for _, want := range kv {
			if v, ok := dp.Attributes.Value(want.Key); !ok || v != want.Value {
				match = false
			}
		}
		if match {
			n += dp.Value
		}
	}
	return n
}

// peerAttrSets returns every attribute set of metric m's data points.
func peerAttrSets(m metricdata.Metrics) []attribute.Set {
	var out []attribute.Set
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes)
		}
	}
	return out
}

// TestOTelSpansEndOnEveryPath: with the SDK's SpanRecorder, every span
// the cache starts ends, whatever the outcome: success, factory error,
// hard timeout (the factory completing later), a caller's cancellation,
// a factory panic, a load cut by Close, every write, the batch calls.
func TestOTelSpansEndOnEveryPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec, tp, tr := newTracing(t)
		c, err := hybrid.New(hybrid.Options{Name: "paths", Tracer: tr, Logger: peerDiscard,
			Entry: hybrid.EntryOptions{Duration: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, req := tp.Tracer("test").Start(context.Background(), "request")
		ok := func(context.Context, *hybrid.FactoryContext[int]) (int, error) { return 1, nil }
		if _, err := hybrid.GetOrSet(ctx, c, "ok", ok); err != nil {
			t.Fatal(err)
		}
		if _, err := hybrid.GetOrSet(ctx, c, "err", func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
			return 0, errors.New("db down")
		}); err == nil {
			t.Fatal("factory error: no error")
		}

		// Hard timeout: the caller gets ErrFactoryTimeout; the factory
		// completes in the background once released.
		release := make(chan struct{})
		slow := func(context.Context, *hybrid.FactoryContext[int]) (int, error) { <-release; return 2, nil }
		_, err = hybrid.GetOrSet(ctx, c, "slow", slow, hybrid.WithOptions(func(o *hybrid.EntryOptions) {
			o.FactoryHardTimeout = time.Second
		}))
		if !errors.Is(err, hybrid.ErrFactoryTimeout) {
			t.Fatalf("hard timeout: %v", err)
		}
		close(release)
		synctest.Wait()

		// The caller's cancellation while the factory runs.
		cctx, cancel := context.WithCancel(ctx)
		started, release2 := make(chan struct{}), make(chan struct{})
		done := make(chan error)
		go func() {
			_, err := hybrid.GetOrSet(cctx, c, "cancel", func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
				close(started)
				<-release2
				return 3, nil
			})
			done <- err
		}()
		<-started
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled: %v", err)
		}
		close(release2)
		synctest.Wait()

		// A factory panic, re-raised in the caller.
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the factory's panic was not re-raised")
				}
			}()
			hybrid.GetOrSet(ctx, c, "panic", func(context.Context, *hybrid.FactoryContext[int]) (int, error) { panic("boom") })
		}()

		hybrid.Set(ctx, c, "w", 1)
		c.Expire(ctx, "w")
		c.Remove(ctx, "w")
		hybrid.Set(ctx, c, "t", 1, hybrid.WithTags("tag"))
		c.RemoveByTag(ctx, "tag")
		c.Clear(ctx, false)
		bf := func(_ context.Context, bc *hybrid.BatchContext[int]) (map[string]int, error) {
			m := map[string]int{}
			for _, k := range bc.Keys() {
				m[k] = 1
			}
			return m, nil
		}
		hybrid.GetOrSetMany(ctx, c, []string{"b1", "b2"}, bf)
		hybrid.GetOrSetMany(ctx, c, []string{"b3"}, func(context.Context, *hybrid.BatchContext[int]) (map[string]int, error) {
			return nil, errors.New("batch down")
		})
		hybrid.TryGetMany[int](ctx, c, []string{"b1", "x"})
		hybrid.SetMany(ctx, c, map[string]int{"s1": 1, "s2": 2})
		c.RemoveMany(ctx, []string{"s1", "s2"})

		// A load cut by Close: the factory sees its context cancelled.
		inFactory := make(chan struct{})
		closedErr := make(chan error)
		go func() {
			_, err := hybrid.GetOrSet(ctx, c, "closing", func(fctx context.Context, _ *hybrid.FactoryContext[int]) (int, error) {
				close(inFactory)
				<-fctx.Done()
				return 0, fctx.Err()
			})
			closedErr <- err
		}()
		<-inFactory
		c.Close()
		if err := <-closedErr; err == nil {
			t.Error("a load cut by Close: no error")
		}
		// After Close: errors, and no span left open.
		if _, err := hybrid.GetOrSet(ctx, c, "after", ok); !errors.Is(err, hybrid.ErrClosed) {
			t.Errorf("GetOrSet after Close: %v", err)
		}
		hybrid.Set(ctx, c, "after", 1)
		hybrid.GetOrSetMany(ctx, c, []string{"after"}, bf)
		req.End()
		synctest.Wait()

		peerAllEnded(t, "every path", rec)
		spans := rec.Ended()
		for _, name := range []string{hybrid.SpanGetOrSet, hybrid.SpanFactory, hybrid.SpanSet, hybrid.SpanExpire,
			hybrid.SpanRemove, hybrid.SpanRemoveByTag, hybrid.SpanClear, hybrid.SpanGetOrSetMany,
			hybrid.SpanTryGetMany, hybrid.SpanSetMany, hybrid.SpanRemoveMany} {
			if len(peerByName(spans, name)) == 0 {
				t.Errorf("no span %q", name)
			}
		}
		for _, s := range spans {
			if s.Name() == "request" {
				continue
			}
			if s.SpanKind() != trace.SpanKindInternal {
				t.Errorf("span %q of kind %v, want internal", s.Name(), s.SpanKind())
			}
			if s.SpanContext().TraceID() != req.SpanContext().TraceID() {
				t.Errorf("span %q is in another trace", s.Name())
			}
			if s.Status().Code == codes.Ok {
				t.Errorf("span %q has status Ok: instrumentation leaves it Unset", s.Name())
			}
			// A span with status Error carries the exception event.
			if s.Status().Code == codes.Error && !slices.ContainsFunc(s.Events(), func(e sdktrace.Event) bool { return e.Name == "exception" }) {
				t.Errorf("span %q has status Error without an exception event", s.Name())
			}
		}
		// A memory-only TryGet never starts a span (docs: "a TryGet that
		// missed memory, on a cache with L2").
		if n := len(peerByName(spans, hybrid.SpanTryGet)); n != 0 {
			t.Errorf("%d %q spans on a memory-only cache", n, hybrid.SpanTryGet)
		}
	})
}

// TestOTelRedisGetOrSetParentChild: a GetOrSet that reads Redis and runs
// the factory is one span under the caller's, whose children (L2 read,
// factory, L2 write) have it as parent by span id and end before it; the
// factory's ctx carries its span. A second instance reading the entry
// from Redis has an L2 hit span and no factory.
func TestOTelRedisGetOrSetParentChild(t *testing.T) {
	srv := redistest.Start(t)
	rec, tp, tr := newTracing(t)
	mk := func() *hybrid.Cache {
		c, err := hybrid.New(hybrid.Options{Name: "users", L2: hybrid.NewRedisL2(srv.FastClient(t, "")),
			KeyPrefix: "peer:", Tracer: tr, Logger: peerDiscard})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := mk(), mk()

	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	var inFactory trace.SpanContext
	v, err := hybrid.GetOrSet(ctx, a, "k", func(fctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
		inFactory = trace.SpanContextFromContext(fctx)
		return "v", nil
	})
	if err != nil || v != "v" {
		t.Fatalf("GetOrSet: %q, %v", v, err)
	}
	req.End()
	spans := rec.Ended()
	op := peerOne(t, spans, hybrid.SpanGetOrSet)
	peerWantChild(t, peerOne(t, spans, "request"), op)
	for _, name := range []string{hybrid.SpanL2Get, hybrid.SpanFactory, hybrid.SpanL2Set} {
		s := peerOne(t, spans, name)
		peerWantChild(t, op, s)
		if s.Status().Code != codes.Unset {
			t.Errorf("%q: status %v, want Unset", name, s.Status())
		}
	}
	if f := peerOne(t, spans, hybrid.SpanFactory); inFactory.SpanID() != f.SpanContext().SpanID() {
		t.Errorf("the factory's ctx carries span %v, want %q's %v", inFactory.SpanID(), f.Name(), f.SpanContext().SpanID())
	}
	if got := attr(op, hybrid.AttrHit); got.Type() != attribute.BOOL || got.AsBool() {
		t.Errorf("%s on the miss: %v", hybrid.AttrHit, got.String())
	}
	if got := attr(peerOne(t, spans, hybrid.SpanL2Get), hybrid.AttrTier).AsString(); got != "l2" {
		t.Errorf("%s on the L2 read: %q", hybrid.AttrTier, got)
	}
	peerAllEnded(t, "miss", rec)

	rec.Reset()
	ctx, req = tp.Tracer("test").Start(context.Background(), "request")
	if v, err := hybrid.GetOrSet(ctx, b, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		t.Error("the factory ran on an L2 hit")
		return "", nil
	}); err != nil || v != "v" {
		t.Fatalf("GetOrSet from L2: %q, %v", v, err)
	}
	req.End()
	spans = rec.Ended()
	op = peerOne(t, spans, hybrid.SpanGetOrSet)
	// Two reads of Redis: the entry, and the invalidation (Clear) record
	// checked before the entry is used; docs: "get from cache level ... one
	// read of Redis: an entry, or a tag or Clear record".
	l2reads := peerByName(spans, hybrid.SpanL2Get)
	hits := 0
	for _, l2 := range l2reads {
		peerWantChild(t, op, l2)
		if attr(l2, hybrid.AttrHit).AsBool() {
			hits++
		}
	}
	if hits != 1 || !attr(op, hybrid.AttrHit).AsBool() || attr(op, hybrid.AttrTier).AsString() != "l2" {
		t.Errorf("L2 hit: spans\n  %s", strings.Join(tree(spans), "\n  "))
	}
	if n := len(peerByName(spans, hybrid.SpanFactory)); n != 0 {
		t.Errorf("%d factory spans on an L2 hit", n)
	}
	peerAllEnded(t, "L2 hit", rec)
}

// TestOTelStatusErrorOnlyOnFailure: a miss, a stale fallback
// (fail-safe), a stale read (AllowStaleOnRead) and a cached "not found"
// leave the operation span's status Unset; the failed factory behind a
// fail-safe fallback is an Error on its own span (docs: "the factory's
// own error is on execute factory").
func TestOTelStatusErrorOnlyOnFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec, _, tr := newTracing(t)
		c, err := hybrid.New(hybrid.Options{Tracer: tr, Logger: peerDiscard, Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeMaxDuration: time.Hour, FailSafeThrottleDuration: time.Second,
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		hybrid.Set(ctx, c, "k", "old")
		time.Sleep(2 * time.Second) // virtual time: the entry is stale
		rec.Reset()
		v, err := hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			return "", errors.New("db down")
		})
		if err != nil || v != "old" {
			t.Fatalf("fail-safe: %q, %v", v, err)
		}
		spans := rec.Ended()
		op := peerOne(t, spans, hybrid.SpanGetOrSet)
		if op.Status().Code != codes.Unset {
			t.Errorf("fail-safe fallback: operation status %v, want Unset (the caller got a value)", op.Status())
		}
		if !attr(op, hybrid.AttrStale).AsBool() || attr(op, hybrid.AttrFailSafe).AsString() != "factory_error" {
			t.Errorf("fail-safe attributes: %s", strings.Join(tree(spans), "; "))
		}
		if f := peerOne(t, spans, hybrid.SpanFactory); f.Status().Code != codes.Error || f.Status().Description != "db down" {
			t.Errorf("the failed factory: status %v, want Error \"db down\"", f.Status())
		}

		// A factory answering "not found" is not a failure.
		rec.Reset()
		hybrid.GetOrSet(ctx, c, "none", func(_ context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			return "", nil
		})
		for _, s := range rec.Ended() {
			if s.Status().Code != codes.Unset {
				t.Errorf("a plain load: %q status %v", s.Name(), s.Status())
			}
		}
		peerAllEnded(t, "status", rec)
	})
}

// TestOTelRedisStatusOnMissAndL2Trouble: over Redis, a TryGet miss, a
// stale read with AllowStaleOnRead, and an L2 read cut by the L2 timeout
// (a miss, strata.timeout=l2) leave the spans Unset; an L2 error that the
// cache absorbs marks the L2 span only, not the operation that succeeded.
func TestOTelRedisStatusOnMissAndL2Trouble(t *testing.T) {
	srv := redistest.Start(t)
	rec, _, tr := newTracing(t)
	c, err := hybrid.New(hybrid.Options{L2: hybrid.NewRedisL2(srv.FastClient(t, "")), KeyPrefix: "peer:",
		Tracer: tr, Logger: peerDiscard, DisableL2CircuitBreaker: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	if _, ok, err := hybrid.TryGet[string](ctx, c, "absent"); ok || err != nil {
		t.Fatalf("TryGet miss: %v, %v", ok, err)
	}
	spans := rec.Ended()
	op := peerOne(t, spans, hybrid.SpanTryGet)
	peerWantChild(t, op, peerOne(t, spans, hybrid.SpanL2Get))
	for _, s := range spans {
		if s.Status().Code != codes.Unset {
			t.Errorf("a miss: span %q status %v, want Unset", s.Name(), s.Status())
		}
	}
	if attr(op, hybrid.AttrHit).AsBool() {
		t.Errorf("TryGet miss: %s", strings.Join(tree(spans), "; "))
	}

	// An L2 error (WRONGTYPE) the cache absorbs: the factory answers.
	rec.Reset()
	if err := srv.Client(t).LPush(ctx, "peer:wrong", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := hybrid.GetOrSet(ctx, c, "wrong", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "v", nil
	}, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Write = true })); err != nil || v != "v" {
		t.Fatalf("GetOrSet over WRONGTYPE: %q, %v", v, err)
	}
	spans = rec.Ended()
	if s := peerOne(t, spans, hybrid.SpanL2Get); s.Status().Code != codes.Error {
		t.Errorf("the failed L2 read: status %v, want Error", s.Status())
	}
	if s := peerOne(t, spans, hybrid.SpanGetOrSet); s.Status().Code != codes.Unset {
		t.Errorf("GetOrSet answered by the factory: status %v, want Unset", s.Status())
	}

	// An L2 read cut by the L2 timeout: Redis suspended.
	rec.Reset()
	srv.Suspend(t)
	_, ok, err := hybrid.TryGet[string](ctx, c, "slow", hybrid.WithOptions(func(o *hybrid.EntryOptions) {
		o.L2HardTimeout = 50 * time.Millisecond
	}))
	srv.Resume(t)
	if ok || err != nil {
		t.Fatalf("TryGet with Redis suspended: %v, %v", ok, err)
	}
	spans = rec.Ended()
	l2 := peerOne(t, spans, hybrid.SpanL2Get)
	if attr(l2, hybrid.AttrTimeout).AsString() != "l2" {
		t.Errorf("L2 timeout: %s", strings.Join(tree(spans), "; "))
	}
	for _, s := range spans {
		if s.Status().Code != codes.Unset {
			t.Errorf("an L2 timeout (a miss): span %q status %v, want Unset", s.Name(), s.Status())
		}
	}
	peerAllEnded(t, "redis status", rec)
}

// TestOTelOperationSpansNameNoKey: without TraceKeys, no span carries the
// key as an attribute and the operation spans' errors name no key (docs:
// "Unless keys are traced, the operation span's error message names no
// key"); with TraceKeys and RedactKeys together the key attribute is
// absent ("never with RedactKeys").
func TestOTelOperationSpansNameNoKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const secret = "acct-4711-secret"
		for _, o := range []hybrid.Options{{}, {TraceKeys: true, RedactKeys: true}, {RedactKeys: true}} {
			rec, _, tr := newTracing(t)
			o.Tracer, o.Logger = tr, peerDiscard
			o.Entry = hybrid.EntryOptions{FactoryHardTimeout: time.Second}
			c, err := hybrid.New(o)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			hybrid.GetOrSet(ctx, c, secret, func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
				return 0, errors.New("db down")
			})
			release := make(chan struct{})
			hybrid.GetOrSet(ctx, c, secret+"-slow", func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
				<-release
				return 1, nil
			})
			close(release)
			hybrid.Set(ctx, c, secret, "string")
			hybrid.GetOrSet(ctx, c, secret, func(context.Context, *hybrid.FactoryContext[int]) (int, error) { return 1, nil }) // type mismatch
			c.Remove(ctx, secret)
			hybrid.GetOrSetMany(ctx, c, []string{secret + "-b"}, func(context.Context, *hybrid.BatchContext[int]) (map[string]int, error) {
				return nil, errors.New("batch down")
			})
			c.Close()
			synctest.Wait()
			errorSpans := 0
			for _, s := range rec.Ended() {
				if s.Status().Code == codes.Error {
					errorSpans++
				}
				if s.Name() == hybrid.SpanFactory {
					continue // the factory's own error, as it returned it
				}
				if txt := peerText(s); strings.Contains(txt, "4711") {
					t.Errorf("TraceKeys=%v RedactKeys=%v: span %q names the key: %s", o.TraceKeys, o.RedactKeys, s.Name(), txt)
				}
			}
			if errorSpans < 3 {
				t.Errorf("only %d spans with status Error:\n  %s", errorSpans, strings.Join(tree(rec.Ended()), "\n  "))
			}
			peerAllEnded(t, "keys", rec)
		}
	})
}

// peerInstrument is what docs/observability.md states of an instrument.
type peerInstrument struct {
	kind  string              // "counter", "updown", "histogram"
	unit  string              // "" when the doc states none
	attrs map[string][]string // key -> allowed values (nil: any)
}

// The instrument table of docs/observability.md.
var peerDocInstruments = map[string]peerInstrument{
	"strata.cache.hits":                    {"counter", "", map[string][]string{"cache": nil, "tier": {"l1", "l2"}}},
	"strata.cache.misses":                  {"counter", "", map[string][]string{"cache": nil, "tier": {"l1", "l2"}}},
	"strata.cache.factory.calls":           {"counter", "", map[string][]string{"cache": nil, "error": {"true", "false"}}},
	"strata.cache.factory.duration":        {"histogram", "s", map[string][]string{"cache": nil, "error": {"true", "false"}}},
	"strata.cache.failsafe.activations":    {"counter", "", map[string][]string{"cache": nil, "reason": {"factory_error", "factory_timeout"}}},
	"strata.cache.eager_refreshes":         {"counter", "", map[string][]string{"cache": nil}},
	"strata.cache.l2.errors":               {"counter", "", map[string][]string{"cache": nil, "op": {"get", "set", "remove", "expire", "recover", "lock"}, "class": {"transient", "config", "other", "timeout"}}},
	"strata.cache.l2.circuit_breaker.open": {"updown", "", map[string][]string{"cache": nil}},
	"strata.cache.backplane.messages":      {"counter", "", map[string][]string{"cache": nil, "direction": {"sent", "received"}, "error": {"true", "false"}}},
	"strata.cache.backplane.gaps":          {"counter", "", map[string][]string{"cache": nil}},
	"strata.cache.stale_served":            {"counter", "", map[string][]string{"cache": nil}},
	"strata.cache.factory.timeouts":        {"counter", "", map[string][]string{"cache": nil, "kind": {"soft", "hard"}, "failsafe": {"true", "false"}}},
	"strata.cache.recovery.changes":        {"counter", "", map[string][]string{"cache": nil, "action": {"queued", "dropped", "replayed"}}},
	// The table lists get, set, remove, expire, recover; the Prometheus
	// section of the same doc says batch calls report "one L2Call event per
	// MGET or pipeline (get-many, set-many)", and the L2Call event table
	// lists lock and unlock: those are documented too.
	"strata.cache.l2.duration": {"histogram", "s", map[string][]string{"cache": nil, "op": {"get", "set", "remove", "expire", "recover", "get-many", "set-many", "lock", "unlock"}, "error": {"true", "false"}}},
}

// peerCheckMetrics checks every collected metric against the doc's table:
// a known name, its kind (monotonic sum, non-monotonic sum, histogram),
// cumulative temporality, its unit, its attribute keys and values, no
// value below zero on a counter, and no key among the attribute values.
func peerCheckMetrics(t *testing.T, got map[string]metricdata.Metrics, keys []string) {
	t.Helper()
	for name, m := range got {
		doc, ok := peerDocInstruments[name]
		if !ok {
			t.Errorf("instrument %q is not in docs/observability.md", name)
			continue
		}
		if doc.unit != "" && m.Unit != doc.unit {
			t.Errorf("%s: unit %q, want %q", name, m.Unit, doc.unit)
		}
		if m.Unit == "" || m.Description == "" {
			t.Errorf("%s: unit %q, description %q: both expected", name, m.Unit, m.Description)
		}
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			if want := doc.kind == "counter"; d.IsMonotonic != want || doc.kind == "histogram" {
				t.Errorf("%s: a sum, monotonic=%v; the doc says %s", name, d.IsMonotonic, doc.kind)
			}
			if d.Temporality != metricdata.CumulativeTemporality {
				t.Errorf("%s: temporality %v", name, d.Temporality)
			}
			for _, dp := range d.DataPoints {
				if dp.Value < 0 {
					t.Errorf("%s%v = %d, below zero", name, dp.Attributes.ToSlice(), dp.Value)
				}
			}
		case metricdata.Histogram[float64]:
			if doc.kind != "histogram" {
				t.Errorf("%s: a histogram; the doc says %s", name, doc.kind)
			}
			for _, dp := range d.DataPoints {
				if min, ok := dp.Min.Value(); ok && min < 0 {
					t.Errorf("%s: a negative duration %v", name, min)
				}
			}
		default:
			t.Errorf("%s: data of type %T", name, m.Data)
		}
		for _, set := range peerAttrSets(m) {
			for _, kv := range set.ToSlice() {
				allowed, ok := doc.attrs[string(kv.Key)]
				if !ok {
					t.Errorf("%s: attribute %s=%s is not in the doc's table", name, kv.Key, kv.Value.String())
					continue
				}
				if allowed != nil && !slices.Contains(allowed, kv.Value.String()) {
					t.Errorf("%s: %s=%q, the doc lists %v", name, kv.Key, kv.Value.String(), allowed)
				}
				if slices.Contains(keys, kv.Value.String()) {
					t.Errorf("%s: a key as an attribute value: %s=%s", name, kv.Key, kv.Value.String())
				}
			}
			for k := range doc.attrs {
				if !set.HasValue(attribute.Key(k)) {
					t.Errorf("%s: data point %v without attribute %q", name, set.ToSlice(), k)
				}
			}
		}
	}
}

// TestOTelMetricsMemoryOnly: through the SDK's ManualReader, the
// instruments a memory cache records match the doc's table (name, kind,
// unit, attributes), agree with Stats, stay monotonic from one collection
// to the next, and do not grow with the number of keys.
func TestOTelMetricsMemoryOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, ev := peerMetrics(t)
		c, err := hybrid.New(hybrid.Options{Name: "mem", Events: ev, Logger: peerDiscard, Entry: hybrid.EntryOptions{
			Duration: 10 * time.Second, FailSafe: true, FailSafeMaxDuration: time.Hour, FailSafeThrottleDuration: time.Second,
			EagerRefreshThreshold: 0.5, FactorySoftTimeout: time.Second,
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		var keys []string
		for i := range 50 {
			keys = append(keys, fmt.Sprintf("user:%d", i))
		}
		val := func(context.Context, *hybrid.FactoryContext[int]) (int, error) { return 1, nil }
		for _, k := range keys {
			hybrid.GetOrSet(ctx, c, k, val) // a miss and a factory call
			hybrid.GetOrSet(ctx, c, k, val) // a hit
		}
		first := peerCollect(t, reader)
		peerCheckMetrics(t, first, keys)

		time.Sleep(6 * time.Second) // past the eager refresh threshold
		hybrid.GetOrSet(ctx, c, keys[0], val)
		synctest.Wait()
		time.Sleep(20 * time.Second) // stale
		hybrid.GetOrSet(ctx, c, keys[1], func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
			return 0, errors.New("db down")
		})
		hybrid.GetOrSet(ctx, c, keys[2], func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
			time.Sleep(2 * time.Second) // past the soft timeout
			return 2, nil
		})
		synctest.Wait()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		hybrid.TryGet[int](ctx, c, keys[3], hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true }))

		second := peerCollect(t, reader)
		peerCheckMetrics(t, second, keys)
		for _, name := range []string{"strata.cache.hits", "strata.cache.misses", "strata.cache.factory.calls",
			"strata.cache.factory.duration", "strata.cache.failsafe.activations", "strata.cache.eager_refreshes",
			"strata.cache.factory.timeouts", "strata.cache.stale_served"} {
			if _, ok := second[name]; !ok {
				t.Errorf("instrument %q not recorded", name)
			}
		}
		// Monotonic: every counter data point of the first collection is
		// there in the second, not smaller.
		for name, m := range first {
			s, ok := m.Data.(metricdata.Sum[int64])
			if !ok || !s.IsMonotonic {
				continue
			}
			for _, dp := range s.DataPoints {
				if now := peerSum(second, name, dp.Attributes.ToSlice()...); now < dp.Value {
					t.Errorf("%s%v went down: %d then %d", name, dp.Attributes.ToSlice(), dp.Value, now)
				}
			}
		}
		// Cardinality: 50 keys, a handful of data points.
		for name, m := range second {
			if n := len(peerAttrSets(m)); n > 4 {
				t.Errorf("%s: %d data points for one cache", name, n)
			}
		}
		// The counters agree with Stats.
		st := c.Stats()
		l1 := attribute.String("tier", "l1")
		for _, x := range []struct {
			name  string
			kv    []attribute.KeyValue
			stats int64
		}{
			{"strata.cache.hits", []attribute.KeyValue{l1}, int64(st.L1Hits)},
			{"strata.cache.misses", []attribute.KeyValue{l1}, int64(st.L1Misses)},
			{"strata.cache.factory.calls", nil, int64(st.FactoryCalls)},
			{"strata.cache.factory.calls", []attribute.KeyValue{attribute.Bool("error", true)}, int64(st.FactoryErrors)},
			{"strata.cache.failsafe.activations", nil, int64(st.FailSafeActivations)},
			{"strata.cache.factory.timeouts", nil, int64(st.FactoryTimeouts)},
			{"strata.cache.eager_refreshes", nil, int64(st.EagerRefreshes)},
			{"strata.cache.stale_served", nil, int64(st.StaleServed)},
		} {
			if got := peerSum(second, x.name, x.kv...); got != x.stats {
				t.Errorf("%s%v = %d, Stats says %d", x.name, x.kv, got, x.stats)
			}
		}
		if h, ok := second["strata.cache.factory.duration"].Data.(metricdata.Histogram[float64]); ok {
			var n uint64
			for _, dp := range h.DataPoints {
				n += dp.Count
				if !slices.Equal(dp.Bounds, otelhybrid.DefaultDurationBuckets) {
					t.Errorf("factory duration bounds %v, want %v", dp.Bounds, otelhybrid.DefaultDurationBuckets)
				}
			}
			if n != st.FactoryCalls {
				t.Errorf("factory duration count %d, Stats.FactoryCalls %d", n, st.FactoryCalls)
			}
		}
	})
}

// TestOTelMetricsRedis: over Redis with a backplane, the L2 and backplane
// instruments match the doc's table, batch calls included, and no key
// becomes an attribute value.
func TestOTelMetricsRedis(t *testing.T) {
	srv := redistest.Start(t)
	reader, ev := peerMetrics(t)
	mk := func() *hybrid.Cache {
		client := srv.FastClient(t, "")
		bp, err := backplane.NewRedis(client, backplane.RedisOptions{Channel: "peer", Logger: peerDiscard})
		if err != nil {
			t.Fatal(err)
		}
		c, err := hybrid.New(hybrid.Options{Name: "red", L2: hybrid.NewRedisL2(client), Backplane: bp, KeyPrefix: "peer:",
			Events: ev, Logger: peerDiscard, WaitForInitialBackplaneSubscribe: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := mk(), mk()
	ctx := context.Background()
	keys := []string{"order:1", "order:2", "order:3"}
	val := func(context.Context, *hybrid.FactoryContext[int]) (int, error) { return 1, nil }
	hybrid.GetOrSet(ctx, a, keys[0], val)
	hybrid.GetOrSet(ctx, b, keys[0], val) // an L2 hit
	a.Remove(ctx, keys[0])
	hybrid.GetOrSetMany(ctx, a, keys[1:], func(_ context.Context, bc *hybrid.BatchContext[int]) (map[string]int, error) {
		m := map[string]int{}
		for _, k := range bc.Keys() {
			m[k] = 1
		}
		return m, nil
	})
	if err := srv.Client(t).LPush(ctx, "peer:wrong", "x").Err(); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, "wrong")
	hybrid.TryGet[int](ctx, a, "wrong")
	// The other instance has applied a's messages once its Stats say so.
	redistest.Eventually(t, "b received the messages", func() bool { return b.Stats().BackplaneReceived > 0 })
	got := peerCollect(t, reader)
	peerCheckMetrics(t, got, keys)
	for _, name := range []string{"strata.cache.l2.duration", "strata.cache.l2.errors", "strata.cache.backplane.messages"} {
		if _, ok := got[name]; !ok {
			t.Errorf("instrument %q not recorded", name)
		}
	}
	if n := peerSum(got, "strata.cache.hits", attribute.String("tier", "l2")); n < 1 {
		t.Errorf("L2 hits %d, want at least 1", n)
	}
	if n := peerSum(got, "strata.cache.l2.errors", attribute.String("class", "config")); n != 1 {
		t.Errorf("l2 errors{class=config} = %d, want 1 (WRONGTYPE)", n)
	}
}

// TestOTelConcurrentUse: many goroutines on a few keys with the tracer and
// the metrics on, under -race: every span ends, and every GetOrSet and
// TryGet is one L1 hit or miss in the metrics.
func TestOTelConcurrentUse(t *testing.T) {
	rec, tp, tr := newTracing(t)
	reader, ev := peerMetrics(t, otelhybrid.WithHitSpanEvents())
	c, err := hybrid.New(hybrid.Options{Name: "conc", Tracer: tr, Events: ev, Logger: peerDiscard})
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ctx, req := tp.Tracer("test").Start(context.Background(), "request")
			defer req.End()
			for i := range rounds {
				k := fmt.Sprintf("k%d", i%7)
				switch i % 5 {
				case 0:
					hybrid.Set(ctx, c, k, i)
				case 1:
					c.Remove(ctx, k)
				case 2:
					hybrid.TryGet[int](ctx, c, k)
				default:
					hybrid.GetOrSet(ctx, c, k, func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
						if (w+i)%11 == 0 {
							return 0, errors.New("flaky")
						}
						return i, nil
					})
				}
			}
		})
	}
	wg.Wait()
	c.Close()
	peerAllEnded(t, "concurrent", rec)
	got := peerCollect(t, reader)
	peerCheckMetrics(t, got, nil)
	reads := int64(workers * rounds * 3 / 5) // TryGet (i%5 == 2) and GetOrSet (3, 4)
	l1 := attribute.String("tier", "l1")
	if n := peerSum(got, "strata.cache.hits", l1) + peerSum(got, "strata.cache.misses", l1); n != reads {
		t.Errorf("L1 hits + misses = %d, want %d reads", n, reads)
	}
	st := c.Stats()
	if n := peerSum(got, "strata.cache.factory.calls"); n != int64(st.FactoryCalls) {
		t.Errorf("factory calls %d, Stats %d", n, st.FactoryCalls)
	}
}

// TestOTelBatchSpans: each batch call is one span under the caller's with
// strata.keys.count (the count it was given), ended; an empty call starts
// none.
func TestOTelBatchSpans(t *testing.T) {
	srv := redistest.Start(t)
	rec, tp, tr := newTracing(t)
	c, err := hybrid.New(hybrid.Options{Name: "batch", L2: hybrid.NewRedisL2(srv.FastClient(t, "")), KeyPrefix: "peer:",
		Tracer: tr, Logger: peerDiscard})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	bf := func(_ context.Context, bc *hybrid.BatchContext[int]) (map[string]int, error) {
		m := map[string]int{}
		for _, k := range bc.Keys() {
			m[k] = 1
		}
		return m, nil
	}
	hybrid.GetOrSetMany(ctx, c, []string{"a", "b", "c"}, bf)
	hybrid.TryGetMany[int](ctx, c, []string{"a", "z"})
	hybrid.SetMany(ctx, c, map[string]int{"x": 1, "y": 2, "w": 3, "v": 4})
	c.RemoveMany(ctx, []string{"x"})
	hybrid.GetOrSetMany(ctx, c, nil, bf)
	hybrid.TryGetMany[int](ctx, c, nil)
	req.End()
	spans := rec.Ended()
	r := peerOne(t, spans, "request")
	for name, n := range map[string]int64{hybrid.SpanGetOrSetMany: 3, hybrid.SpanTryGetMany: 2, hybrid.SpanSetMany: 4, hybrid.SpanRemoveMany: 1} {
		s := peerOne(t, spans, name)
		peerWantChild(t, r, s)
		if v := attr(s, hybrid.AttrKeysCount); v.Type() != attribute.INT64 || v.AsInt64() != n {
			t.Errorf("%q: %s = %v, want %d", name, hybrid.AttrKeysCount, v.String(), n)
		}
		if attr(s, hybrid.AttrCacheName).AsString() != "batch" {
			t.Errorf("%q without %s", name, hybrid.AttrCacheName)
		}
		if s.Status().Code != codes.Unset {
			t.Errorf("%q: status %v", name, s.Status())
		}
	}
	peerAllEnded(t, "batch", rec)
}

// TestOTelDocNamesMatchCode: every span name, span attribute, metric and
// metric attribute the code uses is the one docs/observability.md names.
func TestOTelDocNamesMatchCode(t *testing.T) {
	b, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, name := range []string{hybrid.SpanGetOrSet, hybrid.SpanTryGet, hybrid.SpanSet, hybrid.SpanRemove, hybrid.SpanExpire,
		hybrid.SpanRemoveByTag, hybrid.SpanClear, hybrid.SpanFactory, hybrid.SpanL2Get, hybrid.SpanL2Set, hybrid.SpanPublish,
		hybrid.SpanEagerRefresh, hybrid.SpanRecovery, hybrid.SpanGetOrSetMany, hybrid.SpanTryGetMany, hybrid.SpanSetMany,
		hybrid.SpanRemoveMany,
		hybrid.AttrCacheName, hybrid.AttrKey, hybrid.AttrTier, hybrid.AttrHit, hybrid.AttrStale, hybrid.AttrFailSafe,
		hybrid.AttrTimeout, hybrid.AttrJoined, hybrid.AttrBackground, hybrid.AttrEager, hybrid.AttrOp, hybrid.AttrMessageKind,
		hybrid.AttrAnnounced, hybrid.AttrKeysCount, hybrid.AttrTagsCount, otelhybrid.ScopeName} {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("%q is not in docs/observability.md", name)
		}
	}
	for name := range peerDocInstruments {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("instrument %q is not in docs/observability.md", name)
		}
	}
	for _, k := range []attribute.Key{otelhybrid.AttrCache, otelhybrid.AttrTier, otelhybrid.AttrError, otelhybrid.AttrReason,
		otelhybrid.AttrOp, otelhybrid.AttrClass, otelhybrid.AttrDirection, otelhybrid.AttrKind, otelhybrid.AttrFailSafe,
		otelhybrid.AttrAction} {
		if !strings.Contains(doc, "`"+string(k)+"`") {
			t.Errorf("metric attribute %q is not in docs/observability.md", k)
		}
	}
}

// TestOTelRecoveryLinkedAndBreakerGauge: Redis killed, a Set succeeds
// (the L2 write's span is an Error, the Set's is not), the breaker gauge
// reads 1 and the change is queued; once Redis is back the replay is a
// trace of its own linked to the Set's span, and the gauge reads 0.
func TestOTelRecoveryLinkedAndBreakerGauge(t *testing.T) {
	srv := redistest.Start(t)
	rec, tp, tr := newTracing(t)
	reader, ev := peerMetrics(t)
	c, err := hybrid.New(hybrid.Options{Name: "rec", L2: hybrid.NewRedisL2(srv.FastClient(t, "")), KeyPrefix: "peer:",
		Tracer: tr, Events: ev, Logger: peerDiscard, L2CircuitBreakerDuration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.Kill(t)
	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	if err := hybrid.Set(ctx, c, "k", 1); err != nil {
		t.Fatalf("Set with Redis down: %v", err)
	}
	req.End()
	got := peerCollect(t, reader)
	peerCheckMetrics(t, got, []string{"k"})
	if n := peerSum(got, "strata.cache.l2.circuit_breaker.open"); n != 1 {
		t.Errorf("breaker open gauge %d, want 1", n)
	}
	if n := peerSum(got, "strata.cache.recovery.changes", attribute.String("action", "queued")); n != 1 {
		t.Errorf("recovery queued %d, want 1", n)
	}
	spans := rec.Ended()
	set := peerOne(t, spans, hybrid.SpanSet)
	if set.Status().Code != codes.Unset {
		t.Errorf("Set returned nil: status %v", set.Status())
	}
	if l2 := peerOne(t, spans, hybrid.SpanL2Set); l2.Status().Code != codes.Error {
		t.Errorf("the failed write: status %v, want Error", l2.Status())
	}
	srv.Restart(t)
	redistest.Eventually(t, "the change replayed", func() bool { s := c.Stats(); return s.Recovered == 1 && s.RecoveryPending == 0 })
	redistest.Eventually(t, "the breaker closed", func() bool { return !c.Stats().L2CircuitOpen })
	got = peerCollect(t, reader)
	peerCheckMetrics(t, got, []string{"k"})
	if n := peerSum(got, "strata.cache.l2.circuit_breaker.open"); n != 0 {
		t.Errorf("breaker open gauge %d after it closed, want 0", n)
	}
	if n := peerSum(got, "strata.cache.recovery.changes", attribute.String("action", "replayed")); n != 1 {
		t.Errorf("recovery replayed %d, want 1", n)
	}
	c.Close()
	spans = rec.Ended()
	reps := peerByName(spans, hybrid.SpanRecovery)
	if len(reps) == 0 {
		t.Fatalf("no recovery span:\n  %s", strings.Join(tree(spans), "\n  "))
	}
	last := reps[len(reps)-1]
	if last.Parent().IsValid() || last.SpanContext().TraceID() == set.SpanContext().TraceID() {
		t.Errorf("recovery span: parent %v, want a trace of its own", last.Parent())
	}
	if l := last.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != set.SpanContext().SpanID() {
		t.Errorf("recovery span links %v, want the Set's span %v", l, set.SpanContext().SpanID())
	}
	if last.Status().Code != codes.Unset || attr(last, hybrid.AttrOp).AsString() != "set" {
		t.Errorf("the replay that went through: %s", strings.Join(tree(reps), "; "))
	}
	peerAllEnded(t, "recovery", rec)
}
