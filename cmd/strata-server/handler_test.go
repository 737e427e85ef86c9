package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// testServer runs the server's handler in-process on a loopback
// httptest.Server, from a YAML configuration and an environment.
func testServer(t testing.TB, yaml string, env map[string]string) (*httptest.Server, *server) {
	t.Helper()
	path := ""
	if yaml != "" {
		path = filepath.Join(t.TempDir(), "strata.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := loadConfig(path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := newServer(cfg, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.handler)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return ts, s
}

const basicYAML = `
max_body_bytes: 1024
caches:
  blobs: {}
  docs:
    value_type: json
  short:
    duration: 150ms
    fail_safe: true
    jitter_max_duration: 0s
`

// errCode returns the code of a JSON error body, failing the test if the
// body is not one.
func errCode(t *testing.T, body string) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not a JSON error body: %q (%v)", body, err)
	}
	return e.Error.Code
}

func TestNativeRoundTrip(t *testing.T) {
	ts, _ := testServer(t, basicYAML, nil)
	u := ts.URL + "/v1/caches/blobs/keys/a/b c"
	if st, body, _ := do(t, "PUT", u, "\x00\x01bytes", "Content-Type", "image/png"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	st, body, h := do(t, "GET", u, "")
	if st != 200 || body != "\x00\x01bytes" {
		t.Fatalf("GET: %d %q", st, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	tag := h.Get("Etag")
	if tag == "" || h.Get(staleHeader) != "" {
		t.Fatalf("ETag %q, stale %q", tag, h.Get(staleHeader))
	}
	if age, err := strconv.Atoi(h.Get("Age")); err != nil || age < 0 || age > 60 {
		t.Errorf("Age %q: want the seconds since the PUT", h.Get("Age"))
	}
	if st, _, _ := do(t, "GET", u, "", "If-None-Match", tag); st != 304 {
		t.Errorf("If-None-Match: %d, want 304", st)
	}
	if st, _, _ := do(t, "DELETE", u, ""); st != 204 {
		t.Fatalf("DELETE: %d", st)
	}
	st, body, _ = do(t, "GET", u, "")
	if st != 404 || errCode(t, body) != "not_found" {
		t.Fatalf("GET after DELETE: %d %s", st, body)
	}
	// A JSON cache answers application/json.
	if st, body, _ := do(t, "PUT", ts.URL+"/v1/caches/docs/keys/d", `{"a":[1,2]}`); st != 204 {
		t.Fatalf("PUT json: %d %s", st, body)
	}
	st, body, h = do(t, "GET", ts.URL+"/v1/caches/docs/keys/d", "")
	if st != 200 || body != `{"a":[1,2]}` || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET json: %d %q %q", st, body, h.Get("Content-Type"))
	}
	st, body, _ = do(t, "GET", ts.URL+"/v1/caches", "")
	if st != 200 || body != `{"caches":["blobs","dache","docs","short"]}`+"\n" {
		t.Errorf("list: %d %s", st, body)
	}
}

func TestTTLExpiryAndStale(t *testing.T) {
	ts, _ := testServer(t, basicYAML, nil)
	u := ts.URL + "/v1/caches/short/keys/k"
	if st, _, _ := do(t, "PUT", u, "v1"); st != 204 {
		t.Fatal(st)
	}
	waitFor(t, 5*time.Second, "the entry to expire", func() bool {
		st, _, _ := do(t, "GET", u, "")
		return st == 404
	})
	st, body, h := do(t, "GET", u+"?allow_stale=1", "")
	if st != 200 || body != "v1" || h.Get(staleHeader) != "true" || h.Get("Warning") == "" {
		t.Fatalf("allow_stale: %d %q stale=%q", st, body, h.Get(staleHeader))
	}
	// ?ttl= and Cache-Control: max-age set the lifetime.
	if st, _, _ := do(t, "PUT", ts.URL+"/v1/caches/blobs/keys/t?ttl=100ms", "x"); st != 204 {
		t.Fatal(st)
	}
	waitFor(t, 5*time.Second, "the ttl=100ms entry to expire", func() bool {
		st, _, _ := do(t, "GET", ts.URL+"/v1/caches/blobs/keys/t", "")
		return st == 404
	})
	if st, _, _ := do(t, "PUT", ts.URL+"/v1/caches/blobs/keys/m", "x", "Cache-Control", "max-age=3600"); st != 204 {
		t.Fatal(st)
	}
	if st, _, _ := do(t, "GET", ts.URL+"/v1/caches/blobs/keys/m", ""); st != 200 {
		t.Fatal(st)
	}
}

func TestExpireTagsClearBatch(t *testing.T) {
	ts, _ := testServer(t, basicYAML, nil)
	base := ts.URL + "/v1/caches/docs/"
	put := func(k, v, tags string) {
		t.Helper()
		hdr := []string{}
		if tags != "" {
			hdr = []string{tagsHeader, tags}
		}
		if st, body, _ := do(t, "PUT", base+"keys/"+k, v, hdr...); st != 204 {
			t.Fatalf("PUT %s: %d %s", k, st, body)
		}
	}
	get := func(k string) int {
		t.Helper()
		st, _, _ := do(t, "GET", base+"keys/"+k, "")
		return st
	}
	put("a", `"A"`, "red, blue")
	put("b", `"B"`, "blue")
	put("c", `"C"`, "")
	if st, _, _ := do(t, "POST", base+"expire/c", ""); st != 204 || get("c") != 404 {
		t.Fatalf("expire: %d, then GET %d", st, get("c"))
	}
	if st, body, _ := do(t, "GET", base+"keys/c?allow_stale=true", ""); st != 200 || body != `"C"` {
		t.Fatalf("stale after expire: %d %s", st, body)
	}
	st, body, _ := do(t, "POST", base+"batch-get", `{"keys":["a","b","zz","a","zz"]}`)
	if st != 200 || body != `{"values":{"a":"A","b":"B"},"missing":["zz"]}`+"\n" {
		t.Fatalf("batch: %d %s", st, body)
	}
	if st, body, _ := do(t, "POST", base+"remove-by-tag", `{"tags":["red"]}`); st != 204 {
		t.Fatalf("remove-by-tag: %d %s", st, body)
	}
	if get("a") != 404 || get("b") != 200 {
		t.Fatalf("after remove-by-tag red: a %d, b %d", get("a"), get("b"))
	}
	if st, _, _ := do(t, "GET", base+"keys/a?allow_stale=1", ""); st != 200 {
		t.Fatalf("mode expire (default): a is not a stale fallback: %d", st)
	}
	put("e", `"E"`, "green")
	if st, body, _ := do(t, "POST", base+"remove-by-tag", `{"tags":["green"],"mode":"delete"}`); st != 204 {
		t.Fatalf("remove-by-tag delete: %d %s", st, body)
	}
	if st, _, _ := do(t, "GET", base+"keys/e?allow_stale=1", ""); st != 404 {
		t.Fatalf("mode delete: e still served stale: %d", st)
	}
	if st, _, _ := do(t, "POST", base+"clear", ""); st != 204 || get("b") != 404 {
		t.Fatalf("clear: %d, then b %d", st, get("b"))
	}
	// A bytes cache's batch answers base64.
	if st, _, _ := do(t, "PUT", ts.URL+"/v1/caches/blobs/keys/x", "hi"); st != 204 {
		t.Fatal(st)
	}
	st, body, _ = do(t, "POST", ts.URL+"/v1/caches/blobs/batch-get", `{"keys":["x"]}`)
	if st != 200 || body != `{"values":{"x":"aGk="},"missing":[]}`+"\n" {
		t.Fatalf("bytes batch: %d %s", st, body)
	}
}

func TestBadRequests(t *testing.T) {
	ts, _ := testServer(t, basicYAML+"  secret:\n    token: cache-token\n", nil)
	long := strings.Repeat("k", 1025)
	big := strings.Repeat("x", 1025)
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		// A cache has a token: names are not told to anonymous callers
		// (TestAuthCacheTokensOnly).
		{"unknown cache", "GET", "/v1/caches/nope/keys/a", "", nil, 401, "unauthorized"},
		{"unknown endpoint", "GET", "/v2/x", "", nil, 404, "not_found"},
		{"method not allowed", "PATCH", "/v1/caches/blobs/keys/a", "x", nil, 405, "method_not_allowed"},
		{"dache method not allowed", "PUT", "/dache/a", "x", nil, 405, "method_not_allowed"},
		{"clear by GET", "GET", "/v1/caches/blobs/clear", "", nil, 405, "method_not_allowed"},
		{"empty key", "PUT", "/v1/caches/blobs/keys/", "x", nil, 400, "bad_key"},
		{"key too long", "PUT", "/v1/caches/blobs/keys/" + long, "x", nil, 400, "bad_key"},
		{"reserved key", "GET", "/v1/caches/blobs/keys/__strata:tag:x", "", nil, 400, "bad_key"},
		{"ttl not a duration", "PUT", "/v1/caches/blobs/keys/a?ttl=soon", "x", nil, 400, "bad_ttl"},
		{"ttl zero", "PUT", "/v1/caches/blobs/keys/a?ttl=0", "x", nil, 400, "bad_ttl"},
		{"ttl negative", "PUT", "/v1/caches/blobs/keys/a?ttl=-5s", "x", nil, 400, "bad_ttl"},
		{"max-age bad", "PUT", "/v1/caches/blobs/keys/a", "x", []string{"Cache-Control", "max-age=abc"}, 400, "bad_ttl"},
		{"max-age zero", "PUT", "/v1/caches/blobs/keys/a", "x", []string{"Cache-Control", "max-age=0"}, 400, "bad_ttl"},
		{"empty tag", "PUT", "/v1/caches/blobs/keys/a", "x", []string{tagsHeader, "a,,b"}, 400, "bad_tags"},
		{"tag too long", "PUT", "/v1/caches/blobs/keys/a", "x", []string{tagsHeader, strings.Repeat("t", 257)}, 400, "bad_tags"},
		{"body too large", "PUT", "/v1/caches/blobs/keys/a", big, nil, 413, "too_large"},
		{"not JSON in a json cache", "PUT", "/v1/caches/docs/keys/a", "{nope", nil, 400, "bad_body"},
		{"bad allow_stale", "GET", "/v1/caches/blobs/keys/a?allow_stale=maybe", "", nil, 400, "bad_request"},
		{"remove-by-tag no tags", "POST", "/v1/caches/blobs/remove-by-tag", `{"tags":[]}`, nil, 400, "bad_body"},
		{"remove-by-tag unknown field", "POST", "/v1/caches/blobs/remove-by-tag", `{"tag":"x"}`, nil, 400, "bad_body"},
		{"remove-by-tag not JSON", "POST", "/v1/caches/blobs/remove-by-tag", `tags=x`, nil, 400, "bad_body"},
		{"remove-by-tag bad mode", "POST", "/v1/caches/blobs/remove-by-tag", `{"tags":["x"],"mode":"shred"}`, nil, 400, "bad_body"},
		{"remove-by-tag empty tag", "POST", "/v1/caches/blobs/remove-by-tag", `{"tags":[""]}`, nil, 400, "bad_tags"},
		{"clear bad flag", "POST", "/v1/caches/blobs/clear?allow_fail_safe=perhaps", "", nil, 400, "bad_request"},
		{"batch no keys", "POST", "/v1/caches/blobs/batch-get", `{"keys":[]}`, nil, 400, "bad_body"},
		{"batch trailing data", "POST", "/v1/caches/blobs/batch-get", `{"keys":["a"]} {}`, nil, 400, "bad_body"},
		{"batch empty key", "POST", "/v1/caches/blobs/batch-get", `{"keys":[""]}`, nil, 400, "bad_key"},
		{"dache not JSON", "POST", "/dache/a", `value=1`, nil, 400, "bad_body"},
		{"dache no value", "POST", "/dache/a", `{"expiry": 4102444800}`, nil, 400, "bad_body"},
		{"dache unknown field", "POST", "/dache/a", `{"value":1,"ttl":5}`, nil, 400, "bad_body"},
		{"dache expiry past", "POST", "/dache/a", `{"value":1,"expiry":1000}`, nil, 400, "bad_expiry"},
		{"dache expiry fraction", "POST", "/dache/a", `{"value":1,"expiry":4102444800.5}`, nil, 400, "bad_expiry"},
		{"dache expiry string", "POST", "/dache/a", `{"value":1,"expiry":"tomorrow"}`, nil, 400, "bad_expiry"},
		{"dache expiry numeric string", "POST", "/dache/a", `{"value":1,"expiry":"4102444800"}`, nil, 400, "bad_expiry"},
		{"dache field case", "POST", "/dache/a", `{"Value":1}`, nil, 400, "bad_body"},
		{"dache trailing brace", "POST", "/dache/a", `{"value":1}}`, nil, 400, "bad_body"},
		{"dache too large", "POST", "/dache/a", `{"value":"` + big + `"}`, nil, 413, "too_large"},
		{"dache empty key", "POST", "/dache/", `{"value":1}`, nil, 400, "bad_key"},
		{"cache token missing", "GET", "/v1/caches/secret/keys/a", "", nil, 401, "unauthorized"},
		{"cache token wrong", "GET", "/v1/caches/secret/keys/a", "", []string{"Authorization", "Bearer nope"}, 401, "unauthorized"},
	}
	// The keys the bad writes aim at hold a value that must survive them.
	for _, u := range []string{"/v1/caches/blobs/keys/a", "/v1/caches/docs/keys/a"} {
		if st, _, _ := do(t, "PUT", ts.URL+u, `"orig"`); st != 204 {
			t.Fatal(st)
		}
	}
	if st, _, _ := do(t, "POST", ts.URL+"/dache/a", `{"value":"orig"}`); st != 204 {
		t.Fatal(st)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, body, _ := do(t, c.method, ts.URL+c.path, c.body, c.hdr...)
			if st != c.status {
				t.Fatalf("status %d, want %d: %s", st, c.status, body)
			}
			if code := errCode(t, body); code != c.code {
				t.Fatalf("code %q, want %q: %s", code, c.code, body)
			}
		})
	}
	for _, u := range []string{"/v1/caches/blobs/keys/a", "/v1/caches/docs/keys/a"} {
		if st, body, _ := do(t, "GET", ts.URL+u, ""); st != 200 || body != `"orig"` {
			t.Errorf("%s changed by bad requests: %d %q", u, st, body)
		}
	}
	if st, body, _ := do(t, "GET", ts.URL+"/dache/a", ""); st != 200 || body != `{"value":"orig"}`+"\n" {
		t.Errorf("dache a changed by bad requests: %d %q", st, body)
	}

	// A body without Content-Length (chunked) is cut at the limit too.
	req, _ := http.NewRequest("PUT", ts.URL+"/v1/caches/blobs/keys/a", io.MultiReader(strings.NewReader(big), strings.NewReader(big)))
	req.ContentLength = -1
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || errCode(t, string(b)) != "too_large" {
		t.Fatalf("chunked body: %d %s", resp.StatusCode, b)
	}
}

func TestAuth(t *testing.T) {
	ts, _ := testServer(t, basicYAML+"  secret:\n    token: cache-token\n", map[string]string{"STRATA_TOKEN": "server-token"})
	cases := []struct {
		path, token string
		status      int
	}{
		{"/v1/caches/blobs/keys/a", "", 401},
		{"/v1/caches/blobs/keys/a", "wrong", 401},
		{"/v1/caches/blobs/keys/a", "cache-token", 401}, // another cache's token
		{"/v1/caches/blobs/keys/a", "server-token", 404},
		{"/v1/caches/secret/keys/a", "cache-token", 404},
		{"/v1/caches/secret/keys/a", "server-token", 404},
		{"/v1/caches/nope/keys/a", "", 401}, // no cache names to anonymous callers
		{"/v1/caches", "", 401},
		{"/dache/a", "", 401},
		{"/dache/a", "server-token", 404},
		{"/healthz", "", 200},
		{"/health", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 200},
	}
	for _, c := range cases {
		var hdr []string
		if c.token != "" {
			hdr = []string{"Authorization", "Bearer " + c.token}
		}
		st, body, h := do(t, "GET", ts.URL+c.path, "", hdr...)
		if st != c.status {
			t.Errorf("GET %s with %q: %d, want %d: %s", c.path, c.token, st, c.status, body)
		}
		if st == 401 && h.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s: 401 without WWW-Authenticate", c.path)
		}
	}
}

// TestAuthCacheTokensOnly: with tokens for some caches and none for the
// server, an anonymous caller learns no cache name it could not use: 401
// for an unknown cache (not 404, which would tell the token-guarded names
// apart), /v1/caches lists the caches its token opens, and /readyz says
// whether the server is ready without the caches' names. The server's
// token (TestAuth) or no token at all sees everything.
func TestAuthCacheTokensOnly(t *testing.T) {
	ts, _ := testServer(t, basicYAML+"  secret:\n    token: cache-token\n", nil)
	st, body, _ := do(t, "GET", ts.URL+"/v1/caches/nope/keys/a", "")
	if st != 401 {
		t.Fatalf("anonymous, unknown cache: %d %s; want 401", st, body)
	}
	list := func(hdr ...string) (int, []string) {
		st, body, _ := do(t, "GET", ts.URL+"/v1/caches", "", hdr...)
		var l struct{ Caches []string }
		if st == 200 {
			if err := json.Unmarshal([]byte(body), &l); err != nil {
				t.Fatal(err)
			}
		}
		return st, l.Caches
	}
	if st, names := list(); st != 200 || slices.Contains(names, "secret") || !slices.Contains(names, "blobs") {
		t.Fatalf("anonymous list: %d %v; want the open caches only", st, names)
	}
	if st, names := list("Authorization", "Bearer cache-token"); st != 200 || !slices.Contains(names, "secret") {
		t.Fatalf("list with the cache's token: %d %v; want secret listed", st, names)
	}
	st, body, _ = do(t, "GET", ts.URL+"/readyz", "")
	if st != 200 || strings.Contains(body, "secret") || strings.Contains(body, `"caches"`) && !strings.Contains(body, `"caches":null`) {
		t.Fatalf("anonymous readyz: %d %s; want the status without cache names", st, body)
	}

	open, _ := testServer(t, basicYAML, nil)
	st, body, _ = do(t, "GET", open.URL+"/readyz", "")
	if st != 200 || !strings.Contains(body, `"blobs"`) {
		t.Fatalf("readyz without tokens: %d %s; want the caches", st, body)
	}
}

// upstream is an origin for the tests: it counts calls and answers what
// the test sets.
type upstream struct {
	calls  atomic.Int64
	mu     sync.Mutex
	status int
	body   string
	delay  time.Duration
	seen   chan string
}

func (u *upstream) set(status int, body string, delay time.Duration) {
	u.mu.Lock()
	u.status, u.body, u.delay = status, body, delay
	u.mu.Unlock()
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.calls.Add(1)
	if u.seen != nil {
		select {
		case u.seen <- r.URL.EscapedPath():
		default:
		}
	}
	u.mu.Lock()
	status, body, delay := u.status, u.body, u.delay
	u.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay) // the origin's latency, the subject of the test
	}
	if status == 200 {
		w.Header().Set("Etag", `"v"`)
		if r.Header.Get("If-None-Match") == `"v"` {
			w.WriteHeader(304)
			return
		}
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func TestOrigin(t *testing.T) {
	up := &upstream{status: 200, body: "from origin", delay: 100 * time.Millisecond}
	us := httptest.NewServer(up)
	defer us.Close()
	ts, _ := testServer(t, `
caches:
  web:
    fail_safe: true
    factory_soft_timeout: 0s
    jitter_max_duration: 0s
    origin:
      url: `+us.URL+`/base
      timeout: 2s
`, nil)
	u := ts.URL + "/v1/caches/web/keys/page/1"
	// Twenty concurrent misses: one origin call.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			st, body, _ := do(t, "GET", u, "")
			if st != 200 || body != "from origin" {
				t.Errorf("GET: %d %q", st, body)
			}
		})
	}
	wg.Wait()
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("origin called %d times for 20 concurrent misses, want 1", n)
	}
	// The origin fails: the expired value is served stale, marked.
	if st, _, _ := do(t, "POST", ts.URL+"/v1/caches/web/expire/page/1", ""); st != 204 {
		t.Fatal(st)
	}
	up.set(500, "boom", 0)
	st, body, h := do(t, "GET", u, "")
	if st != 200 || body != "from origin" || h.Get(staleHeader) != "true" {
		t.Fatalf("fail-safe: %d %q stale=%q", st, body, h.Get(staleHeader))
	}
	// No stale value and a failing origin: 502; an origin 404: 404.
	st, body, _ = do(t, "GET", ts.URL+"/v1/caches/web/keys/other", "")
	if st != 502 || errCode(t, body) != "origin_error" {
		t.Fatalf("failing origin: %d %s", st, body)
	}
	up.set(404, "", 0)
	st, body, _ = do(t, "GET", ts.URL+"/v1/caches/web/keys/gone", "")
	if st != 404 || errCode(t, body) != "not_found" {
		t.Fatalf("origin 404: %d %s", st, body)
	}
	// The key reaches the origin path-escaped.
	up.seen = make(chan string, 1)
	up.set(200, "x", 0)
	do(t, "GET", ts.URL+"/v1/caches/web/keys/a%20b%2Fc", "")
	if p := <-up.seen; p != "/base/a%20b%2Fc" {
		t.Errorf("origin path %q", p)
	}
}

// Two server replicas over one Redis, with distributed_lock: concurrent
// misses on both call the origin once (without the lock: once per replica).
func TestOriginDistributedLock(t *testing.T) {
	rs := redistest.Start(t)
	up := &upstream{status: 200, body: "from origin", delay: 500 * time.Millisecond}
	us := httptest.NewServer(up)
	defer us.Close()
	yaml := `
caches:
  web:
    distributed_lock: true
    origin:
      url: ` + us.URL + `
      timeout: 5s
`
	env := map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": rs.URL()}
	a, _ := testServer(t, yaml, env)
	b, _ := testServer(t, yaml, env)
	var wg sync.WaitGroup
	for _, ts := range []*httptest.Server{a, b, a, b, a, b} {
		wg.Go(func() {
			st, body, _ := do(t, "GET", ts.URL+"/v1/caches/web/keys/cold", "")
			if st != 200 || body != "from origin" {
				t.Errorf("GET: %d %q", st, body)
			}
		})
	}
	wg.Wait()
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("origin called %d times by two replicas, want 1", n)
	}
}

func TestMetrics(t *testing.T) {
	ts, _ := testServer(t, basicYAML, nil)
	do(t, "PUT", ts.URL+"/v1/caches/blobs/keys/a", "x")
	for range 3 {
		do(t, "GET", ts.URL+"/v1/caches/blobs/keys/a", "")
	}
	do(t, "GET", ts.URL+"/v1/caches/blobs/keys/missing", "")
	_, body, _ := do(t, "GET", ts.URL+"/metrics", "")
	for _, want := range []string{
		`strata_cache_hits_total{cache="blobs",tier="l1"} 3`,
		`strata_cache_misses_total{cache="blobs",tier="l1"} 1`,
		`strata_http_requests_total{code="200",method="GET",route="GET /v1/caches/{cache}/keys/{key...}"} 3`,
		`strata_http_requests_total{code="404",method="GET",route="GET /v1/caches/{cache}/keys/{key...}"} 1`,
		`strata_http_request_duration_seconds_bucket{method="PUT",route="PUT /v1/caches/{cache}/keys/{key...}"`,
		`strata_cache_l2_circuit_open{cache="blobs"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		env        map[string]string
		want       string
	}{
		{"postgres without host", "", map[string]string{"DURABILITY_ENGINE": "postgres", "POSTGRES_PASSWORD": "hunter2"}, "needs POSTGRES_HOST"},
		{"postgres bad port", "", map[string]string{"DURABILITY_ENGINE": "postgres", "POSTGRES_HOST": "db", "POSTGRES_PORT": "pg"}, "POSTGRES_PORT"},
		{"postgres settings without postgres", "", map[string]string{"POSTGRES_HOST": "db"}, "POSTGRES_* (postgres) settings are set but the engine is \"memory\""},
		{"etcd without endpoints", "", map[string]string{"DURABILITY_ENGINE": "etcd"}, "needs ETCD_ENDPOINTS"},
		{"etcd endpoint not a URL", "", map[string]string{"DURABILITY_ENGINE": "etcd", "ETCD_ENDPOINTS": "127.0.0.1:2379"}, "http:// or https:// URL"},
		{"etcd user without password", "", map[string]string{"DURABILITY_ENGINE": "etcd", "ETCD_ENDPOINTS": "http://e:2379", "ETCD_USERNAME": "u"}, "ETCD_USERNAME and ETCD_PASSWORD"},
		{"etcd cert without key", "", map[string]string{"DURABILITY_ENGINE": "etcd", "ETCD_ENDPOINTS": "https://e:2379", "ETCD_CERT_FILE": "c.pem"}, "ETCD_CERT_FILE and ETCD_KEY_FILE"},
		{"etcd with a redis url", "", map[string]string{"DURABILITY_ENGINE": "etcd", "ETCD_ENDPOINTS": "http://e:2379", "REDIS_URL": "redis://r:6379"}, "the engine is \"etcd\""},
		{"etcd settings without etcd", "", map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": "redis://r:6379", "ETCD_ENDPOINTS": "http://e:2379"}, "ETCD_* (etcd_*) settings are set but the engine is \"redis\""},
		{"unknown engine", "", map[string]string{"DURABILITY_ENGINE": "disk"}, "DURABILITY_ENGINE (engine): memory, redis"},
		{"redis without url", "", map[string]string{"DURABILITY_ENGINE": "redis"}, "needs REDIS_URL"},
		{"url without redis", "", map[string]string{"REDIS_URL": "redis://127.0.0.1:1"}, "the engine is \"memory\""},
		{"bad port", "", map[string]string{"PORT": "http"}, "PORT"},
		{"bad redact", "", map[string]string{"LOGGING_REDACT_KEYS": "some"}, "LOGGING_REDACT_KEYS"},
		{"unknown field", "caches:\n  a:\n    durationn: 5s\n", nil, "durationn"},
		{"bad duration", "caches:\n  a:\n    duration: soon\n", nil, "caches.a.duration"},
		{"negative duration", "caches:\n  a:\n    duration: -5s\n", nil, "negative"},
		{"bad value type", "caches:\n  a:\n    value_type: xml\n", nil, "value_type"},
		{"dache not json", "caches:\n  dache:\n    value_type: bytes\n", nil, "must be json"},
		{"bad origin", "caches:\n  a:\n    origin:\n      url: ftp://x\n", nil, "origin.url"},
		{"bad log level", "log_level: loud\n", nil, "log level"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.yaml != "" {
				path = filepath.Join(t.TempDir(), "c.yaml")
				os.WriteFile(path, []byte(c.yaml), 0o600)
			}
			_, err := loadConfig(path, func(k string) string { return c.env[k] })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q", err, c.want)
			}
		})
	}
	// Invalid library settings are refused when the caches are created.
	cfg, err := loadConfig("", func(k string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	bad := -1.0
	cfg.Caches = map[string]CacheConfig{"a": {EagerRefreshThreshold: &bad}}
	if _, err := newServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry()); err == nil || !strings.Contains(err.Error(), "EagerRefreshThreshold") {
		t.Fatalf("newServer: %v", err)
	}
}

func TestConfigLayers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(`
listen: 127.0.0.1:9999
defaults:
  duration: 5m
  fail_safe: false
caches:
  a:
    duration: 1m
    distributed_lock: true
    distributed_lock_lease: 3s
  b: {}
  dache:
    strict_writes: false
`), 0o600)
	cfg, err := loadConfig(path, func(k string) string {
		return map[string]string{"PORT": "7000", "STRATA_HOST": "127.0.0.1"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7000" {
		t.Errorf("PORT did not override listen: %q", cfg.Listen)
	}
	cs := cfg.cacheNames()
	if d := time.Duration(*cs["a"].Duration); d != time.Minute {
		t.Errorf("a: duration %v", d)
	}
	var settings strata.CacheSettings
	cs["a"].apply(&settings)
	if e := settings.Entry; !e.DistributedLock || e.DistributedLockLease != 3*time.Second || e.DistributedLockTimeout != 0 {
		t.Errorf("a: distributed lock %v, lease %v, timeout %v; want on, 3s, default", e.DistributedLock, e.DistributedLockLease, e.DistributedLockTimeout)
	}
	if cs["b"].DistributedLock != nil {
		t.Errorf("b: distributed_lock set without being configured")
	}
	if d := time.Duration(*cs["b"].Duration); d != 5*time.Minute || *cs["b"].FailSafe {
		t.Errorf("b: duration %v fail-safe %v", d, *cs["b"].FailSafe)
	}
	if cs["dache"].strict() || cs["dache"].valueType() != valueJSON || time.Duration(*cs["dache"].Duration) != dacheForever {
		t.Errorf("dache: %+v", cs["dache"])
	}
}

// TestGoInterop: values written over HTTP are read from Go through the
// library, and the other way round, for []byte and json.RawMessage.
func TestGoInterop(t *testing.T) {
	rs := redistest.Start(t)
	ts, _ := testServer(t, "caches:\n  blobs: {}\n  docs:\n    value_type: json\n",
		map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": rs.URL()})
	p, err := strata.NewProvider(strata.Settings{
		Redis:  &strata.RedisSettings{URL: rs.URL()},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	blobs, err := p.Register("blobs", func(s *strata.CacheSettings) { s.Entry.BackgroundL2Operations = false })
	if err != nil {
		t.Fatal(err)
	}
	docs, err := p.Register("docs", func(s *strata.CacheSettings) { s.Entry.BackgroundL2Operations = false })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// HTTP -> Go.
	if st, _, _ := do(t, "PUT", ts.URL+"/v1/caches/blobs/keys/b", "\xffraw"); st != 204 {
		t.Fatal(st)
	}
	waitFor(t, 5*time.Second, "the HTTP write in Redis", func() bool {
		v, ok, err := hybrid.TryGet[[]byte](ctx, blobs, "b")
		return err == nil && ok && string(v) == "\xffraw"
	})
	if st, _, _ := do(t, "PUT", ts.URL+"/v1/caches/docs/keys/d", `{"n":1}`); st != 204 {
		t.Fatal(st)
	}
	waitFor(t, 5*time.Second, "the HTTP JSON write in Redis", func() bool {
		v, ok, err := hybrid.TryGet[json.RawMessage](ctx, docs, "d")
		return err == nil && ok && string(v) == `{"n":1}`
	})

	// Go -> HTTP.
	if err := hybrid.Set(ctx, blobs, "g", []byte("from go")); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, docs, "g", json.RawMessage(`[true]`)); err != nil {
		t.Fatal(err)
	}
	if st, body, _ := do(t, "GET", ts.URL+"/v1/caches/blobs/keys/g", ""); st != 200 || body != "from go" {
		t.Fatalf("bytes from Go: %d %q", st, body)
	}
	if st, body, _ := do(t, "GET", ts.URL+"/v1/caches/docs/keys/g", ""); st != 200 || body != `[true]` {
		t.Fatalf("JSON from Go: %d %q", st, body)
	}
	// Another Go type is a miss over HTTP, never converted.
	if err := hybrid.Set(ctx, docs, "s", "a Go string"); err != nil {
		t.Fatal(err)
	}
	if st, body, _ := do(t, "GET", ts.URL+"/v1/caches/docs/keys/s", ""); st != 404 {
		t.Fatalf("a string read over HTTP: %d %q", st, body)
	}
	// A change from Go reaches the server's memory through the backplane.
	if err := hybrid.Set(ctx, blobs, "g", []byte("changed")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the server to see the change from Go", func() bool {
		st, body, _ := do(t, "GET", ts.URL+"/v1/caches/blobs/keys/g", "")
		return st == 200 && body == "changed"
	})
}

// Lifetimes beyond 10 years, or beyond what an int64 of seconds holds, are
// 10 years (dache's "forever"; RFC 9111 1.2.2 for Cache-Control max-age),
// never an error or a lifetime that wrapped around into the past; a quoted
// max-age counts, from a client and from the origin.
func TestHugeAndQuotedLifetimes(t *testing.T) {
	var calls atomic.Int64
	maxAgeHdr := make(chan string, 1)
	us := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case v := <-maxAgeHdr:
			w.Header().Set("Cache-Control", v)
		default:
		}
		_, _ = w.Write([]byte("o"))
	}))
	defer us.Close()
	ts, _ := testServer(t, `
caches:
  blobs: {}
  web:
    jitter_max_duration: 0s
    origin:
      url: `+us.URL+`
`, nil)
	base := ts.URL + "/v1/caches/blobs/keys/"
	for i, put := range []struct{ query, cc string }{
		{"?ttl=100000000000", ""},         // seconds, over 10 years
		{"?ttl=99999999999999999999", ""}, // seconds, over int64
		{"?ttl=1000000h", ""},             // a Go duration over 10 years
		{"", "max-age=99999999999999999999"},
		{"", `max-age="3600"`},
	} {
		k := base + "k" + strconv.Itoa(i)
		hdr := []string{}
		if put.cc != "" {
			hdr = []string{"Cache-Control", put.cc}
		}
		if st, body, _ := do(t, "PUT", k+put.query, "v", hdr...); st != 204 {
			t.Fatalf("PUT %s %s: %d %s", put.query, put.cc, st, body)
		}
		if st, body, _ := do(t, "GET", k, ""); st != 200 || body != "v" {
			t.Fatalf("GET after PUT %s %s: %d %q", put.query, put.cc, st, body)
		}
	}
	// The origin's quoted max-age="1": the entry expires after a second,
	// not after the cache's duration.
	maxAgeHdr <- `max-age="1"`
	u := ts.URL + "/v1/caches/web/keys/p"
	if st, _, _ := do(t, "GET", u, ""); st != 200 {
		t.Fatal(st)
	}
	waitFor(t, 10*time.Second, "the origin's max-age=\"1\" entry to expire", func() bool {
		do(t, "GET", u, "")
		return calls.Load() >= 2
	})
}

// batch-get reads the keys a replica's memory does not hold from Redis in
// one MGET (the library's TryGetMany), not one GET per key: a replica that
// starts after another wrote 60 keys answers a batch of them, two missing
// keys and a duplicate, with one MGET.
func TestBatchGetOneRoundTrip(t *testing.T) {
	rs := redistest.Start(t)
	env := map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": rs.URL()}
	yaml := `
caches:
  docs:
    value_type: json
    background_l2_operations: false
`
	a, _ := testServer(t, yaml, env)
	keys := make([]string, 60)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
		if st, body, _ := do(t, "PUT", a.URL+"/v1/caches/docs/keys/"+keys[i], `{"id":`+strconv.Itoa(i)+`}`); st != 204 {
			t.Fatalf("PUT: %d %s", st, body)
		}
	}
	b, _ := testServer(t, yaml, env)
	rdb := rs.Client(t)
	if err := rdb.ConfigResetStat(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	req, _ := json.Marshal(map[string][]string{"keys": append(append(keys, "nope:1", "nope:2"), keys[0])})
	st, body, _ := do(t, "POST", b.URL+"/v1/caches/docs/batch-get", string(req))
	if st != 200 {
		t.Fatalf("batch-get: %d %s", st, body)
	}
	var resp struct {
		Values  map[string]json.RawMessage `json:"values"`
		Missing []string                   `json:"missing"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Values) != len(keys) || string(resp.Values["user:7"]) != `{"id":7}` ||
		len(resp.Missing) != 2 || resp.Missing[0] != "nope:1" || resp.Missing[1] != "nope:2" {
		t.Fatalf("batch-get = %s", body)
	}
	stats, err := rdb.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	// One GET at most: the cache's Clear record, which a replica reads once,
	// on its first check of an entry read from Redis (docs/clear.md).
	if !strings.Contains(stats, "cmdstat_mget:calls=1,") || strings.Contains(stats, "cmdstat_get:") && !strings.Contains(stats, "cmdstat_get:calls=1,") {
		t.Fatalf("Redis commands for one batch-get of 62 keys on a cold replica:\n%s", stats)
	}
}

// With redact_keys, an error logged for a failed request has its quoted
// strings (where the library and the server name keys) redacted.
func TestErrorLogRedactsKeys(t *testing.T) {
	err := fmt.Errorf(`key %q: %w`, "user:7", errors.New(`hybrid: factory "user:7": db "orders" down`))
	_, s := testServer(t, "redact_keys: true\n", nil)
	if got := s.errAttr(err).Value.String(); strings.Contains(got, "user:7") || !strings.Contains(got, `"[redacted]"`) {
		t.Fatalf("redacted error attribute = %s", got)
	}
	_, plain := testServer(t, "", nil)
	if got := plain.errAttr(err).Value.String(); !strings.Contains(got, "user:7") {
		t.Fatalf("error attribute without redaction = %s", got)
	}
}

// An unreachable origin answers 502 origin_error, and the body does not
// name the origin's URL: it holds the key (in its path), which
// logging.redact_keys keeps out of what the server writes.
func TestOriginUnreachableHidesURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	ts, _ := testServer(t, `
redact_keys: true
caches:
  web:
    origin:
      url: http://`+addr+`/base
      timeout: 2s
`, nil)
	st, body, _ := do(t, "GET", ts.URL+"/v1/caches/web/keys/secret-key-42", "")
	if st != 502 || errCode(t, body) != "origin_error" {
		t.Fatalf("unreachable origin: %d %s", st, body)
	}
	if strings.Contains(body, "secret-key-42") || strings.Contains(body, "/base") {
		t.Fatalf("the 502 body names the origin URL and the key: %s", body)
	}
	if !strings.Contains(body, "origin unreachable") {
		t.Fatalf("the 502 body does not say what failed: %s", body)
	}
}
