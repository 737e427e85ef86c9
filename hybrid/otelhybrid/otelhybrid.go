// Package otelhybrid records the events of hybrid caches as OpenTelemetry
// metrics, and their spans as OpenTelemetry traces (NewTracer, for
// hybrid.Options.Tracer or strata.Settings.Tracer), through the
// OpenTelemetry API only: the application brings its own SDK (a
// MeterProvider and a TracerProvider with their exporters), as it does for
// go-redis with extra/redisotel.
//
// Events returns a *hybrid.Events to set as hybrid.Options.Events, or as
// strata.Settings.Events to instrument every cache of a provider:
//
//	ev, err := otelhybrid.Events(meterProvider)
//	if err != nil { ... }
//	p, err := strata.NewProvider(strata.Settings{Events: ev, ...})
//
// The instruments, each with the attribute cache (the cache's name), and
// their units:
//
//	strata.cache.hits                     counter    {hit}         tier (l1, l2)
//	strata.cache.misses                   counter    {miss}        tier (l1, l2)
//	strata.cache.factory.calls            counter    {call}        error (bool)
//	strata.cache.factory.duration         histogram  s             error (bool)
//	strata.cache.failsafe.activations     counter    {activation}  reason (factory_error, factory_timeout)
//	strata.cache.eager_refreshes          counter    {refresh}
//	strata.cache.l2.errors                counter    {error}       op (get, set, remove, expire, recover, lock),
//	                                                               class (transient, config, other, timeout)
//	strata.cache.l2.circuit_breaker.open  up/down    {breaker}     1 while the breaker is open, else 0
//	strata.cache.backplane.messages       counter    {message}     direction (sent, received), error (bool)
//	strata.cache.backplane.gaps           counter    {gap}
//	strata.cache.stale_served             counter    {read}        (TryGet with AllowStaleOnRead)
//	strata.cache.factory.timeouts         counter    {timeout}     kind (soft, hard), failsafe (bool)
//	strata.cache.recovery.changes         counter    {change}      action (queued, dropped, replayed)
//	strata.cache.l2.duration              histogram  s             op (get, set, remove, expire, recover,
//	                                                               lock, unlock, get-many, set-many),
//	                                                               error (bool)
//
// Keys are never attributes: their number is unbounded. The attribute sets
// are built once per cache (and tier, reason, ...), so that recording a hit
// allocates nothing on top of what the SDK does.
//
// This package is a Go module of its own
// (go get github.com/strata-cache/strata/hybrid/otelhybrid), so that the
// module github.com/strata-cache/strata requires no OpenTelemetry module.
// See https://github.com/strata-cache/strata/blob/main/docs/observability.md.
package otelhybrid

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-cache/strata/hybrid"
)

// ScopeName is the instrumentation scope of the meter the instruments are
// created with.
const ScopeName = "github.com/strata-cache/strata/hybrid/otelhybrid"

// Attribute keys of the measurements.
const (
	AttrCache     = attribute.Key("cache")
	AttrTier      = attribute.Key("tier")
	AttrError     = attribute.Key("error")
	AttrReason    = attribute.Key("reason")
	AttrOp        = attribute.Key("op")
	AttrClass     = attribute.Key("class")
	AttrDirection = attribute.Key("direction")
	AttrKind      = attribute.Key("kind")
	AttrFailSafe  = attribute.Key("failsafe")
	AttrAction    = attribute.Key("action")
)

// ErrNilMeterProvider is returned by Events for a nil MeterProvider.
var ErrNilMeterProvider = errors.New("otelhybrid: nil MeterProvider")

// DefaultDurationBuckets are the bucket boundaries of
// strata.cache.factory.duration, in seconds: 1ms to 10s.
var DefaultDurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// DefaultL2DurationBuckets are the bucket boundaries of
// strata.cache.l2.duration, in seconds: 100µs to 1s (a Redis call on a
// network is a fraction of a millisecond to a few).
var DefaultL2DurationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// Option changes how Events builds its instruments.
type Option func(*config)

type config struct {
	attrs      []attribute.KeyValue
	buckets    []float64
	l2Buckets  []float64
	spanEvents bool
}

// WithL2DurationBuckets sets the bucket boundaries of
// strata.cache.l2.duration, in seconds, instead of
// DefaultL2DurationBuckets.
func WithL2DurationBuckets(bounds ...float64) Option {
	return func(c *config) { c.l2Buckets = append([]float64(nil), bounds...) }
}

// WithHitSpanEvents adds an event named "strata.cache.hit" (attributes
// strata.cache.name and strata.operation.level) to the caller's span, when
// it is recording, for every hit, memory hits included: a memory hit never
// starts a span of its own (it is the hot path), and this shows it in the
// caller's trace. Off by default: it costs the SDK's AddEvent on each hit.
func WithHitSpanEvents() Option {
	return func(c *config) { c.spanEvents = true }
}

// WithAttributes adds attributes to every measurement (a deployment, a
// region...). They must not use the keys of the package's own attributes.
func WithAttributes(attrs ...attribute.KeyValue) Option {
	return func(c *config) { c.attrs = append(c.attrs, attrs...) }
}

// WithDurationBuckets sets the bucket boundaries of
// strata.cache.factory.duration, in seconds, instead of
// DefaultDurationBuckets.
func WithDurationBuckets(bounds ...float64) Option {
	return func(c *config) { c.buckets = append([]float64(nil), bounds...) }
}

// Events creates the instruments on a meter of mp and returns the callbacks
// that record them, for hybrid.Options.Events or strata.Settings.Events.
// One value can serve any number of caches. For the global MeterProvider,
// pass otel.GetMeterProvider().
//
// It returns ErrNilMeterProvider (and nil Events) when mp is nil, and an
// error if an instrument cannot be created; the Events then record through
// the instruments that could.
func Events(mp metric.MeterProvider, opts ...Option) (*hybrid.Events, error) {
	cfg := config{buckets: DefaultDurationBuckets, l2Buckets: DefaultL2DurationBuckets}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if mp == nil {
		return nil, ErrNilMeterProvider
	}
	r, err := newRecorder(mp.Meter(ScopeName), cfg)
	ev := &hybrid.Events{
		Hit:              r.onHit,
		Miss:             r.onMiss,
		FactoryCall:      r.onFactoryCall,
		FailSafe:         r.onFailSafe,
		EagerRefresh:     r.onEagerRefresh,
		L2Error:          r.onL2Error,
		CircuitBreaker:   r.onCircuitBreaker,
		BackplaneMessage: r.onBackplaneMessage,
		BackplaneGap:     r.onBackplaneGap,
		StaleServed:      r.onStaleServed,
		FactoryTimeout:   r.onFactoryTimeout,
		Recovery:         r.onRecovery,
		L2Call:           r.onL2Call,
	}
	return ev, err
}

// nopMeter stands in for an instrument the SDK could not create.
var nopMeter metric.Meter = noop.Meter{}

// recorder holds the instruments and the attribute sets of each cache met.
type recorder struct {
	hits, misses    metric.Int64Counter
	factoryCalls    metric.Int64Counter
	factoryDuration metric.Float64Histogram
	l2Duration      metric.Float64Histogram
	failSafe        metric.Int64Counter
	eager           metric.Int64Counter
	l2Errors        metric.Int64Counter
	breakerOpen     metric.Int64UpDownCounter
	bpMessages      metric.Int64Counter
	bpGaps          metric.Int64Counter
	staleServed     metric.Int64Counter
	timeouts        metric.Int64Counter
	recovery        metric.Int64Counter

	extra      []attribute.KeyValue
	spanEvents bool
	mu         sync.Mutex                            // serializes additions to caches
	caches     atomic.Pointer[map[string]*cacheSets] // copy on write: read without a lock
}

func newRecorder(m metric.Meter, cfg config) (*recorder, error) {
	r := &recorder{extra: cfg.attrs, spanEvents: cfg.spanEvents}
	r.caches.Store(&map[string]*cacheSets{})
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		if c == nil {
			c, _ = nopMeter.Int64Counter(name)
		}
		return c
	}
	r.hits = counter("strata.cache.hits", "{hit}", "Reads answered with a fresh value from a tier.")
	r.misses = counter("strata.cache.misses", "{miss}", "Reads that found no fresh value in a tier.")
	r.factoryCalls = counter("strata.cache.factory.calls", "{call}", "Factory calls, by outcome.")
	r.failSafe = counter("strata.cache.failsafe.activations", "{activation}", "Stale values served because the factory failed or timed out.")
	r.eager = counter("strata.cache.eager_refreshes", "{refresh}", "Background refreshes started by a hit past the eager refresh threshold.")
	r.l2Errors = counter("strata.cache.l2.errors", "{error}", "Errors and timeouts of the distributed tier absorbed by the cache.")
	r.bpMessages = counter("strata.cache.backplane.messages", "{message}", "Backplane messages sent and received.")
	r.bpGaps = counter("strata.cache.backplane.gaps", "{gap}", "Times backplane messages may have been lost.")
	r.staleServed = counter("strata.cache.stale_served", "{read}", "Stale values served by reads that allow them.")
	r.timeouts = counter("strata.cache.factory.timeouts", "{timeout}", "Callers that stopped waiting for a factory at a timeout.")
	r.recovery = counter("strata.cache.recovery.changes", "{change}", "Changes queued for auto-recovery, dropped, and replayed.")

	h, err := m.Float64Histogram("strata.cache.factory.duration", metric.WithUnit("s"),
		metric.WithDescription("How long factories ran."), metric.WithExplicitBucketBoundaries(cfg.buckets...))
	errs = append(errs, err)
	if h == nil {
		h, _ = nopMeter.Float64Histogram("strata.cache.factory.duration")
	}
	r.factoryDuration = h

	h, err = m.Float64Histogram("strata.cache.l2.duration", metric.WithUnit("s"),
		metric.WithDescription("How long calls to the distributed tier took."), metric.WithExplicitBucketBoundaries(cfg.l2Buckets...))
	errs = append(errs, err)
	if h == nil {
		h, _ = nopMeter.Float64Histogram("strata.cache.l2.duration")
	}
	r.l2Duration = h

	u, err := m.Int64UpDownCounter("strata.cache.l2.circuit_breaker.open", metric.WithUnit("{breaker}"),
		metric.WithDescription("1 while the circuit breaker of the distributed tier is open, else 0."))
	errs = append(errs, err)
	if u == nil {
		u, _ = nopMeter.Int64UpDownCounter("strata.cache.l2.circuit_breaker.open")
	}
	r.breakerOpen = u

	if err := errors.Join(errs...); err != nil {
		return r, fmt.Errorf("otelhybrid: %w", err)
	}
	return r, nil
}

// cacheSets are the measurement options of one cache, built once.
type cacheSets struct {
	base            []metric.AddOption // cache
	l1, l2          []metric.AddOption // cache, tier
	callOK, callErr []metric.AddOption // cache, error
	durOK, durErr   []metric.RecordOption
	failErr, failTO []metric.AddOption // cache, reason
	sent, sentErr   []metric.AddOption // cache, direction, error
	received        []metric.AddOption
	timeouts        [2][2][]metric.AddOption // [hard][failsafe]: cache, kind, failsafe
	recovery        [3][]metric.AddOption    // queued, dropped, replayed: cache, action
	l2ErrMu         sync.Mutex
	l2Err           map[l2ErrKey][]metric.AddOption    // cache, op, class; built on first use
	l2Dur           map[l2DurKey][]metric.RecordOption // cache, op, error; built on first use
}

type l2DurKey struct {
	op     string
	failed bool
}

type l2ErrKey struct {
	op    string
	class hybrid.L2ErrorClass
}

// set returns the measurement option of the cache's attributes plus kv.
func (r *recorder) set(cache string, kv ...attribute.KeyValue) metric.MeasurementOption {
	all := make([]attribute.KeyValue, 0, 1+len(kv)+len(r.extra))
	all = append(all, r.extra...)
	all = append(all, AttrCache.String(cache))
	all = append(all, kv...)
	return metric.WithAttributeSet(attribute.NewSet(all...))
}

func (r *recorder) add(cache string, kv ...attribute.KeyValue) []metric.AddOption {
	return []metric.AddOption{r.set(cache, kv...)}
}

func (r *recorder) newSets(cache string) *cacheSets {
	dur := func(failed bool) []metric.RecordOption {
		return []metric.RecordOption{r.set(cache, AttrError.Bool(failed))}
	}
	var to [2][2][]metric.AddOption
	for h, kind := range []hybrid.TimeoutKind{hybrid.TimeoutSoft, hybrid.TimeoutHard} {
		for f := range 2 {
			to[h][f] = r.add(cache, AttrKind.String(kind.String()), AttrFailSafe.Bool(f == 1))
		}
	}
	var rec [3][]metric.AddOption
	for i, a := range []hybrid.RecoveryAction{hybrid.RecoveryQueued, hybrid.RecoveryDropped, hybrid.RecoveryReplayed} {
		rec[i] = r.add(cache, AttrAction.String(a.String()))
	}
	return &cacheSets{
		timeouts: to,
		recovery: rec,
		base:     r.add(cache),
		l1:       r.add(cache, AttrTier.String(hybrid.TierL1.String())),
		l2:       r.add(cache, AttrTier.String(hybrid.TierL2.String())),
		callOK:   r.add(cache, AttrError.Bool(false)),
		callErr:  r.add(cache, AttrError.Bool(true)),
		durOK:    dur(false),
		durErr:   dur(true),
		failErr:  r.add(cache, AttrReason.String(hybrid.FailSafeFactoryError.String())),
		failTO:   r.add(cache, AttrReason.String(hybrid.FailSafeFactoryTimeout.String())),
		sent:     r.add(cache, AttrDirection.String(hybrid.DirectionSent.String()), AttrError.Bool(false)),
		sentErr:  r.add(cache, AttrDirection.String(hybrid.DirectionSent.String()), AttrError.Bool(true)),
		received: r.add(cache, AttrDirection.String(hybrid.DirectionReceived.String()), AttrError.Bool(false)),
		l2Err:    make(map[l2ErrKey][]metric.AddOption),
		l2Dur:    make(map[l2DurKey][]metric.RecordOption),
	}
}

// sets returns the options of cache, building them on its first event.
func (r *recorder) sets(cache string) *cacheSets {
	if s, ok := (*r.caches.Load())[cache]; ok {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.caches.Load()
	if s, ok := cur[cache]; ok {
		return s
	}
	s := r.newSets(cache)
	next := make(map[string]*cacheSets, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[cache] = s
	r.caches.Store(&next)
	return s
}

func (s *cacheSets) tier(t hybrid.Tier) []metric.AddOption {
	if t == hybrid.TierL2 {
		return s.l2
	}
	return s.l1
}

func (r *recorder) onHit(e hybrid.HitEvent) {
	ctx := ctxOf(e.Ctx)
	r.hits.Add(ctx, 1, r.sets(e.Cache).tier(e.Tier)...)
	if r.spanEvents {
		if s := trace.SpanFromContext(ctx); s.IsRecording() {
			s.AddEvent("strata.cache.hit", trace.WithAttributes(
				attribute.String(hybrid.AttrCacheName, e.Cache), attribute.String(hybrid.AttrTier, e.Tier.String())))
		}
	}
}

func (r *recorder) onMiss(e hybrid.MissEvent) {
	r.misses.Add(ctxOf(e.Ctx), 1, r.sets(e.Cache).tier(e.Tier)...)
}

func (r *recorder) onFactoryCall(e hybrid.FactoryCallEvent) {
	s := r.sets(e.Cache)
	add, rec := s.callOK, s.durOK
	if e.Err != nil {
		add, rec = s.callErr, s.durErr
	}
	ctx := ctxOf(e.Ctx)
	r.factoryCalls.Add(ctx, 1, add...)
	r.factoryDuration.Record(ctx, e.Duration.Seconds(), rec...)
}

func (r *recorder) onFailSafe(e hybrid.FailSafeEvent) {
	s := r.sets(e.Cache)
	opts := s.failErr
	if e.Reason == hybrid.FailSafeFactoryTimeout {
		opts = s.failTO
	}
	r.failSafe.Add(ctxOf(e.Ctx), 1, opts...)
}

func (r *recorder) onEagerRefresh(e hybrid.EagerRefreshEvent) {
	r.eager.Add(ctxOf(e.Ctx), 1, r.sets(e.Cache).base...)
}

func (r *recorder) onL2Error(e hybrid.L2ErrorEvent) {
	s := r.sets(e.Cache)
	k := l2ErrKey{op: e.Op, class: e.Class}
	s.l2ErrMu.Lock()
	opts, ok := s.l2Err[k]
	if !ok {
		opts = r.add(e.Cache, AttrOp.String(e.Op), AttrClass.String(e.Class.String()))
		s.l2Err[k] = opts
	}
	s.l2ErrMu.Unlock()
	r.l2Errors.Add(ctxOf(e.Ctx), 1, opts...)
}

func (r *recorder) onCircuitBreaker(e hybrid.CircuitBreakerEvent) {
	d := int64(-1)
	if e.Open {
		d = 1
	}
	r.breakerOpen.Add(context.Background(), d, r.sets(e.Cache).base...)
}

func (r *recorder) onBackplaneMessage(e hybrid.BackplaneMessageEvent) {
	s := r.sets(e.Cache)
	opts := s.received
	if e.Direction == hybrid.DirectionSent {
		opts = s.sent
		if e.Err != nil {
			opts = s.sentErr
		}
	}
	r.bpMessages.Add(ctxOf(e.Ctx), 1, opts...)
}

func (r *recorder) onBackplaneGap(e hybrid.BackplaneGapEvent) {
	r.bpGaps.Add(context.Background(), 1, r.sets(e.Cache).base...)
}

func (r *recorder) onStaleServed(e hybrid.StaleServedEvent) {
	r.staleServed.Add(ctxOf(e.Ctx), 1, r.sets(e.Cache).base...)
}

func (r *recorder) onFactoryTimeout(e hybrid.FactoryTimeoutEvent) {
	h, f := 0, 0
	if e.Kind == hybrid.TimeoutHard {
		h = 1
	}
	if e.FailSafe {
		f = 1
	}
	r.timeouts.Add(ctxOf(e.Ctx), 1, r.sets(e.Cache).timeouts[h][f]...)
}

func (r *recorder) onRecovery(e hybrid.RecoveryEvent) {
	i := int(e.Action) - int(hybrid.RecoveryQueued)
	if i < 0 || i > 2 {
		return // drained: a state, not a change
	}
	r.recovery.Add(ctxOf(e.Ctx), 1, r.sets(e.Cache).recovery[i]...)
}

// ctxOf is the event's context for the SDK (exemplars), or
// context.Background() for an event built without one.
func ctxOf(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

func (r *recorder) onL2Call(e hybrid.L2CallEvent) {
	s := r.sets(e.Cache)
	k := l2DurKey{op: e.Op, failed: e.Err != nil}
	s.l2ErrMu.Lock()
	opts, ok := s.l2Dur[k]
	if !ok {
		opts = []metric.RecordOption{r.set(e.Cache, AttrOp.String(e.Op), AttrError.Bool(k.failed))}
		s.l2Dur[k] = opts
	}
	s.l2ErrMu.Unlock()
	r.l2Duration.Record(ctxOf(e.Ctx), e.Duration.Seconds(), opts...)
}
