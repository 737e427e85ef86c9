package otelhybrid_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/hybrid/otelhybrid"
)

// fakeProvider is a MeterProvider that sums what its instruments record,
// by instrument name and attributes: "strata.cache.hits{cache=a,tier=l1}".
// Histograms record their count and sum as name.count and name.sum.
type fakeProvider struct {
	noop.MeterProvider
	fail string // the name of an instrument whose creation fails

	mu       sync.Mutex
	scope    string
	units    map[string]string
	got      map[string]float64
	bounds   []float64 // of strata.cache.factory.duration
	l2Bounds []float64 // of strata.cache.l2.duration
}

func newFakeProvider() *fakeProvider {
	return &fakeProvider{got: make(map[string]float64), units: make(map[string]string)}
}

func (p *fakeProvider) Meter(name string, _ ...metric.MeterOption) metric.Meter {
	p.mu.Lock()
	p.scope = name
	p.mu.Unlock()
	return fakeMeter{p: p}
}

func (p *fakeProvider) record(name string, attrs attribute.Set, v float64) {
	key := name + "{" + attrs.Encoded(attribute.DefaultEncoder()) + "}"
	p.mu.Lock()
	p.got[key] += v
	p.mu.Unlock()
}

// take returns what was recorded so far and forgets it.
func (p *fakeProvider) take() map[string]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := p.got
	p.got = make(map[string]float64)
	return got
}

var errCreate = errors.New("instrument refused")

type fakeMeter struct {
	noop.Meter
	p *fakeProvider
}

func (m fakeMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	if name == m.p.fail {
		return nil, errCreate
	}
	m.p.mu.Lock()
	m.p.units[name] = metric.NewInt64CounterConfig(opts...).Unit()
	m.p.mu.Unlock()
	return fakeCounter{p: m.p, name: name}, nil
}

func (m fakeMeter) Int64UpDownCounter(name string, opts ...metric.Int64UpDownCounterOption) (metric.Int64UpDownCounter, error) {
	if name == m.p.fail {
		return nil, errCreate
	}
	return fakeUpDown{p: m.p, name: name}, nil
}

func (m fakeMeter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	if name == m.p.fail {
		return nil, errCreate
	}
	cfg := metric.NewFloat64HistogramConfig(opts...)
	m.p.mu.Lock()
	m.p.units[name] = cfg.Unit()
	if name == "strata.cache.factory.duration" {
		m.p.bounds = cfg.ExplicitBucketBoundaries()
	} else {
		m.p.l2Bounds = cfg.ExplicitBucketBoundaries()
	}
	m.p.mu.Unlock()
	return fakeHistogram{p: m.p, name: name}, nil
}

type fakeCounter struct {
	noop.Int64Counter
	p    *fakeProvider
	name string
}

func (c fakeCounter) Add(_ context.Context, v int64, opts ...metric.AddOption) {
	c.p.record(c.name, metric.NewAddConfig(opts).Attributes(), float64(v))
}

type fakeUpDown struct {
	noop.Int64UpDownCounter
	p    *fakeProvider
	name string
}

func (c fakeUpDown) Add(_ context.Context, v int64, opts ...metric.AddOption) {
	c.p.record(c.name, metric.NewAddConfig(opts).Attributes(), float64(v))
}

type fakeHistogram struct {
	noop.Float64Histogram
	p    *fakeProvider
	name string
}

func (h fakeHistogram) Record(_ context.Context, v float64, opts ...metric.RecordOption) {
	attrs := metric.NewRecordConfig(opts).Attributes()
	h.p.record(h.name+".count", attrs, 1)
	h.p.record(h.name+".sum", attrs, v)
}

func wantMetrics(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	if !maps.Equal(got, want) {
		keys := slices.Sorted(maps.Keys(got))
		t.Fatalf("%s: got\n%v\nwant\n%v", what, keys, want)
	}
}

func TestEventsRecordEveryInstrument(t *testing.T) {
	t.Parallel()
	p := newFakeProvider()
	ev, err := otelhybrid.Events(p, otelhybrid.WithAttributes(attribute.String("region", "eu")))
	if err != nil {
		t.Fatal(err)
	}
	if p.scope != otelhybrid.ScopeName {
		t.Errorf("meter scope: got %q, want %q", p.scope, otelhybrid.ScopeName)
	}
	ev.Hit(hybrid.HitEvent{Cache: "a", Key: "k", Tier: hybrid.TierL1})
	ev.Hit(hybrid.HitEvent{Cache: "a", Key: "k", Tier: hybrid.TierL1})
	ev.Hit(hybrid.HitEvent{Cache: "a", Key: "k", Tier: hybrid.TierL2})
	ev.Miss(hybrid.MissEvent{Cache: "b", Key: "k", Tier: hybrid.TierL1})
	ev.Miss(hybrid.MissEvent{Cache: "b", Key: "k", Tier: hybrid.TierL2})
	ev.FactoryCall(hybrid.FactoryCallEvent{Cache: "a", Key: "k", Duration: 250 * time.Millisecond})
	ev.FactoryCall(hybrid.FactoryCallEvent{Cache: "a", Key: "k", Duration: 500 * time.Millisecond, Err: errCreate})
	ev.FailSafe(hybrid.FailSafeEvent{Cache: "a", Key: "k", Reason: hybrid.FailSafeFactoryError})
	ev.FailSafe(hybrid.FailSafeEvent{Cache: "a", Key: "k", Reason: hybrid.FailSafeFactoryTimeout})
	ev.EagerRefresh(hybrid.EagerRefreshEvent{Cache: "a", Key: "k"})
	ev.L2Error(hybrid.L2ErrorEvent{Cache: "a", Key: "k", Op: "get", Class: hybrid.L2ErrorTransient})
	ev.L2Error(hybrid.L2ErrorEvent{Cache: "a", Key: "k", Op: "get", Class: hybrid.L2ErrorTransient})
	ev.L2Error(hybrid.L2ErrorEvent{Cache: "a", Key: "k", Op: "set", Class: hybrid.L2ErrorTimeout})
	ev.CircuitBreaker(hybrid.CircuitBreakerEvent{Cache: "a", Open: true})
	ev.CircuitBreaker(hybrid.CircuitBreakerEvent{Cache: "a", Open: false})
	ev.CircuitBreaker(hybrid.CircuitBreakerEvent{Cache: "b", Open: true})
	ev.BackplaneMessage(hybrid.BackplaneMessageEvent{Cache: "a", Key: "k", Direction: hybrid.DirectionSent, Kind: backplane.KindSet})
	ev.BackplaneMessage(hybrid.BackplaneMessageEvent{Cache: "a", Key: "k", Direction: hybrid.DirectionSent, Err: errCreate})
	ev.BackplaneMessage(hybrid.BackplaneMessageEvent{Cache: "a", Key: "k", Direction: hybrid.DirectionReceived})
	ev.BackplaneGap(hybrid.BackplaneGapEvent{Cache: "a"})
	ev.StaleServed(hybrid.StaleServedEvent{Cache: "a", Key: "k"})
	ev.FactoryTimeout(hybrid.FactoryTimeoutEvent{Cache: "a", Key: "k", Kind: hybrid.TimeoutSoft, FailSafe: true})
	ev.FactoryTimeout(hybrid.FactoryTimeoutEvent{Cache: "a", Key: "k", Kind: hybrid.TimeoutHard})
	ev.Recovery(hybrid.RecoveryEvent{Cache: "a", Key: "k", Action: hybrid.RecoveryQueued})
	ev.Recovery(hybrid.RecoveryEvent{Cache: "a", Key: "k", Action: hybrid.RecoveryDropped})
	ev.Recovery(hybrid.RecoveryEvent{Cache: "a", Key: "k", Action: hybrid.RecoveryReplayed})
	ev.Recovery(hybrid.RecoveryEvent{Cache: "a", Action: hybrid.RecoveryDrained})
	ev.L2Call(hybrid.L2CallEvent{Cache: "a", Key: "k", Op: "get", Duration: 2 * time.Millisecond})
	ev.L2Call(hybrid.L2CallEvent{Cache: "a", Key: "k", Op: "get", Duration: 3 * time.Millisecond})
	ev.L2Call(hybrid.L2CallEvent{Cache: "a", Key: "k", Op: "set", Duration: time.Second, Err: errCreate})

	wantMetrics(t, "every event", p.take(), map[string]float64{
		"strata.cache.hits{cache=a,region=eu,tier=l1}":                                      2,
		"strata.cache.hits{cache=a,region=eu,tier=l2}":                                      1,
		"strata.cache.misses{cache=b,region=eu,tier=l1}":                                    1,
		"strata.cache.misses{cache=b,region=eu,tier=l2}":                                    1,
		"strata.cache.factory.calls{cache=a,error=false,region=eu}":                         1,
		"strata.cache.factory.calls{cache=a,error=true,region=eu}":                          1,
		"strata.cache.factory.duration.count{cache=a,error=false,region=eu}":                1,
		"strata.cache.factory.duration.sum{cache=a,error=false,region=eu}":                  0.25,
		"strata.cache.factory.duration.count{cache=a,error=true,region=eu}":                 1,
		"strata.cache.factory.duration.sum{cache=a,error=true,region=eu}":                   0.5,
		"strata.cache.failsafe.activations{cache=a,reason=factory_error,region=eu}":         1,
		"strata.cache.failsafe.activations{cache=a,reason=factory_timeout,region=eu}":       1,
		"strata.cache.eager_refreshes{cache=a,region=eu}":                                   1,
		"strata.cache.l2.errors{cache=a,class=transient,op=get,region=eu}":                  2,
		"strata.cache.l2.errors{cache=a,class=timeout,op=set,region=eu}":                    1,
		"strata.cache.l2.circuit_breaker.open{cache=a,region=eu}":                           0,
		"strata.cache.l2.circuit_breaker.open{cache=b,region=eu}":                           1,
		"strata.cache.backplane.messages{cache=a,direction=sent,error=false,region=eu}":     1,
		"strata.cache.backplane.messages{cache=a,direction=sent,error=true,region=eu}":      1,
		"strata.cache.backplane.messages{cache=a,direction=received,error=false,region=eu}": 1,
		"strata.cache.backplane.gaps{cache=a,region=eu}":                                    1,
		"strata.cache.stale_served{cache=a,region=eu}":                                      1,
		"strata.cache.factory.timeouts{cache=a,failsafe=true,kind=soft,region=eu}":          1,
		"strata.cache.factory.timeouts{cache=a,failsafe=false,kind=hard,region=eu}":         1,
		"strata.cache.recovery.changes{action=queued,cache=a,region=eu}":                    1,
		"strata.cache.recovery.changes{action=dropped,cache=a,region=eu}":                   1,
		"strata.cache.recovery.changes{action=replayed,cache=a,region=eu}":                  1,
		"strata.cache.l2.duration.count{cache=a,error=false,op=get,region=eu}":              2,
		"strata.cache.l2.duration.sum{cache=a,error=false,op=get,region=eu}":                0.005,
		"strata.cache.l2.duration.count{cache=a,error=true,op=set,region=eu}":               1,
		"strata.cache.l2.duration.sum{cache=a,error=true,op=set,region=eu}":                 1,
	})
	if got := p.units["strata.cache.factory.duration"]; got != "s" {
		t.Errorf("duration unit: got %q, want s", got)
	}
	if !slices.Equal(p.bounds, otelhybrid.DefaultDurationBuckets) {
		t.Errorf("buckets: got %v, want the defaults", p.bounds)
	}
	if !slices.Equal(p.l2Bounds, otelhybrid.DefaultL2DurationBuckets) || p.units["strata.cache.l2.duration"] != "s" {
		t.Errorf("L2 buckets: got %v in %q, want the defaults in s", p.l2Bounds, p.units["strata.cache.l2.duration"])
	}
}

func TestEventsThroughACache(t *testing.T) {
	t.Parallel()
	p := newFakeProvider()
	ev, err := otelhybrid.Events(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := hybrid.New(hybrid.Options{Name: "users", Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	f := func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "Ada", nil }
	for range 3 {
		if _, err := hybrid.GetOrSet(ctx, c, "user:1", f); err != nil {
			t.Fatal(err)
		}
	}
	got := p.take()
	delete(got, "strata.cache.factory.duration.sum{cache=users,error=false}") // timing
	wantMetrics(t, "a miss then two hits", got, map[string]float64{
		"strata.cache.hits{cache=users,tier=l1}":                       2,
		"strata.cache.misses{cache=users,tier=l1}":                     1,
		"strata.cache.factory.calls{cache=users,error=false}":          1,
		"strata.cache.factory.duration.count{cache=users,error=false}": 1,
	})
}

func TestEventsOptions(t *testing.T) {
	t.Parallel()
	if _, err := otelhybrid.Events(nil); !errors.Is(err, otelhybrid.ErrNilMeterProvider) {
		t.Fatalf("nil provider: got %v, want ErrNilMeterProvider", err)
	}
	p := newFakeProvider()
	if _, err := otelhybrid.Events(p, otelhybrid.WithDurationBuckets(0.1, 1), otelhybrid.WithL2DurationBuckets(0.001, 0.01), nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.bounds, []float64{0.1, 1}) {
		t.Fatalf("buckets: got %v, want [0.1 1]", p.bounds)
	}
	if !slices.Equal(p.l2Bounds, []float64{0.001, 0.01}) {
		t.Fatalf("L2 buckets: got %v, want [0.001 0.01]", p.l2Bounds)
	}
}

func TestEventsInstrumentError(t *testing.T) {
	t.Parallel()
	p := newFakeProvider()
	p.fail = "strata.cache.misses"
	ev, err := otelhybrid.Events(p)
	if !errors.Is(err, errCreate) {
		t.Fatalf("got %v, want the instrument's error", err)
	}
	ev.Miss(hybrid.MissEvent{Cache: "a", Tier: hybrid.TierL1}) // dropped, no panic
	ev.Hit(hybrid.HitEvent{Cache: "a", Tier: hybrid.TierL1})
	wantMetrics(t, "with one instrument missing", p.take(), map[string]float64{
		"strata.cache.hits{cache=a,tier=l1}": 1,
	})
}

func TestEventsConcurrentCaches(t *testing.T) {
	t.Parallel()
	p := newFakeProvider()
	ev, _ := otelhybrid.Events(p)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				ev.Hit(hybrid.HitEvent{Cache: fmt.Sprint("c", (i+j)%4), Tier: hybrid.TierL1})
			}
		})
	}
	wg.Wait()
	got := p.take()
	for i := range 4 {
		if n := got[fmt.Sprintf("strata.cache.hits{cache=c%d,tier=l1}", i)]; n != 200 {
			t.Errorf("cache c%d: got %v hits, want 200", i, n)
		}
	}
}

// Recording a hit allocates nothing on the adapter's side once the cache's
// attribute sets exist.
func TestHitAllocatesNothing(t *testing.T) {
	ev, err := otelhybrid.Events(noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	e := hybrid.HitEvent{Cache: "users", Key: "k", Tier: hybrid.TierL1}
	ev.Hit(e)
	if n := testing.AllocsPerRun(1000, func() { ev.Hit(e) }); n != 0 {
		t.Fatalf("a hit allocates %v times", n)
	}
	m := hybrid.MissEvent{Cache: "users", Key: "k", Tier: hybrid.TierL2}
	ev.Miss(m)
	if n := testing.AllocsPerRun(1000, func() { ev.Miss(m) }); n != 0 {
		t.Fatalf("a miss allocates %v times", n)
	}
}

// BenchmarkHit is the adapter's cost per hit with the no-op provider: the
// attribute lookup and the call, without an SDK's aggregation.
func BenchmarkHit(b *testing.B) {
	ev, _ := otelhybrid.Events(noop.NewMeterProvider())
	e := hybrid.HitEvent{Cache: "users", Key: "k", Tier: hybrid.TierL1}
	b.ReportAllocs()
	for b.Loop() {
		ev.Hit(e)
	}
}
