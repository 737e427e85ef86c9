package main

// With LOGGING_REDACT_KEYS the error body of a strict write the
// distributed tier refused does not name the key (the tier's error names
// the prefixed key, redisstore: set "dache:..."), as the logs do not;
// without it the body keeps the tier's whole error.
// Needs peer_http_test.go (peerServer, send, wantError) and
// process_test.go (freePort).

import (
	"strings"
	"testing"
)

func TestHTTPStrictWriteErrorRedactsKeys(t *testing.T) {
	for _, redact := range []bool{true, false} {
		env := map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": "redis://127.0.0.1:" + freePort(t)}
		if redact {
			env["LOGGING_REDACT_KEYS"] = "true"
		}
		u, _, _ := peerServer(t, peerYAML, env)
		// The first write meets the failure (later ones meet the open
		// circuit breaker, whose message names no key).
		st, body, h := send(t, "POST", u+"/dache/secret-key-7", `{"value":1}`)
		wantError(t, "strict write with Redis down", st, body, h, 503, "tier_unavailable")
		if got := strings.Contains(body, "secret-key-7"); got == redact {
			t.Errorf("redact_keys %v: the 503 body names the key: %v: %s", redact, got, body)
		}
		if redact && !strings.Contains(body, "[redacted]") {
			t.Errorf("redact_keys: the 503 body does not say [redacted]: %s", body)
		}
	}
}
