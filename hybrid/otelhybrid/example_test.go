package otelhybrid_test

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/hybrid/otelhybrid"
)

// Metrics for one cache. In an application the MeterProvider is the SDK's,
// for example sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
// from go.opentelemetry.io/otel/sdk/metric.
func Example() {
	var mp metric.MeterProvider = noop.NewMeterProvider()
	ev, err := otelhybrid.Events(mp)
	if err != nil {
		panic(err)
	}
	c, err := hybrid.New(hybrid.Options{Name: "users", Events: ev})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	v, err := hybrid.GetOrSet(context.Background(), c, "user:42",
		func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) { return "Ada", nil })
	fmt.Println(v, err)
	// Output: Ada <nil>
}

// Metrics for every cache of a provider: each measurement carries the
// cache's name as the attribute cache.
func Example_provider() {
	ev, err := otelhybrid.Events(noop.NewMeterProvider())
	if err != nil {
		panic(err)
	}
	p, err := strata.NewProvider(strata.Settings{Events: ev})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	users, err := p.Register("users")
	if err != nil {
		panic(err)
	}
	orders, err := p.Register("orders")
	if err != nil {
		panic(err)
	}
	fmt.Println(users.Name(), orders.Name())
	// Output: users orders
}

// Traces and metrics end to end through the OpenTelemetry SDK: a
// TracerProvider for the spans and a MeterProvider for the instruments, on
// every cache of a provider. Here the spans go to an in-memory recorder and
// the metrics to a manual reader; in an application, to exporters
// (sdktrace.WithBatcher(otlptrace...), sdkmetric.WithReader(prometheus...)).
func Example_traces() {
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(ctx)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	tr, err := otelhybrid.NewTracer(tp)
	if err != nil {
		panic(err)
	}
	ev, err := otelhybrid.Events(mp)
	if err != nil {
		panic(err)
	}
	p, err := strata.NewProvider(strata.Settings{Tracer: tr, Events: ev})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	users, err := p.Register("users")
	if err != nil {
		panic(err)
	}

	ctx, req := tp.Tracer("app").Start(ctx, "GET /users/42")
	load := func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) { return "Ada", nil }
	hybrid.GetOrSet(ctx, users, "user:42", load) // a miss: the factory runs
	hybrid.GetOrSet(ctx, users, "user:42", load) // a memory hit: no span
	req.End()

	for _, s := range spans.Ended() {
		fmt.Println("span:", s.Name())
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		panic(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "strata.cache.hits" {
				fmt.Println("metric:", m.Name, sum.DataPoints[0].Value)
			}
		}
	}
	// Output:
	// span: execute factory
	// span: get or set from cache
	// span: GET /users/42
	// metric: strata.cache.hits 1
}
