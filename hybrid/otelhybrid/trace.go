package otelhybrid

import (
	"context"
	"errors"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-cache/strata/hybrid"
)

// ErrNilTracerProvider is returned by NewTracer for a nil TracerProvider.
var ErrNilTracerProvider = errors.New("otelhybrid: nil TracerProvider")

// NewTracer returns a hybrid.Tracer that records the caches' spans on a
// tracer of tp (instrumentation scope ScopeName), for hybrid.Options.Tracer
// or strata.Settings.Tracer. For the global TracerProvider, pass
// otel.GetTracerProvider().
//
// Every span is of kind internal; the span names are hybrid's Span*
// constants (FusionCache's activity names where it has one) and the
// attributes hybrid's Attr* keys (strata.cache.name, strata.hit, ...). A
// span whose operation failed gets the error recorded (an exception event)
// and the status Error. Background work (SpanEagerRefresh, SpanRecovery)
// starts a new trace with a link to the span of the request that started
// it. Spans of Redis commands (go-redis's redisotel) nest under the cache's
// L2 spans, whose context they receive.
func NewTracer(tp trace.TracerProvider) (hybrid.Tracer, error) {
	if tp == nil {
		return nil, ErrNilTracerProvider
	}
	return tracer{tp.Tracer(ScopeName)}, nil
}

type tracer struct{ t trace.Tracer }

func (t tracer) Start(ctx context.Context, name string, o hybrid.SpanStart) (context.Context, hybrid.Span) {
	opts := make([]trace.SpanStartOption, 0, 4)
	opts = append(opts, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(convert(o.Attrs)...))
	if o.Linked {
		opts = append(opts, trace.WithNewRoot())
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	ctx, s := t.t.Start(ctx, name, opts...)
	return ctx, span{s}
}

type span struct{ s trace.Span }

func (s span) SetAttributes(attrs ...slog.Attr) { s.s.SetAttributes(convert(attrs)...) }

func (s span) End(err error) {
	if err != nil {
		s.s.RecordError(err)
		s.s.SetStatus(codes.Error, err.Error())
	}
	s.s.End()
}

// convert turns slog attributes into OpenTelemetry ones: strings, bools,
// integers and floats as they are, durations in seconds (a float), others
// as their string.
func convert(attrs []slog.Attr) []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, len(attrs))
	for _, a := range attrs {
		v := a.Value.Resolve()
		k := attribute.Key(a.Key)
		switch v.Kind() {
		case slog.KindString:
			kv = append(kv, k.String(v.String()))
		case slog.KindBool:
			kv = append(kv, k.Bool(v.Bool()))
		case slog.KindInt64:
			kv = append(kv, k.Int64(v.Int64()))
		case slog.KindUint64:
			kv = append(kv, k.Int64(int64(v.Uint64())))
		case slog.KindFloat64:
			kv = append(kv, k.Float64(v.Float64()))
		case slog.KindDuration:
			kv = append(kv, k.Float64(v.Duration().Seconds()))
		default:
			kv = append(kv, k.String(v.String()))
		}
	}
	return kv
}
