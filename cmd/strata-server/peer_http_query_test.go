package main

// Query parameters given without a value: ?ttl (or ?ttl=) on a PUT, and
// the boolean flags ?allow_stale and ?allow_fail_safe; a max-age given
// twice. Needs peer_http_test.go (peerServer, peerClient, send,
// wantError, wantValue) and main_test.go (waitFor).

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// failSafeYAML has a cache whose expired or cleared entries stay fail-safe
// fallbacks, which ?allow_stale serves.
const failSafeYAML = `
caches:
  fs:
    duration: 1h
    fail_safe: true
    fail_safe_max_duration: 2h
`

// TestHTTPEmptyTTLRefused: ?ttl= with no value was taken as no TTL, so the
// PUT stored with the max-age or the cache's duration and answered 204: the
// client sent a TTL that is not one. It is 400 bad_ttl, and changes
// nothing.
func TestHTTPEmptyTTLRefused(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	k := u + "/v1/caches/blobs/keys/k"
	if st, body, _ := send(t, "PUT", k, "orig"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	for _, c := range []struct {
		name, query string
		hdr         []string
		status      int
		code        string
	}{
		{"empty", "?ttl=", nil, 400, "bad_ttl"},
		{"bare", "?ttl", nil, 400, "bad_ttl"},
		{"empty among others", "?x=1&ttl=&y=2", nil, 400, "bad_ttl"},
		{"empty beside max-age", "?ttl=", []string{"Cache-Control", "max-age=60"}, 400, "bad_ttl"},
		{"empty twice", "?ttl=&ttl=", nil, 400, "bad_ttl"},
		{"valid", "?ttl=5m", nil, 204, ""},
		{"absent", "", nil, 204, ""},
		{"absent, max-age", "", []string{"Cache-Control", "max-age=60"}, 204, ""},
	} {
		st, body, h := send(t, "PUT", k+c.query, "new", c.hdr...)
		if c.status != 204 {
			wantError(t, c.name+" "+c.query, st, body, h, c.status, c.code)
			wantValue(t, "after the refused "+c.name+" "+c.query, k, "orig")
			continue
		}
		if st != 204 {
			t.Errorf("%s %s: %d %s, want 204", c.name, c.query, st, body)
		}
		if st, body, _ := send(t, "PUT", k, "orig"); st != 204 {
			t.Fatalf("PUT back: %d %s", st, body)
		}
	}
}

// TestHTTPBareFlagIsTrue: a boolean query parameter given without a value
// (?allow_stale, ?allow_fail_safe, or with an empty one) was false, the
// opposite of what a caller who sends a bare flag means (Elasticsearch's
// ?pretty). It is true; absent is false, and a value is read as before.
func TestHTTPBareFlagIsTrue(t *testing.T) {
	u, _, _ := peerServer(t, failSafeYAML, nil)
	base := u + "/v1/caches/fs/"
	if st, body, _ := send(t, "PUT", base+"keys/stale", "old"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	if st, body, _ := send(t, "POST", base+"expire/stale", ""); st != 204 {
		t.Fatalf("expire: %d %s", st, body)
	}
	for _, c := range []struct {
		query     string
		stale     bool   // served stale, else 404
		badStatus int    // a refused query
		code      string // its code
	}{
		{query: "?allow_stale", stale: true},
		{query: "?allow_stale=", stale: true},
		{query: "?x=1&allow_stale", stale: true},
		{query: "?allow_stale=1", stale: true},
		{query: "?allow_stale=true", stale: true},
		{query: ""},
		{query: "?allow_stale=0"},
		{query: "?allow_stale=false"},
		{query: "?allow_stale_x"},
		{query: "?allow_stale&allow_stale", badStatus: 400, code: "bad_request"},
		{query: "?allow_stale=yes", badStatus: 400, code: "bad_request"},
	} {
		st, body, h := send(t, "GET", base+"keys/stale"+c.query, "")
		switch {
		case c.badStatus != 0:
			wantError(t, "GET "+c.query, st, body, h, c.badStatus, c.code)
		case c.stale:
			if st != 200 || body != "old" || h.Get(staleHeader) != "true" {
				t.Errorf("GET %q: %d %q %s %q, want 200 \"old\" served stale", c.query, st, body, staleHeader, h.Get(staleHeader))
			}
		default:
			wantError(t, "GET "+c.query, st, body, h, 404, "not_found")
		}
	}
	// clear?allow_fail_safe keeps the entries as fail-safe fallbacks;
	// without it they are gone.
	for i, c := range []struct {
		query     string
		keep      bool
		badStatus int
	}{
		{query: "?allow_fail_safe", keep: true},
		{query: "?allow_fail_safe=", keep: true},
		{query: "?allow_fail_safe=1", keep: true},
		{query: ""},
		{query: "?allow_fail_safe=0"},
		{query: "?allow_fail_safe=maybe", badStatus: 400},
	} {
		v := "v" + string(rune('0'+i))
		if st, body, _ := send(t, "PUT", base+"keys/c", v); st != 204 {
			t.Fatalf("PUT: %d %s", st, body)
		}
		st, body, h := send(t, "POST", base+"clear"+c.query, "")
		if c.badStatus != 0 {
			wantError(t, "clear "+c.query, st, body, h, c.badStatus, "bad_request")
			wantValue(t, "after the refused clear "+c.query, base+"keys/c", v)
			continue
		}
		if st != 204 {
			t.Fatalf("clear %q: %d %s", c.query, st, body)
		}
		st, body, _ = send(t, "GET", base+"keys/c?allow_stale=1", "")
		if got := st == 200 && body == v; got != c.keep {
			t.Errorf("clear %q, then GET ?allow_stale=1: %d %q; want the value kept as a fallback: %v", c.query, st, body, c.keep)
		}
	}
}

// TestHTTPMaxAgeGivenTwiceRefused: of two Cache-Control max-age
// directives on a PUT the first won and the second was not read, so
// max-age=10, max-age=-1 stored with 10 seconds and a 204; and a directive
// written with white space around '=' (max-age = 1) was skipped, storing
// with the cache's duration. Two max-age directives, in one line or two,
// are 400 bad_ttl (as ?ttl given twice) and change nothing; the spaced one
// is read.
func TestHTTPMaxAgeGivenTwiceRefused(t *testing.T) {
	u, _, _ := peerServer(t, "caches:\n  blobs:\n    duration: 1h\n    jitter_max_duration: 0s\n", nil)
	k := u + "/v1/caches/blobs/keys/k"
	if st, body, _ := send(t, "PUT", k, "orig"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	for _, cc := range [][]string{
		{"max-age=10, max-age=-1"},
		{"max-age=10, max-age=10"},
		{"max-age=10, MAX-AGE=20"},
		{"max-age=10", "max-age=20"},
		{"no-cache, max-age=10", "public, max-age=abc"},
		{"max-age=10, max-age"},
	} {
		r, err := http.NewRequestWithContext(t.Context(), "PUT", k, strings.NewReader("new"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range cc {
			r.Header.Add("Cache-Control", v)
		}
		resp, err := peerClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantError(t, fmt.Sprintf("PUT Cache-Control %q", cc), resp.StatusCode, string(b), resp.Header, 400, "bad_ttl")
	}
	wantValue(t, "value after refused max-ages", k, "orig")
	// One max-age among other directives, spaced or not, sets the lifetime.
	for i, cc := range []string{"no-cache, max-age=3600", "max-age = 3600", ` max-age="3600" `} {
		if st, body, _ := send(t, "PUT", k+strconv.Itoa(i), "v", "Cache-Control", cc); st != 204 {
			t.Errorf("PUT Cache-Control %q: %d %s", cc, st, body)
		}
	}
	if st, body, _ := send(t, "PUT", u+"/v1/caches/blobs/keys/short", "v", "Cache-Control", "max-age = 1"); st != 204 {
		t.Fatalf("PUT max-age = 1: %d %s", st, body)
	}
	waitFor(t, 10*time.Second, "the max-age = 1 entry to expire (not the cache's hour)", func() bool {
		st, _, _ := send(t, "GET", u+"/v1/caches/blobs/keys/short", "")
		return st == 404
	})
}
