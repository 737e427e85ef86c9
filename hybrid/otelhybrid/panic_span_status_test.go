package otelhybrid_test

// Drop into hybrid/otelhybrid next to peer_otel_test.go (uses its helpers).

import (
	"context"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/codes"

	"github.com/strata-cache/strata/hybrid"
)

// TestOTelPanicMarksOperationSpanError: a factory that panics fails the
// operation (the panic is re-raised in the caller); docs/observability.md:
// "A failed operation ends its span with the error (status Error, an
// exception event)". The factory span has it; the operation span must too.
func TestOTelPanicMarksOperationSpanError(t *testing.T) {
	rec, _, tr := newTracing(t)
	c, err := hybrid.New(hybrid.Options{Tracer: tr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the factory's panic was not re-raised")
			}
		}()
		hybrid.GetOrSet(context.Background(), c, "k", func(context.Context, *hybrid.FactoryContext[int]) (int, error) { panic("boom") })
	}()
	spans := rec.Ended()
	if f := peerOne(t, spans, hybrid.SpanFactory); f.Status().Code != codes.Error {
		t.Errorf("factory span: status %v, want Error", f.Status())
	}
	if op := peerOne(t, spans, hybrid.SpanGetOrSet); op.Status().Code != codes.Error {
		t.Errorf("operation span of a panicking load: status %+v, want Error; events %v", op.Status(), op.Events())
	}
}

// The same with a cancellable context (the load on a goroutine of its own).
func TestOTelPanicMarksOperationSpanErrorDetached(t *testing.T) {
	rec, _, tr := newTracing(t)
	c, err := hybrid.New(hybrid.Options{Tracer: tr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	func() {
		defer func() { recover() }()
		hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[int]) (int, error) { panic("boom") })
	}()
	if op := peerOne(t, rec.Ended(), hybrid.SpanGetOrSet); op.Status().Code != codes.Error {
		t.Errorf("operation span of a panicking load: status %+v, want Error", op.Status())
	}
}
