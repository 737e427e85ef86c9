package main

// BUG (RFC 9110 13): If-Match and If-Unmodified-Since on a GET or HEAD
// were ignored, so a client that asked "the value, if it is still the one
// with this ETag" got whatever the key held, or a 404. A GET answers with
// an ETag, so it evaluates If-Match (strong comparison, "*" for any value):
// 412 precondition_failed when the key holds no value, or one whose ETag
// is not listed. Nothing carries a Last-Modified, so If-Unmodified-Since
// alone is 501 not_implemented, as on writes, rather than ignored; with
// If-Match it is not evaluated (13.2.2). dache's GET has no ETag: both are
// 501 there. Needs peer_http_test.go (peerServer, send, req, wantError).

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHTTPConditionalRead(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gone" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("from-origin"))
	}))
	t.Cleanup(origin.Close)
	yaml := peerYAML + "  up:\n    origin:\n      url: " + origin.URL + "\n"
	u, _, _ := peerServer(t, yaml, nil)
	k := u + "/v1/caches/blobs/keys/k"
	st, body, h := send(t, "PUT", k, "orig")
	if st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	tag := h.Get("Etag")
	const other = `"0000000000000000"`
	const date = "Sat, 01 Jan 2000 00:00:00 GMT"

	for _, c := range []struct {
		method, path string
		hdr          []string
		status       int
		code         string // of an error
	}{
		// If-Match holds: the value.
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Match", tag}, 200, ""},
		{"HEAD", "/v1/caches/blobs/keys/k", []string{"If-Match", tag}, 200, ""},
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Match", "*"}, 200, ""},
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Match", other + ", " + tag}, 200, ""},
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Match", other + "," + tag + "," + other}, 200, ""},
		{"GET", "/v1/caches/up/keys/v", []string{"If-Match", etag([]byte("from-origin"))}, 200, ""},
		// If-Match, then If-None-Match: 304.
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Match", tag, "If-None-Match", tag}, 304, ""},
		// If-Match is evaluated, If-Unmodified-Since is not (13.2.2).
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Match", tag, "If-Unmodified-Since", date}, 200, ""},
		// If-Match does not hold: 412.
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Match", other}, 412, "precondition_failed"},
		{"HEAD", "/v1/caches/blobs/keys/k", []string{"If-Match", other}, 412, ""},
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Match", "W/" + tag}, 412, "precondition_failed"},
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Match", tag[1 : len(tag)-1]}, 412, "precondition_failed"},
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Match", ""}, 412, "precondition_failed"},
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Match", other, "If-None-Match", tag}, 412, "precondition_failed"},
		{"GET", "/v1/caches/blobs/keys/missing", []string{"If-Match", "*"}, 412, "precondition_failed"},
		{"GET", "/v1/caches/blobs/keys/missing", []string{"If-Match", tag}, 412, "precondition_failed"},
		{"GET", "/v1/caches/up/keys/gone", []string{"If-Match", "*"}, 412, "precondition_failed"},
		{"GET", "/v1/caches/up/keys/v", []string{"If-Match", other}, 412, "precondition_failed"},
		// No Last-Modified: If-Unmodified-Since alone is not evaluated.
		{"GET", "/v1/caches/blobs/keys/k", []string{"If-Unmodified-Since", date}, 501, "not_implemented"},
		{"HEAD", "/v1/caches/blobs/keys/k", []string{"If-Unmodified-Since", date}, 501, ""},
		{"GET", "/v1/caches/blobs/keys/missing", []string{"If-Unmodified-Since", date}, 501, "not_implemented"},
		// dache's answers have no ETag.
		{"GET", "/dache/d", []string{"If-Match", "*"}, 501, "not_implemented"},
		{"GET", "/dache/d", []string{"If-Unmodified-Since", date}, 501, "not_implemented"},
		// Without a precondition, as before.
		{"GET", "/v1/caches/blobs/keys/missing", nil, 404, "not_found"},
		{"GET", "/v1/caches/up/keys/gone", nil, 404, "not_found"},
	} {
		what := c.method + " " + c.path + " " + joinHdr(c.hdr)
		st, body, h := req(t, c.method, u+c.path, nil, c.hdr...)
		if c.code != "" {
			wantError(t, what, st, body, h, c.status, c.code)
			continue
		}
		if st != c.status {
			t.Errorf("%s: %d, want %d: %s", what, st, c.status, body)
			continue
		}
		if c.status == 200 && c.method == "GET" && body == "" {
			t.Errorf("%s: 200 without the value", what)
		}
	}

	// Several If-Match lines are one list.
	r, err := http.NewRequestWithContext(t.Context(), "GET", k, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Add("If-Match", other)
	r.Header.Add("If-Match", tag)
	resp, err := peerClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("two If-Match lines, the second holding: %d, want 200", resp.StatusCode)
	}
}

func joinHdr(hdr []string) string {
	s := ""
	for i := 0; i+1 < len(hdr); i += 2 {
		s += hdr[i] + ": " + hdr[i+1] + "; "
	}
	return s
}
