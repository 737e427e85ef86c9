package main

// Unusual HTTP input: a query string that does not parse, a parameter
// given twice, a body with a content coding, keys with empty and dot
// segments. Needs peer_http_test.go (peerServer, send, wantError,
// wantValue, dacheValue).

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/strata-cache/strata/hybrid"
)

// TestHTTPMalformedQueryRefused: r.URL.Query() drops a pair it cannot
// parse (an invalid escape, a ';' separator) without a word, so
// ?ttl=5m;x=1 was a 204 with the cache's own duration, and
// ?allow_fail_safe=1;x=1 cleared the cache without fail-safe. A query that
// does not parse, or a parameter given twice, is a 400 and changes
// nothing.
func TestHTTPMalformedQueryRefused(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	k := u + "/v1/caches/blobs/keys/k"
	if st, body, _ := send(t, "PUT", k, "orig"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	for _, c := range []struct{ method, query, code string }{
		{"PUT", "ttl=%zz", "bad_request"},
		{"PUT", "ttl=5m;x=1", "bad_request"},
		{"PUT", "x=%G1&ttl=5m", "bad_request"},
		{"PUT", "ttl=5m&ttl=-1s", "bad_ttl"},
		{"PUT", "ttl=1h&ttl=1h", "bad_ttl"},
		{"GET", "allow_stale=%zz", "bad_request"},
		{"GET", "allow_stale=1;x", "bad_request"},
		{"GET", "allow_stale=1&allow_stale=0", "bad_request"},
	} {
		st, body, h := send(t, c.method, k+"?"+c.query, "new")
		wantError(t, c.method+" ?"+c.query, st, body, h, 400, c.code)
	}
	wantValue(t, "value after refused queries", k, "orig")
	for _, q := range []string{"allow_fail_safe=1;x=1", "allow_fail_safe=%zz", "allow_fail_safe=1&allow_fail_safe=1"} {
		st, body, h := send(t, "POST", u+"/v1/caches/blobs/clear?"+q, "")
		wantError(t, "clear ?"+q, st, body, h, 400, "bad_request")
	}
	wantValue(t, "value after refused clears", k, "orig")
	// Well-formed queries still work.
	if st, body, _ := send(t, "PUT", k+"?ttl=1h&other=%41", "new"); st != 204 {
		t.Fatalf("PUT ?ttl=1h: %d %s", st, body)
	}
	wantValue(t, "after a well-formed PUT", k+"?allow_stale=1", "new")
}

// TestHTTPContentEncodingRefused: the server does not decode a content
// coding, so a PUT with Content-Encoding: gzip stored the compressed bytes
// and GET served them as the value (without Content-Encoding). A body
// with a coding other than identity is 415 (RFC 9110 15.5.16, with
// Accept-Encoding) and changes nothing.
func TestHTTPContentEncodingRefused(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write([]byte(s))
		_ = zw.Close()
		return b.String()
	}
	k := u + "/v1/caches/blobs/keys/k"
	if st, body, _ := send(t, "PUT", k, "orig"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	if st, body, _ := send(t, "POST", u+"/dache/d", `{"value":"orig"}`); st != 204 {
		t.Fatalf("dache POST: %d %s", st, body)
	}
	for _, c := range []struct{ method, path, body, coding string }{
		{"PUT", "/v1/caches/blobs/keys/k", gz("hello"), "gzip"},
		{"PUT", "/v1/caches/blobs/keys/k", gz("hello"), "GZIP"},
		{"PUT", "/v1/caches/blobs/keys/k", gz("hello"), "identity, gzip"},
		{"PUT", "/v1/caches/docs/keys/k", gz(`{"a":1}`), "gzip"},
		{"PUT", "/v1/caches/blobs/keys/k", "x", "br"},
		{"POST", "/dache/d", gz(`{"value":"new"}`), "gzip"},
		{"POST", "/v1/caches/blobs/batch-get", gz(`{"keys":["k"]}`), "gzip"},
		{"POST", "/v1/caches/blobs/remove-by-tag", gz(`{"tags":["t"]}`), "deflate"},
	} {
		st, body, h := send(t, c.method, u+c.path, c.body, "Content-Encoding", c.coding)
		wantError(t, c.method+" "+c.path+" Content-Encoding "+c.coding, st, body, h, 415, "unsupported_encoding")
		if st == 415 && h.Get("Accept-Encoding") != "identity" {
			t.Errorf("%s %s: 415 with Accept-Encoding %q, want identity", c.method, c.path, h.Get("Accept-Encoding"))
		}
	}
	wantValue(t, "value after refused encodings", k, "orig")
	wantValue(t, "dache value after refused encodings", u+"/dache/d", dacheValue(`"orig"`))
	// identity is no coding at all.
	if st, body, _ := send(t, "PUT", k, "plain", "Content-Encoding", "identity"); st != 204 {
		t.Fatalf("PUT Content-Encoding identity: %d %s", st, body)
	}
	wantValue(t, "identity", k, "plain")
}

// TestHTTPKeyPathExact: docs/server.md, "Keys are the rest of the path".
// ServeMux cleaned the path and redirected: PUT .../keys/https://x.io/p
// answered 307 to .../keys/https:/x.io/p (a client that follows stored the
// key https:/x.io/p, which batch-get and Go clients do not find), and
// DELETE .../keys/a/../b went to .../keys/b. The key is the rest of the
// path as sent, empty and dot segments included, with no redirect.
func TestHTTPKeyPathExact(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	if st, body, _ := send(t, "PUT", u+"/v1/caches/blobs/keys/b", "b"); st != 204 {
		t.Fatalf("PUT b: %d %s", st, body)
	}
	for i, c := range []struct{ path, key string }{
		{"https://x.io/p", "https://x.io/p"},
		{"a//b", "a//b"},
		{"a/./b", "a/./b"},
		{"a/../b", "a/../b"},
		{"../b", "../b"},
		{"a/.", "a/."},
		{"a//", "a//"},
		{"/lead", "/lead"},
		{"%2E%2E", ".."},
		{"%2E", "."},
	} {
		p := u + "/v1/caches/blobs/keys/" + c.path
		v := "v" + string(rune('0'+i))
		st, body, h := send(t, "PUT", p, v)
		if st != 204 {
			t.Errorf("PUT %s: %d %s (Location %q)", c.path, st, body, h.Get("Location"))
			continue
		}
		wantValue(t, "GET "+c.path, p, v)
		bq, _ := json.Marshal(map[string][]string{"keys": {c.key}})
		st, body, _ = send(t, "POST", u+"/v1/caches/blobs/batch-get", string(bq))
		var got batchGetResponse
		if err := json.Unmarshal([]byte(body), &got); st != 200 || err != nil || got.Values[c.key] == nil {
			t.Errorf("PUT %s: the key %q is not found by batch-get: %d %s", c.path, c.key, st, body)
		}
	}
	// expire and DELETE work on the key as sent, not on the cleaned path.
	for _, m := range []struct{ method, path string }{
		{"POST", "/v1/caches/blobs/expire/a/../b"},
		{"DELETE", "/v1/caches/blobs/keys/a/../b"},
		{"DELETE", "/v1/caches/blobs/keys/x/./b"},
	} {
		if st, body, h := send(t, m.method, u+m.path, ""); st != 204 {
			t.Errorf("%s %s: %d %s (Location %q)", m.method, m.path, st, body, h.Get("Location"))
		}
	}
	wantValue(t, "b after expire and DELETE of a/../b", u+"/v1/caches/blobs/keys/b", "b")
	if st, _, _ := send(t, "GET", u+"/v1/caches/blobs/keys/a/../b", ""); st != 404 {
		t.Errorf("GET a/../b after its DELETE: %d, want 404", st)
	}
	// The dache interface, over the dache cache.
	if st, body, h := send(t, "POST", u+"/dache/http://x.io//y", `{"value":1}`); st != 204 {
		t.Fatalf("dache POST http://x.io//y: %d %s (Location %q)", st, body, h.Get("Location"))
	}
	wantValue(t, "dache http://x.io//y", u+"/dache/http://x.io//y", dacheValue("1"))
	wantValue(t, "native http://x.io//y", u+"/v1/caches/dache/keys/http:%2F%2Fx.io%2F%2Fy", "1")
	// Other methods on such a path: the JSON 405, not a redirect.
	st, body, h := send(t, "PATCH", u+"/v1/caches/blobs/keys/a//b", "")
	wantError(t, "PATCH a//b", st, body, h, 405, "method_not_allowed")
}

// TestHTTPOriginDotKeyRefused: in origin mode the key is the last segment
// of the origin's path, GET {url}/{key}; url.PathEscape leaves dots alone,
// so the key ".." (sent as %2E%2E) made the server call GET {url}/..,
// another resource of the origin (with the configured headers). "." and
// ".." are 400 bad_key there, in GET and batch-get, and the origin is not
// called.
func TestHTTPOriginDotKeyRefused(t *testing.T) {
	up := &upstream{status: 200, body: "secret index"}
	us := httptest.NewServer(up)
	defer us.Close()
	u, _, _ := peerServer(t, "caches:\n  web:\n    origin:\n      url: "+us.URL+"/base/items\n", nil)
	for _, p := range []string{"%2E%2E", "%2E", "..", "."} {
		st, body, h := send(t, "GET", u+"/v1/caches/web/keys/"+p, "")
		wantError(t, "GET key "+p, st, body, h, 400, "bad_key")
	}
	// A batch with a bad key is refused before the origin is called for
	// any key (it used to call it for the keys before the bad one).
	for _, bad := range []string{`".."`, `""`, `"` + strings.Repeat("k", 2000) + `"`} {
		st, body, h := send(t, "POST", u+"/v1/caches/web/batch-get", `{"keys":["a",`+bad+`,"b"]}`)
		wantError(t, "batch-get with "+bad[:min(len(bad), 8)], st, body, h, 400, "bad_key")
	}
	if n := up.calls.Load(); n != 0 {
		t.Errorf("origin called %d times for batches with a bad key, want 0", n)
	}
	// Dots inside a key are no dot segment: a/.. is one escaped segment.
	up.seen = make(chan string, 1)
	if st, body, _ := send(t, "GET", u+"/v1/caches/web/keys/a/..", ""); st != 200 || body != "secret index" {
		t.Errorf("GET a/..: %d %q", st, body)
	}
	if p := <-up.seen; p != "/base/items/a%2F.." {
		t.Errorf("origin path %q, want /base/items/a%%2F..", p)
	}
}

// TestHTTPStoredValueNotJSON: a JSON cache whose value was written by a
// client of the library as invalid JSON (the server checks every body it
// stores, the library does not) answers an error naming the key: it used
// to serve the bytes as application/json from GET and /dache, and a 200
// with an empty body from batch-get.
func TestHTTPStoredValueNotJSON(t *testing.T) {
	u, s, _ := peerServer(t, "caches:\n  users:\n    value_type: json\n", nil)
	ctx := context.Background()
	if err := hybrid.Set(ctx, s.caches["users"].c, "bad", json.RawMessage("{not json")); err != nil {
		t.Fatal(err)
	}
	if st, body, _ := send(t, "PUT", u+"/v1/caches/users/keys/good", `{"ok":true}`); st != 204 {
		t.Fatalf("PUT good: %d %s", st, body)
	}
	st, body, h := send(t, "GET", u+"/v1/caches/users/keys/bad", "")
	wantError(t, "GET bad", st, body, h, 500, "stored_value_invalid")
	st, body, h = send(t, "POST", u+"/v1/caches/users/batch-get", `{"keys":["good","bad"]}`)
	wantError(t, "batch-get good, bad", st, body, h, 500, "stored_value_invalid")
	if !strings.Contains(body, `\"bad\"`) {
		t.Errorf("the error does not name the key: %s", body)
	}
	if st, body, _ := send(t, "GET", u+"/v1/caches/users/keys/good", ""); st != 200 || !json.Valid([]byte(body)) {
		t.Errorf("GET good: %d %q", st, body)
	}
}

// TestHTTPKeyRouteWithoutKey: a key route without the slash before its key
// (.../keys, .../expire, /dache) is the empty key, a JSON 400 bad_key
// after the usual authorization; ServeMux used to answer 307 with an HTML
// body, to the path with the slash.
func TestHTTPKeyRouteWithoutKey(t *testing.T) {
	u, _, _ := peerServer(t, "caches:\n  blobs: {}\n", nil)
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/caches/blobs/keys"}, {"PUT", "/v1/caches/blobs/keys"}, {"DELETE", "/v1/caches/blobs/keys"},
		{"POST", "/v1/caches/blobs/expire"}, {"GET", "/dache"}, {"POST", "/dache"},
	} {
		st, body, h := send(t, c.method, u+c.path, "x")
		wantError(t, c.method+" "+c.path, st, body, h, 400, "bad_key")
	}
	st, body, h := send(t, "GET", u+"/v1/caches/nope/keys", "")
	wantError(t, "GET an unknown cache's keys", st, body, h, 404, "unknown_cache")
}
