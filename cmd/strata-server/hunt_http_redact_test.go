package main

// LOGGING_REDACT_KEYS (docs/server.md, Environment): "cache keys never
// appear in logs (request logs show the route pattern ... instead of the
// path; the library's logs say [redacted], also inside logged errors; a
// request failed line has every quoted string of its error redacted)".
// /metrics labels requests by route pattern, "never the key", redaction or
// not. Every endpoint and several failures are driven with keys that hold
// a marker; neither the log nor /metrics may show it.

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/strata-cache/strata/hybrid"
)

func TestHuntRedactedKeysStayOutOfLogsAndMetrics(t *testing.T) {
	const marker = "Zq7sekrit"
	up := &upstream{status: 500, body: "boom"}
	us := httptest.NewServer(up)
	defer us.Close()
	yaml := peerYAML + "  web:\n    origin:\n      url: " + us.URL + "\n  gone:\n    origin:\n      url: http://127.0.0.1:" + freePort(t) + "\n"
	for _, redact := range []bool{true, false} {
		env := map[string]string{}
		if redact {
			env["LOGGING_REDACT_KEYS"] = "true"
		}
		redactedRun(t, yaml, env, marker, redact)
	}
}

// redactedRun drives one server; without redaction the log must show the
// marker (the check above is not vacuous), with it nothing may.
func redactedRun(t *testing.T, yaml string, env map[string]string, marker string, redact bool) {
	u, s, logs := peerServer(t, yaml, env)
	// A value of a JSON cache that is not JSON (written by a Go client):
	// its read is a logged "request failed".
	if err := hybrid.Set(context.Background(), s.caches["docs"].c, "bad-"+marker, json.RawMessage("{not json")); err != nil {
		t.Fatal(err)
	}
	k := "user:" + marker
	long := marker + strings.Repeat("x", 1100)
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/caches/blobs/keys/" + k, "v"},
		{"GET", "/v1/caches/blobs/keys/" + k, ""},
		{"HEAD", "/v1/caches/blobs/keys/" + k, ""},
		{"GET", "/v1/caches/blobs/keys/a/../" + k, ""},
		{"GET", "/v1/caches/blobs/keys/absent-" + marker, ""},
		{"POST", "/v1/caches/blobs/expire/" + k, ""},
		{"DELETE", "/v1/caches/blobs/keys/" + k, ""},
		{"PATCH", "/v1/caches/blobs/keys/" + k, ""},          // 405
		{"PUT", "/v1/caches/blobs/keys/" + long, "v"},        // bad_key
		{"PUT", "/v1/caches/blobs/keys/" + k + "?ttl=0", ""}, // bad_ttl
		{"PUT", "/v1/caches/docs/keys/" + k, "not json"},     // bad_body
		{"GET", "/v1/caches/docs/keys/bad-" + marker, ""},    // stored_value_invalid
		{"POST", "/v1/caches/docs/batch-get", `{"keys":["bad-` + marker + `"]}`},
		{"POST", "/v1/caches/blobs/batch-get", `{"keys":["` + k + `","__strata:` + marker + `"]}`},
		{"GET", "/v1/caches/web/keys/" + k, ""},  // origin 500: 502
		{"GET", "/v1/caches/gone/keys/" + k, ""}, // origin unreachable: 502
		{"POST", "/v1/caches/web/batch-get", `{"keys":["` + k + `"]}`},
		{"GET", "/v1/caches/nope-" + marker + "/keys/" + k, ""},
		{"POST", "/dache/" + k, `{"value":1}`},
		{"GET", "/dache/" + k, ""},
		{"DELETE", "/dache/" + k, ""},
		{"GET", "/v1/caches/blobs//keys/" + k, ""}, // ServeMux cleans and redirects
		{"GET", "/nothing/" + k, ""},
	} {
		send(t, c.method, u+c.path, c.body)
	}
	_, metrics, _ := send(t, "GET", u+"/metrics", "")
	if strings.Contains(metrics, marker) {
		for l := range strings.SplitSeq(metrics, "\n") {
			if strings.Contains(l, marker) {
				t.Errorf("/metrics holds a key: %s", l)
			}
		}
	}
	log := logs.String()
	if !strings.Contains(log, `"msg":"request"`) || !strings.Contains(log, "request failed") {
		t.Fatalf("the requests were not logged (or nothing failed): %s", log)
	}
	if !redact {
		if !strings.Contains(log, marker) {
			t.Errorf("without redact_keys the log never shows a key: the check is vacuous")
		}
		return
	}
	for l := range strings.SplitSeq(log, "\n") {
		if strings.Contains(l, marker) {
			t.Errorf("redact_keys: a log line holds a key: %s", l)
		}
	}
}
