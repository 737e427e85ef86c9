package otelhybrid_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/hybrid/otelhybrid"
)

// The cache's metrics in Prometheus format, through the OpenTelemetry
// Prometheus exporter: the exporter is a reader of the SDK's
// MeterProvider, and a promhttp handler serves the registry at /metrics.
// A server (strata-server, for one) mounts the same handler.
func Example_prometheus() {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		panic(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())
	ev, err := otelhybrid.Events(mp)
	if err != nil {
		panic(err)
	}
	c, err := hybrid.New(hybrid.Options{Name: "users", Events: ev})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	load := func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) { return "Ada", nil }
	hybrid.GetOrSet(ctx, c, "user:42", load) // a miss and a factory call
	hybrid.GetOrSet(ctx, c, "user:42", load) // a hit

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		panic(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "strata_cache_") && strings.Contains(line, `cache="users"`) && !strings.HasPrefix(line, "#") {
			name, _, _ := strings.Cut(line, "{")
			if name == "strata_cache_factory_calls_total" {
				fmt.Println(name, "present")
			}
		}
	}
	// Output: strata_cache_factory_calls_total present
}
