package main

// HEAD is GET without the body (RFC 9110 9.3.2: "The server SHOULD send
// the same header fields in response to a HEAD request as it would have
// sent if the request method had been GET"), in the error answers too:
// the same status, Content-Type, Content-Length and the headers a client
// acts on (Allow, WWW-Authenticate, ETag), and no body. With the dache
// mode off its routes are the JSON 404 of any unknown path, and /v1
// serves no cache named dache.

import (
	"strings"
	"testing"
)

func TestHuntHeadMirrorsGetEverywhere(t *testing.T) {
	const tok = "tok-hunt-7"
	yaml := peerYAML + "  private:\n    token: " + tok + "\n"
	u, _, _ := peerServer(t, yaml, nil)
	if st, body, _ := send(t, "PUT", u+"/v1/caches/blobs/keys/k", "hello"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	if st, body, _ := send(t, "POST", u+"/dache/k", `{"value":[1]}`); st != 204 {
		t.Fatalf("POST: %d %s", st, body)
	}
	for _, c := range []struct {
		path string
		hdr  []string
		want int
	}{
		{"/v1/caches/blobs/keys/k", nil, 200},
		{"/v1/caches/blobs/keys/k?allow_stale", nil, 200},
		{"/v1/caches/blobs/keys/absent", nil, 404},
		{"/v1/caches/blobs/keys/", nil, 400},
		{"/v1/caches/blobs/keys", nil, 400},
		{"/v1/caches/blobs/keys/__strata:x", nil, 400},
		{"/v1/caches/blobs/keys/k?allow_stale=maybe", nil, 400},
		{"/v1/caches/blobs/keys/k?x=%zz", nil, 400},
		{"/v1/caches/blobs/keys/k", []string{"If-Match", `"nope"`}, 412},
		{"/v1/caches/blobs/keys/k", []string{"If-Unmodified-Since", "Mon, 07 Dec 2026 00:00:00 GMT"}, 501},
		{"/v1/caches/nope/keys/k", nil, 401}, // a cache has a token: no names to anonymous callers
		{"/v1/caches/private/keys/k", nil, 401},
		{"/v1/caches/private/keys/k", []string{"Authorization", "Bearer " + tok}, 404},
		{"/v1/caches/blobs/expire/k", nil, 405},
		{"/v1/caches/blobs/batch-get", nil, 405},
		{"/dache/k", nil, 200},
		{"/dache/absent", nil, 404},
		{"/dache/k", []string{"If-Match", "*"}, 501},
		{"/dache/", nil, 400},
		{"/v1/caches", nil, 200},
		{"/healthz", nil, 200},
		{"/health", nil, 200},
		{"/readyz", nil, 200},
		{"/nothing", nil, 404},
	} {
		gst, gbody, gh := send(t, "GET", u+c.path, "", c.hdr...)
		hst, hbody, hh := send(t, "HEAD", u+c.path, "", c.hdr...)
		what := "HEAD " + c.path + " " + strings.Join(c.hdr, ": ")
		if gst != c.want {
			t.Errorf("GET %s: %d, want %d: %s", c.path, gst, c.want, gbody)
		}
		if hst != gst || hbody != "" {
			t.Errorf("%s: %d with %d body bytes; GET answered %d", what, hst, len(hbody), gst)
			continue
		}
		for _, name := range []string{"Content-Type", "Content-Length", "Etag", "Allow", "Www-Authenticate", "X-Content-Type-Options"} {
			if name == "Content-Length" && gst == 405 {
				continue // the message names the method: "HEAD is not allowed here"
			}
			if hh.Get(name) != gh.Get(name) {
				t.Errorf("%s: %s %q, GET's %q", what, name, hh.Get(name), gh.Get(name))
			}
		}
		if gst >= 400 && gh.Get("Content-Length") == "" {
			t.Errorf("GET %s: an error without Content-Length", c.path)
		}
	}
	// HEAD changed nothing.
	wantValue(t, "after HEADs", u+"/v1/caches/blobs/keys/k", "hello")
}

func TestHuntDacheModeOff(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML+"dache:\n  enabled: false\n", nil)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/dache/k", ""},
		{"POST", "/dache/k", `{"value":1}`},
		{"DELETE", "/dache/k", ""},
		{"GET", "/dache", ""},
		{"GET", "/health", ""},
	} {
		st, body, h := send(t, c.method, u+c.path, c.body)
		wantError(t, "dache off: "+c.method+" "+c.path, st, body, h, 404, "not_found")
	}
	st, body, h := send(t, "GET", u+"/v1/caches/dache/keys/k", "")
	wantError(t, "dache off: the dache cache", st, body, h, 404, "unknown_cache")
	if st, body, _ := send(t, "GET", u+"/v1/caches", ""); st != 200 || strings.Contains(body, `"dache"`) {
		t.Errorf("dache off: /v1/caches: %d %s", st, body)
	}
	if st, _, _ := send(t, "GET", u+"/healthz", ""); st != 200 {
		t.Errorf("dache off: /healthz %d", st)
	}
}
