package main

// Conditional writes (RFC 9110 13.1): If-Match, If-None-Match and
// If-Unmodified-Since on a PUT, DELETE, expire or dache POST/DELETE. Needs
// peer_http_test.go (peerServer, send, wantError, wantValue, dacheValue).

import (
	"testing"
)

// TestHTTPConditionalWriteRefused: the server ignored the preconditions of
// a write, so PUT with If-Match of a stale ETag (optimistic concurrency)
// or If-None-Match: * (create only) overwrote what another client had just
// written, and answered 204. It cannot compare and write atomically, so a
// write with a precondition is 501 not_implemented and changes nothing,
// whether the condition holds or not. Reads keep If-None-Match (304).
func TestHTTPConditionalWriteRefused(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	k := u + "/v1/caches/blobs/keys/k"
	st, body, h := send(t, "PUT", k, "orig")
	if st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	tag := h.Get("Etag")
	if st, body, _ := send(t, "POST", u+"/dache/d", `{"value":"orig"}`); st != 204 {
		t.Fatalf("dache POST: %d %s", st, body)
	}
	for _, c := range []struct {
		method, path, body string
		hdr, val           string
	}{
		{"PUT", "/v1/caches/blobs/keys/k", "new", "If-Match", `"0000000000000000"`},
		{"PUT", "/v1/caches/blobs/keys/k", "new", "If-Match", tag}, // holds: still refused
		{"PUT", "/v1/caches/blobs/keys/k", "new", "If-Match", "*"},
		{"PUT", "/v1/caches/blobs/keys/k", "new", "If-None-Match", "*"},
		{"PUT", "/v1/caches/blobs/keys/k", "new", "If-None-Match", tag},
		{"PUT", "/v1/caches/blobs/keys/k", "new", "If-Unmodified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"},
		{"PUT", "/v1/caches/blobs/keys/k", "new", "If-Match", ""},
		{"DELETE", "/v1/caches/blobs/keys/k", "", "If-Match", `"0000000000000000"`},
		{"DELETE", "/v1/caches/blobs/keys/k", "", "If-None-Match", "*"},
		{"POST", "/v1/caches/blobs/expire/k", "", "If-Match", `"0000000000000000"`},
		{"POST", "/dache/d", `{"value":"new"}`, "If-None-Match", "*"},
		{"POST", "/dache/d", `{"value":"new"}`, "If-Match", `"0000000000000000"`},
		{"DELETE", "/dache/d", "", "If-Match", `"0000000000000000"`},
	} {
		st, body, h := send(t, c.method, u+c.path, c.body, c.hdr, c.val)
		wantError(t, c.method+" "+c.path+" "+c.hdr+": "+c.val, st, body, h, 501, "not_implemented")
	}
	wantValue(t, "value after refused conditional writes", k, "orig")
	wantValue(t, "dache value after refused conditional writes", u+"/dache/d", dacheValue(`"orig"`))
	// Reads keep their precondition, and a write without one works.
	if st, _, _ := send(t, "GET", k, "", "If-None-Match", tag); st != 304 {
		t.Errorf("GET If-None-Match: %d, want 304", st)
	}
	if st, _, _ := send(t, "HEAD", k, "", "If-None-Match", tag); st != 304 {
		t.Errorf("HEAD If-None-Match: %d, want 304", st)
	}
	if st, body, _ := send(t, "PUT", k, "new"); st != 204 {
		t.Errorf("PUT without a precondition: %d %s", st, body)
	}
	wantValue(t, "after an unconditional PUT", k, "new")
}
