// Package tiertest holds the test helpers that the modules of the
// distributed tiers other than Redis (etcd/, postgres/) share: envelopes,
// contexts, waiting for a condition, a provider with the settings their
// tests use, and the benchmark value and latency report.
package tiertest

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
)

// Envelope returns an envelope with timestamp ts holding value, fresh for
// an hour.
func Envelope(ts int64, value []byte) []byte {
	e := envelope.Envelope{Timestamp: ts, FreshUntil: ts + int64(time.Hour), Type: "test", Value: value}
	return e.Append(nil)
}

// Context returns a context that ends after 10 s or with the test.
func Context(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// WaitFor polls cond every 10 ms until it holds, and fails the test,
// naming what it waited for, once timeout has passed.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not standing in for one
	}
}

// QuietLogger discards everything.
func QuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Defaults are ProductionDefaults with synchronous distributed writes, so
// that a test sees a write in the tier once Set returns.
func Defaults() strata.CacheSettings {
	d := strata.ProductionDefaults()
	d.Entry.BackgroundL2Operations = false
	return d
}

// NewProvider returns a provider on s, closed by the test's cleanup; a nil
// Logger is QuietLogger, nil Defaults are Defaults().
func NewProvider(t testing.TB, s strata.Settings) *strata.Provider {
	t.Helper()
	if s.Logger == nil {
		s.Logger = QuietLogger()
	}
	if s.Defaults == nil {
		d := Defaults()
		s.Defaults = &d
	}
	p, err := strata.NewProvider(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Register registers the cache name on p, failing the test on an error.
func Register(t testing.TB, p *strata.Provider, name string, f ...func(*strata.CacheSettings)) *hybrid.Cache {
	t.Helper()
	c, err := p.Register(name, f...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Product is the value of the tiers' benchmarks.
type Product struct {
	SKU   string
	Name  string
	Price float64
	Tags  []string
}

// Sample is the Product the benchmarks store.
var Sample = Product{SKU: "SKU-000123", Name: "A product with a name of some length", Price: 12.5, Tags: []string{"a", "b", "c"}}

// Latencies collects per-operation durations.
type Latencies []time.Duration

// Report reports their p50 and p99 as p50-us and p99-us.
func (l Latencies) Report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	b.ReportMetric(float64(l[len(l)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(l[len(l)*99/100].Microseconds()), "p99-us")
}
