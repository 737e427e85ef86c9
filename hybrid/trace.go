package hybrid

import (
	"context"
	"errors"
	"log/slog"
)

// Tracer starts the spans of a cache's operations: the seam through which
// traces plug in, without this module importing any tracing library.
// Package otelhybrid (its own module) implements it on the OpenTelemetry
// trace API; see docs/observability.md for the spans and attributes.
//
// Set it as Options.Tracer (or strata.Settings.Tracer). A nil Tracer costs
// one nil check per operation that does more than a memory hit, and
// nothing on a memory hit, which never starts a span.
//
// Start is called on the goroutine doing the work, never under a lock of
// the cache; it must be safe for concurrent use.
type Tracer interface {
	// Start starts a span named name (one of the Span* constants) as a
	// child of the span in ctx, or, with o.Linked, as the root of a trace
	// of its own linked to the span in ctx (background work nobody waits
	// for). It returns ctx with the new span in it, and the span.
	Start(ctx context.Context, name string, o SpanStart) (context.Context, Span)
}

// SpanStart are the options of Tracer.Start.
type SpanStart struct {
	// Attrs are the span's first attributes: AttrCacheName, and AttrKey
	// when Options.TraceKeys is set (never with RedactKeys).
	Attrs []slog.Attr
	// Linked: the span is background work (an eager refresh, a replay of
	// the auto-recovery queue); it starts a trace of its own, linked to the
	// span in ctx, the request that started the work.
	Linked bool
}

// Span is one span started by a Tracer.
type Span interface {
	// SetAttributes adds attributes (slog.Attr of kind string, bool,
	// int64, float64 or duration) to the span.
	SetAttributes(attrs ...slog.Attr)
	// End ends the span; a non-nil err marks it as failed.
	End(err error)
}

// The names of the spans, those of FusionCache's activities where it has
// one.
const (
	SpanGetOrSet     = "get or set from cache"      // a GetOrSet that missed the memory tier
	SpanTryGet       = "get from cache"             // a TryGet that missed the memory tier
	SpanSet          = "set to cache"               // Set
	SpanRemove       = "remove from cache"          // Remove
	SpanExpire       = "expire from cache"          // Expire
	SpanRemoveByTag  = "remove from cache by tag"   // RemoveByTag, RemoveByTagWith
	SpanClear        = "clear cache"                // Clear
	SpanFactory      = "execute factory"            // a factory run
	SpanL2Get        = "get from cache level"       // a read of the distributed tier
	SpanL2Set        = "set to cache level"         // a write (set, remove, expire) to the distributed tier
	SpanPublish      = "publish to backplane"       // a backplane message sent
	SpanEagerRefresh = "eager refresh"              // the background refresh of an entry (linked)
	SpanRecovery     = "process auto-recovery item" // a replay of a queued change (linked)
	SpanGetOrSetMany = "get or set many from cache" // GetOrSetMany
	SpanTryGetMany   = "get many from cache"        // TryGetMany
	SpanSetMany      = "set many to cache"          // SetMany
	SpanRemoveMany   = "remove many from cache"     // RemoveMany
)

// The attribute keys of the spans.
const (
	// AttrCacheName (string): the cache's name; on every span.
	AttrCacheName = "strata.cache.name"
	// AttrKey (string): the key, only with Options.TraceKeys and without
	// Options.RedactKeys.
	AttrKey = "strata.operation.key"
	// AttrTier (string, "l1" or "l2"): on SpanGetOrSet and SpanTryGet the
	// tier that answered with a fresh value (absent when the factory
	// answered, or nothing did); on SpanL2Get and SpanL2Set "l2".
	AttrTier = "strata.operation.level"
	// AttrHit (bool): on SpanGetOrSet, SpanTryGet and SpanL2Get, whether a
	// fresh value was found.
	AttrHit = "strata.hit"
	// AttrStale (bool): a stale value was served (fail-safe, or TryGet's
	// AllowStaleOnRead).
	AttrStale = "strata.stale"
	// AttrFailSafe (string): fail-safe activated, with its reason
	// ("factory_error" or "factory_timeout").
	AttrFailSafe = "strata.failsafe"
	// AttrTimeout (string): a timeout cut the operation: "soft" or "hard"
	// (the factory's, on SpanGetOrSet), "l2" (a read of the distributed
	// tier, on SpanL2Get).
	AttrTimeout = "strata.timeout"
	// AttrJoined (bool): on SpanGetOrSet, the caller joined the load
	// another caller had started (the children are under that caller's
	// span).
	AttrJoined = "strata.flight.joined"
	// AttrBackground (bool): on SpanFactory, the factory completed after
	// every caller had stopped waiting (background completion).
	AttrBackground = "strata.operation.background"
	// AttrEager (bool): on SpanFactory, the factory ran for an eager
	// refresh.
	AttrEager = "strata.factory.eager_refresh"
	// AttrOp (string): on SpanL2Set and SpanRecovery, the change: "set",
	// "remove" or "expire".
	AttrOp = "strata.operation.change"
	// AttrMessageKind (string): on SpanPublish, the message's kind.
	AttrMessageKind = "strata.backplane.message_action"
	// AttrAnnounced (bool): on SpanL2Set, the write published the
	// backplane message itself (one round trip on a standalone Redis whose
	// client the backplane shares): there is no SpanPublish then.
	AttrAnnounced = "strata.backplane.announced"
	// AttrKeysCount (int): on the batch spans, how many keys the call got.
	AttrKeysCount = "strata.keys.count"
	// AttrTagsCount (int): on SpanRemoveByTag, how many tags.
	AttrTagsCount = "strata.tags.count"
)

// opSpanKey is the context key of the span of the operation in progress,
// which the steps of a load annotate (the tier that answered...).
type opSpanKey struct{}

// startSpan starts a span of the cache's tracer, which must be set.
func (c *Cache) startSpan(ctx context.Context, name, key string, linked bool) (context.Context, Span) {
	attrs := make([]slog.Attr, 1, 2)
	attrs[0] = slog.String(AttrCacheName, c.name)
	if c.traceKeys && key != "" {
		attrs = append(attrs, slog.String(AttrKey, key))
	}
	return c.tr.Start(ctx, name, SpanStart{Attrs: attrs, Linked: linked})
}

// startOp starts the span of a whole operation (nil without a tracer) and
// keeps it in the returned context for annotate.
func (c *Cache) startOp(ctx context.Context, name, key string) (context.Context, Span) {
	if c.tr == nil {
		return ctx, nil
	}
	ctx, s := c.startSpan(ctx, name, key, false)
	return context.WithValue(ctx, opSpanKey{}, s), s
}

// startChild starts a child span (nil without a tracer).
func (c *Cache) startChild(ctx context.Context, name, key string) (context.Context, Span) {
	if c.tr == nil {
		return ctx, nil
	}
	return c.startSpan(ctx, name, key, false)
}

// annotate adds attributes to the span of the operation in ctx. Call it
// only when c.tr is set (building the arguments allocates).
func annotate(ctx context.Context, attrs ...slog.Attr) {
	if s, ok := ctx.Value(opSpanKey{}).(Span); ok && s != nil {
		s.SetAttributes(attrs...)
	}
}

// spanError is what the span of an operation records of its error: the
// error itself when keys are traced; otherwise an error that still wraps it
// (errors.Is works) but whose message names no key: the sentinel's, or a
// generic one (the factory's own error is on SpanFactory).
func (c *Cache) spanError(err error) error {
	if err == nil || c.traceKeys {
		return err
	}
	for _, s := range []error{ErrFactoryTimeout, ErrTypeMismatch, ErrFactoryPanic, ErrValueTooLarge,
		context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, s) {
			return keylessError{s.Error(), err}
		}
	}
	return keylessError{"hybrid: operation failed (keys are not traced)", err}
}

// spanErr is what the span of one step about key (a read or write of the
// distributed tier, a publish, a replay) records of err: err itself, or
// with RedactKeys an error that still wraps it (errors.Is works) but whose
// message has the key taken out, as the logs do (errAttr).
func (c *Cache) spanErr(key string, err error) error {
	if !c.redactKeys || err == nil || key == "" {
		return err
	}
	return keylessError{c.redacted(key, err), err}
}

// keylessError is an error with a message that names no key.
type keylessError struct {
	msg string
	err error
}

func (e keylessError) Error() string { return e.msg }
func (e keylessError) Unwrap() error { return e.err }

// endSpan ends s if there is one.
func endSpan(s Span, err error) {
	if s != nil {
		s.End(err)
	}
}
