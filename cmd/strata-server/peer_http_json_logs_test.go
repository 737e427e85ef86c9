package main

// BUG: with engine redis, the process's stderr has plain-text go-redis lines
// ("redis: 2026/.. pool.go:770: redis: connection pool: failed to dial ...")
// among its JSON lines.
// docs/server.md ("Running"): "The process logs JSON lines to stderr
// (LOG_FORMAT=text for text)". SPEC.md 8: log/slog for logs.
// Cause: main.go run never calls strata.RouteRedisLogs(log) (redislog.go),
// which exists to route go-redis's own logger into slog.
// Needs main_test.go (startProc, freePort) and peer_http_test.go (send).

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestHTTPStderrIsJSONLines(t *testing.T) {
	// A Redis that is not there: go-redis's pool logs its dial failures.
	p := startProc(t, map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": "redis://127.0.0.1:" + freePort(t), "LOG_REQUESTS": "true"})
	send(t, "GET", p.URL+"/readyz", "")
	send(t, "POST", p.URL+"/dache/k", `{"value":1}`)
	if err := p.Term(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(p.Log()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("stderr line is not JSON: %q", line)
		}
	}
}
