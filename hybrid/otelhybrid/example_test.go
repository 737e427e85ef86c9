package otelhybrid_test

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

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
