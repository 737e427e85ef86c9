package main

// A request that reaches a cache after the caches were closed (the end of
// a shutdown, a handler that outlived shutdown_timeout) is 503
// shutting_down (docs/server.md, "The native API"), a JSON error, whatever
// the endpoint: never a 500, a 404 for a key that was there, a 204 for a
// write that cannot have happened, or an empty body.

import "testing"

func TestHuntClosedCacheAnswersShuttingDown(t *testing.T) {
	u, s, _ := peerServer(t, peerYAML+"  web:\n    origin:\n      url: http://127.0.0.1:1\n", nil)
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/caches/blobs/keys/k", "v"},
		{"PUT", "/v1/caches/docs/keys/k", `{"a":1}`},
		{"POST", "/dache/k", `{"value":1}`},
	} {
		if st, body, _ := send(t, c.method, u+c.path, c.body); st != 204 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, st, body)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/caches/blobs/keys/k", ""},
		{"GET", "/v1/caches/blobs/keys/absent", ""},
		{"GET", "/v1/caches/blobs/keys/k?allow_stale", ""},
		{"GET", "/v1/caches/docs/keys/k", ""},
		{"GET", "/v1/caches/web/keys/k", ""},
		{"PUT", "/v1/caches/blobs/keys/k", "new"},
		{"PUT", "/v1/caches/blobs/keys/fresh", "new"},
		{"DELETE", "/v1/caches/blobs/keys/k", ""},
		{"POST", "/v1/caches/blobs/expire/k", ""},
		{"POST", "/v1/caches/blobs/clear", ""},
		{"POST", "/v1/caches/blobs/clear?allow_fail_safe", ""},
		{"POST", "/v1/caches/blobs/remove-by-tag", `{"tags":["a"]}`},
		{"POST", "/v1/caches/blobs/remove-by-tag", `{"tags":["a"],"mode":"delete"}`},
		{"POST", "/v1/caches/blobs/batch-get", `{"keys":["k","absent"]}`},
		{"POST", "/v1/caches/docs/batch-get", `{"keys":["k"]}`},
		{"POST", "/v1/caches/web/batch-get", `{"keys":["k"]}`},
		{"GET", "/dache/k", ""},
		{"POST", "/dache/k", `{"value":2}`},
		{"DELETE", "/dache/k", ""},
	} {
		st, body, h := send(t, c.method, u+c.path, c.body)
		wantError(t, "closed: "+c.method+" "+c.path, st, body, h, 503, "shutting_down")
	}
	// HEAD: the status and headers of GET, without the body.
	if st, body, _ := send(t, "HEAD", u+"/v1/caches/blobs/keys/k", ""); st != 503 || body != "" {
		t.Errorf("closed: HEAD: %d %q, want 503 without a body", st, body)
	}
	// Requests refused before the cache is used keep their own answers.
	st, body, h := send(t, "PUT", u+"/v1/caches/blobs/keys/k?ttl=0", "x")
	wantError(t, "closed: bad ttl", st, body, h, 400, "bad_ttl")
	st, body, h = send(t, "GET", u+"/v1/caches/nope/keys/k", "")
	wantError(t, "closed: unknown cache", st, body, h, 404, "unknown_cache")
	// The process lives: /healthz and dache's /health stay 200.
	for _, p := range []string{"/healthz", "/health"} {
		if st, body, _ := send(t, "GET", u+p, ""); st != 200 || body != `{"status":"ok"}`+"\n" {
			t.Errorf("closed: GET %s: %d %q", p, st, body)
		}
	}
}
