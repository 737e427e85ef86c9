package main

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-cache/strata/hybrid"
)

// metrics are the Prometheus metrics of the server: the caches' events
// (hybrid.Events) and the HTTP requests.
type metrics struct {
	reg *prometheus.Registry
	s   *server

	hits, misses *prometheus.CounterVec // cache, tier
	factory      *prometheus.CounterVec // cache, result
	factoryDur   *prometheus.HistogramVec
	failSafe     *prometheus.CounterVec // cache, reason
	eager        *prometheus.CounterVec // cache
	l2Errors     *prometheus.CounterVec // cache, op, class
	breaker      *prometheus.CounterVec // cache, state
	bpMessages   *prometheus.CounterVec // cache, direction, kind, result
	bpGaps       *prometheus.CounterVec // cache
	requests     *prometheus.CounterVec // route, method, code
	latency      *prometheus.HistogramVec

	// hot holds the counters of the hit path per cache, resolved once.
	hot atomic.Pointer[map[string]*hotCounters]
}

type hotCounters struct {
	hitL1, hitL2, missL1, missL2 prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, s *server) *metrics {
	m := &metrics{reg: reg, s: s}
	f := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: name, Help: help}, labels)
		reg.MustRegister(v)
		return v
	}
	m.hits = f("cache_hits_total", "Reads that found a fresh value, per tier (l1 memory, l2 distributed).", "cache", "tier")
	m.misses = f("cache_misses_total", "Reads a tier had no fresh value for, per tier.", "cache", "tier")
	m.factory = f("cache_factory_calls_total", "Factory (origin) calls that returned, by result.", "cache", "result")
	m.failSafe = f("cache_fail_safe_total", "Stale values served by fail-safe, by reason.", "cache", "reason")
	m.eager = f("cache_eager_refreshes_total", "Background refreshes started by eager refresh.", "cache")
	m.l2Errors = f("cache_l2_errors_total", "Errors of the distributed tier absorbed by the cache, by operation and class.", "cache", "op", "class")
	m.breaker = f("cache_circuit_breaker_changes_total", "Changes of the distributed tier's circuit breaker (opened, closed).", "cache", "state")
	m.bpMessages = f("cache_backplane_messages_total", "Backplane messages sent and received, by kind and result.", "cache", "direction", "kind", "result")
	m.bpGaps = f("cache_backplane_gaps_total", "Times backplane messages may have been lost (reconnect, full queue).", "cache")
	m.requests = f("http_requests_total", "HTTP requests, by route pattern, method and status code.", "route", "method", "code")
	m.factoryDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "strata", Name: "cache_factory_duration_seconds", Help: "How long factory (origin) calls ran.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
	}, []string{"cache"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "strata", Name: "http_request_duration_seconds", Help: "HTTP request latency, by route pattern and method.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	}, []string{"route", "method"})
	reg.MustRegister(m.factoryDur, m.latency)
	return m
}

// registerCaches resolves the hit path's counters and adds the gauges
// read from each cache's Stats at scrape time.
func (m *metrics) registerCaches() {
	hot := map[string]*hotCounters{}
	for name, c := range m.s.caches {
		hot[name] = &hotCounters{
			hitL1:  m.hits.WithLabelValues(name, "l1"),
			hitL2:  m.hits.WithLabelValues(name, "l2"),
			missL1: m.misses.WithLabelValues(name, "l1"),
			missL2: m.misses.WithLabelValues(name, "l2"),
		}
		labels := prometheus.Labels{"cache": name}
		hc := c.c
		gauge := func(name, help string, f func() float64) {
			m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "strata", Name: name, Help: help, ConstLabels: labels,
			}, f))
		}
		gauge("cache_l2_circuit_open", "1 while the cache skips its distributed tier after errors.", func() float64 {
			if hc.Stats().L2CircuitOpen {
				return 1
			}
			return 0
		})
		gauge("cache_recovery_pending", "Changes waiting for the distributed tier to come back.", func() float64 {
			return float64(hc.Stats().RecoveryPending)
		})
	}
	m.hot.Store(&hot)
	m.s.ready.Store(&m.s.caches)
}

func (m *metrics) hotFor(cache string) *hotCounters {
	if p := m.hot.Load(); p != nil {
		return (*p)[cache]
	}
	return nil
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// events returns the hooks that feed the metrics (and the strict writes'
// watch of distributed-tier errors).
func (m *metrics) events() *hybrid.Events {
	return &hybrid.Events{
		Hit: func(e hybrid.HitEvent) {
			if h := m.hotFor(e.Cache); h != nil {
				if e.Tier == hybrid.TierL1 {
					h.hitL1.Inc()
				} else {
					h.hitL2.Inc()
				}
				return
			}
			m.hits.WithLabelValues(e.Cache, e.Tier.String()).Inc()
		},
		Miss: func(e hybrid.MissEvent) {
			if h := m.hotFor(e.Cache); h != nil {
				if e.Tier == hybrid.TierL1 {
					h.missL1.Inc()
				} else {
					h.missL2.Inc()
				}
				return
			}
			m.misses.WithLabelValues(e.Cache, e.Tier.String()).Inc()
		},
		FactoryCall: func(e hybrid.FactoryCallEvent) {
			m.factory.WithLabelValues(e.Cache, result(e.Err)).Inc()
			m.factoryDur.WithLabelValues(e.Cache).Observe(e.Duration.Seconds())
		},
		FailSafe: func(e hybrid.FailSafeEvent) {
			m.failSafe.WithLabelValues(e.Cache, e.Reason.String()).Inc()
		},
		EagerRefresh: func(e hybrid.EagerRefreshEvent) {
			m.eager.WithLabelValues(e.Cache).Inc()
		},
		L2Error: func(e hybrid.L2ErrorEvent) {
			m.l2Errors.WithLabelValues(e.Cache, e.Op, e.Class.String()).Inc()
			if e.Class == hybrid.L2ErrorTimeout {
				return
			}
			switch e.Op {
			case "set", "remove", "expire":
				if p := m.s.ready.Load(); p != nil {
					if c := (*p)[e.Cache]; c != nil && c.strict {
						c.watch.failed(e.Key, e.Err)
					}
				}
			}
		},
		CircuitBreaker: func(e hybrid.CircuitBreakerEvent) {
			state := "closed"
			if e.Open {
				state = "opened"
			}
			m.breaker.WithLabelValues(e.Cache, state).Inc()
		},
		BackplaneMessage: func(e hybrid.BackplaneMessageEvent) {
			m.bpMessages.WithLabelValues(e.Cache, e.Direction.String(), e.Kind.String(), result(e.Err)).Inc()
		},
		BackplaneGap: func(e hybrid.BackplaneGapEvent) {
			m.bpGaps.WithLabelValues(e.Cache).Inc()
		},
	}
}

// codes holds the label of the common status codes, to spare a
// conversion per request.
var codes = func() map[int]string {
	m := map[int]string{}
	for _, c := range []int{200, 204, 304, 400, 401, 404, 405, 409, 413, 500, 502, 503, 504} {
		m[c] = strconv.Itoa(c)
	}
	return m
}()

func (m *metrics) request(route, method string, status int, d time.Duration) {
	code, ok := codes[status]
	if !ok {
		code = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(route, method, code).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
