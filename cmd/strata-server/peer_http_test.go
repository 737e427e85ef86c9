package main

// HTTP behaviour as a client (and a peer's test suite for an HTTP cache API
// such as dache, or a Redis-like REST cache) sees it: bad input, keys and
// their encoding, methods, HEAD, content types, auth, the dache
// compatibility responses, readiness, metrics, shutdown and two servers
// over one Redis. Each test starts its own servers on loopback ports; the
// Redis tests start their own redis-server (internal/redistest).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/strata-cache/strata/internal/redistest"
)

// peerYAML is the configuration of most tests: a small body limit, a bytes
// cache, a JSON cache, a cache with its own content type and a short key
// limit.
const peerYAML = `
max_body_bytes: 1024
caches:
  blobs: {}
  docs:
    value_type: json
  images:
    content_type: image/webp
  tiny:
    max_key_length: 8
`

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// peerServer is testServer that keeps the server's log (JSON lines, debug
// level) for the tests that look into it.
func peerServer(t *testing.T, yaml string, env map[string]string) (string, *server, *syncBuffer) {
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
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := newServer(cfg, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.handler)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return ts.URL, s, logs
}

// peerClient does not follow redirects (a redirect is an answer the test
// wants to see) and keeps no idle connections (nothing for goleak).
var peerClient = &http.Client{
	Timeout:       10 * time.Second,
	Transport:     &http.Transport{DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// req sends one request with peerClient. A nil body sends none; hdr are
// header name, value pairs.
func req(t *testing.T, method, u string, body io.Reader, hdr ...string) (int, string, http.Header) {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := peerClient.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// send is req with a string body ("" sends an empty body).
func send(t *testing.T, method, u, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	return req(t, method, u, strings.NewReader(body), hdr...)
}

// wantError checks a JSON error response: status, code, the headers every
// error carries, and a message that is not empty.
func wantError(t *testing.T, what string, st int, body string, h http.Header, status int, code string) {
	t.Helper()
	if st != status {
		t.Errorf("%s: status %d, want %d: %s", what, st, status, body)
		return
	}
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Errorf("%s: not a JSON error body: %q (%v)", what, body, err)
		return
	}
	if e.Error.Code != code {
		t.Errorf("%s: code %q, want %q: %s", what, e.Error.Code, code, body)
	}
	if strings.TrimSpace(e.Error.Message) == "" {
		t.Errorf("%s: error without a message: %s", what, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: error Content-Type %q, want application/json", what, ct)
	}
}

// wantValue checks that GET u answers 200 with body want.
func wantValue(t *testing.T, what, u, want string) {
	t.Helper()
	st, body, _ := send(t, "GET", u, "")
	if st != 200 || body != want {
		t.Errorf("%s: GET %s = %d %q, want 200 %q", what, u, st, body, want)
	}
}

// dacheValue is the exact body of GET /dache/{key} for a stored JSON
// value (docs/server.md, "GET /dache/{key}: 200 {"value": <json>}").
func dacheValue(v string) string { return `{"value":` + v + "}\n" }

func TestHTTPMalformedJSONBodies(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	d := u + "/dache/k"
	if st, body, _ := send(t, "POST", d, `{"value":"orig"}`); st != 204 {
		t.Fatalf("POST: %d %s", st, body)
	}
	// docs/server.md: "Bad input is refused with 400 and a JSON error, and
	// changes nothing: a body that is not JSON, a missing value, ...".
	for _, b := range []string{
		`{`, `{"value":1`, `{"value":}`, `{"value":1,}`, `{'value':1}`, `value=1`,
		`{"value":1} {"value":2}`, `{"value":1}x`, `[{"value":1}]`, `"value"`, `42`, `null`,
		`{"value":undefined}`, `{"value":NaN}`, "\xff\xfe",
	} {
		st, body, h := send(t, "POST", d, b, "Content-Type", "application/json")
		wantError(t, "dache POST "+strconv.Quote(b), st, body, h, 400, "bad_body")
	}
	wantValue(t, "dache value after malformed POSTs", d, dacheValue(`"orig"`))

	// A json cache checks the body is one JSON document.
	if st, _, _ := send(t, "PUT", u+"/v1/caches/docs/keys/k", `{"a":1}`); st != 204 {
		t.Fatal(st)
	}
	for _, b := range []string{`{`, `{"a":1} {"b":2}`, `{"a":1}]`, `tru`, `{"a":01}`, `'x'`} {
		st, body, h := send(t, "PUT", u+"/v1/caches/docs/keys/k", b)
		wantError(t, "PUT json cache "+strconv.Quote(b), st, body, h, 400, "bad_body")
	}
	wantValue(t, "json value after malformed PUTs", u+"/v1/caches/docs/keys/k", `{"a":1}`)

	// The JSON request bodies of the native API.
	for _, c := range []struct{ path, body string }{
		{"batch-get", `{"keys":["a"]`},
		{"batch-get", `{"keys":["a"]} {"keys":["b"]}`},
		{"batch-get", `keys=a`},
		{"batch-get", `[]`},
		{"remove-by-tag", `{"tags":["a"]`},
		{"remove-by-tag", `{"tags":["a"]}{}`},
		{"remove-by-tag", `tags=a`},
	} {
		st, body, h := send(t, "POST", u+"/v1/caches/docs/"+c.path, c.body)
		wantError(t, c.path+" "+strconv.Quote(c.body), st, body, h, 400, "bad_body")
	}
}

func TestHTTPWrongJSONTypes(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	d := u + "/dache/k"
	// docs/server.md: "The value may be any JSON, null included", and GET
	// gives "the JSON as it was written".
	for _, v := range []string{`"s"`, `0`, `-1.5e3`, `true`, `false`, `null`, `[]`, `[1,"a",null]`, `{}`, `{"a":{"b":[1]}}`, `"\u00e9\ud83c\udf89"`} {
		if st, body, _ := send(t, "POST", d, `{"value":`+v+`}`); st != 204 {
			t.Errorf("POST value %s: %d %s", v, st, body)
			continue
		}
		wantValue(t, "value "+v, d, dacheValue(v))
	}
	if st, body, _ := send(t, "POST", d, `{"value":"orig"}`); st != 204 {
		t.Fatalf("POST: %d %s", st, body)
	}
	// "an expiry that is not a whole number" is refused (docs/server.md,
	// "Where we differ from dache").
	far := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	for _, e := range []string{`"tomorrow"`, `true`, `[` + far + `]`, `{"at":` + far + `}`, far + `.5`, `1.5`} {
		st, body, h := send(t, "POST", d, `{"value":1,"expiry":`+e+`}`)
		if st != 400 {
			t.Errorf("expiry %s: %d, want 400: %s", e, st, body)
			continue
		}
		if code := errCode(t, body); code != "bad_body" && code != "bad_expiry" {
			t.Errorf("expiry %s: code %q, want bad_body or bad_expiry", e, code)
		}
		wantError(t, "expiry "+e, st, body, h, 400, errCode(t, body))
	}
	wantValue(t, "dache value after wrong expiry types", d, dacheValue(`"orig"`))

	// Wrong types in the native API's request bodies.
	for _, c := range []struct{ path, body string }{
		{"batch-get", `{"keys":"a"}`},
		{"batch-get", `{"keys":[1,2]}`},
		{"batch-get", `{"keys":{"a":1}}`},
		{"batch-get", `{"keys":null}`},
		{"remove-by-tag", `{"tags":"a"}`},
		{"remove-by-tag", `{"tags":[1]}`},
		{"remove-by-tag", `{"tags":["a"],"mode":1}`},
	} {
		st, body, h := send(t, "POST", u+"/v1/caches/docs/"+c.path, c.body)
		wantError(t, c.path+" "+c.body, st, body, h, 400, "bad_body")
	}
}

func TestHTTPDacheExpiry(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	d := u + "/dache/k"
	if st, body, _ := send(t, "POST", d, `{"value":"orig"}`); st != 204 {
		t.Fatalf("POST: %d %s", st, body)
	}
	// docs/server.md: an expiry "in the past" is refused with 400 and
	// changes nothing; zero and negative Unix times are in the past.
	past := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)
	for _, e := range []string{past, "0", "-1", "-9223372036854775808", "1000"} {
		st, body, h := send(t, "POST", d, `{"value":"new","expiry":`+e+`}`)
		wantError(t, "expiry "+e, st, body, h, 400, "bad_expiry")
	}
	wantValue(t, "value after refused expiries", d, dacheValue(`"orig"`))

	// In the future: stored; a year-3000 expiry is capped (10 years), not
	// refused (docs/server.md: "A lifetime over 10 years ... is 10 years
	// (as dache's expiry").
	for i, e := range []string{
		strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
		strconv.FormatInt(time.Now().AddDate(9, 0, 0).Unix(), 10),
		"32503680000",   // year 3000
		"1000000000000", // year ~33658
	} {
		k := d + strconv.Itoa(i)
		if st, body, _ := send(t, "POST", k, `{"value":`+strconv.Itoa(i)+`,"expiry":`+e+`}`); st != 204 {
			t.Errorf("expiry %s: %d %s", e, st, body)
			continue
		}
		wantValue(t, "expiry "+e, k, dacheValue(strconv.Itoa(i)))
	}

	// A near expiry is honoured: the entry goes (awaited, not slept).
	soon := strconv.FormatInt(time.Now().Add(1500*time.Millisecond).Unix(), 10)
	if st, body, _ := send(t, "POST", u+"/dache/soon", `{"value":1,"expiry":`+soon+`}`); st != 204 {
		t.Fatalf("POST soon: %d %s", st, body)
	}
	waitFor(t, 10*time.Second, "the entry to reach its expiry", func() bool {
		st, _, _ := send(t, "GET", u+"/dache/soon", "")
		return st == 404
	})
	// No expiry, or "expiry": null: no deadline ("Without expiry the entry
	// stays until it is deleted").
	for _, b := range []string{`{"value":2}`, `{"value":3,"expiry":null}`} {
		if st, body, _ := send(t, "POST", u+"/dache/forever", b); st != 204 {
			t.Fatalf("POST %s: %d %s", b, st, body)
		}
	}
	wantValue(t, "no expiry", u+"/dache/forever", dacheValue("3"))
}

func TestHTTPMissingBody(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"POST", "/dache/k", 400, "bad_body"},
		{"PUT", "/v1/caches/docs/keys/k", 400, "bad_body"}, // "" is not JSON
		{"POST", "/v1/caches/docs/batch-get", 400, "bad_body"},
		{"POST", "/v1/caches/docs/remove-by-tag", 400, "bad_body"},
	} {
		st, body, h := req(t, c.method, u+c.path, nil)
		wantError(t, c.method+" "+c.path+" without a body", st, body, h, c.status, c.code)
	}
	if st, _, _ := send(t, "GET", u+"/dache/k", ""); st != 404 {
		t.Errorf("a refused POST stored something: GET %d", st)
	}
	// A bytes cache holds any bytes, none included; clear needs no body.
	if st, body, _ := req(t, "PUT", u+"/v1/caches/blobs/keys/empty", nil); st != 204 {
		t.Fatalf("PUT empty value: %d %s", st, body)
	}
	st, body, h := send(t, "GET", u+"/v1/caches/blobs/keys/empty", "")
	if st != 200 || body != "" || h.Get("Content-Length") != "0" {
		t.Errorf("GET empty value: %d %q Content-Length %q", st, body, h.Get("Content-Length"))
	}
	if st, body, _ := req(t, "POST", u+"/v1/caches/blobs/clear", nil); st != 204 {
		t.Errorf("clear without a body: %d %s", st, body)
	}
}

func TestHTTPBodyTooLarge(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil) // max_body_bytes: 1024
	if st, _, _ := send(t, "PUT", u+"/v1/caches/blobs/keys/k", "orig"); st != 204 {
		t.Fatal(st)
	}
	if st, _, _ := send(t, "POST", u+"/dache/k", `{"value":"orig"}`); st != 204 {
		t.Fatal(st)
	}
	// Exactly the limit is accepted.
	if st, body, _ := send(t, "PUT", u+"/v1/caches/blobs/keys/limit", strings.Repeat("x", 1024)); st != 204 {
		t.Errorf("PUT of max_body_bytes: %d %s", st, body)
	}
	atLimit := `{"value":"` + strings.Repeat("x", 1024-len(`{"value":""}`)) + `"}`
	if st, body, _ := send(t, "POST", u+"/dache/limit", atLimit); st != 204 {
		t.Errorf("dache POST of max_body_bytes: %d %s", st, body)
	}
	// One byte over, declared (Content-Length) or streamed (chunked): 413.
	over := strings.Repeat("y", 1025)
	dacheOver := `{"value":"` + strings.Repeat("y", 1025) + `"}`
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/caches/blobs/keys/k", over},
		{"POST", "/dache/k", dacheOver},
		{"POST", "/v1/caches/blobs/batch-get", `{"keys":["` + strings.Repeat("k", 1025) + `"]}`},
		{"POST", "/v1/caches/blobs/remove-by-tag", `{"tags":["` + strings.Repeat("t", 1025) + `"]}`},
	} {
		st, body, h := send(t, c.method, u+c.path, c.body)
		wantError(t, c.method+" "+c.path+" declared", st, body, h, 413, "too_large")
		st, body, h = req(t, c.method, u+c.path, io.MultiReader(strings.NewReader(c.body))) // no length: chunked
		wantError(t, c.method+" "+c.path+" chunked", st, body, h, 413, "too_large")
	}
	wantValue(t, "bytes value after 413s", u+"/v1/caches/blobs/keys/k", "orig")
	wantValue(t, "dache value after 413s", u+"/dache/k", dacheValue(`"orig"`))
}

func TestHTTPUnknownCache(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/caches/nope/keys/a", ""},
		{"HEAD", "/v1/caches/nope/keys/a", ""},
		{"PUT", "/v1/caches/nope/keys/a", "x"},
		{"DELETE", "/v1/caches/nope/keys/a", ""},
		{"POST", "/v1/caches/nope/expire/a", ""},
		{"POST", "/v1/caches/nope/clear", ""},
		{"POST", "/v1/caches/nope/batch-get", `{"keys":["a"]}`},
		{"POST", "/v1/caches/nope/remove-by-tag", `{"tags":["a"]}`},
		{"GET", "/v1/caches/Blobs/keys/a", ""}, // names are case-sensitive
	} {
		st, body, h := send(t, c.method, u+c.path, c.body)
		if c.method == "HEAD" {
			if st != 404 || body != "" {
				t.Errorf("HEAD unknown cache: %d %q", st, body)
			}
			continue
		}
		wantError(t, c.method+" "+c.path, st, body, h, 404, "unknown_cache")
	}
	// With a server token, an anonymous caller learns nothing: 401 for a
	// cache that exists and for one that does not (docs/server.md, "Access
	// control").
	ut, _, _ := peerServer(t, peerYAML, map[string]string{"STRATA_TOKEN": "tok-123456"})
	for _, p := range []string{"/v1/caches/nope/keys/a", "/v1/caches/blobs/keys/a"} {
		st, body, h := send(t, "GET", ut+p, "")
		wantError(t, "anonymous "+p, st, body, h, 401, "unauthorized")
	}
	st, body, h := send(t, "GET", ut+"/v1/caches/nope/keys/a", "", "Authorization", "Bearer tok-123456")
	wantError(t, "authorized, unknown cache", st, body, h, 404, "unknown_cache")
}

func TestHTTPInvalidKeys(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	long := strings.Repeat("k", 1025)
	longUnicode := strings.Repeat("é", 513) // 1026 bytes, 513 characters
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/caches/blobs/keys/", ""},
		{"PUT", "/v1/caches/blobs/keys/", "x"},
		{"DELETE", "/v1/caches/blobs/keys/", ""},
		{"POST", "/v1/caches/blobs/expire/", ""},
		{"GET", "/dache/", ""},
		{"POST", "/dache/", `{"value":1}`},
		{"DELETE", "/dache/", ""},
		{"GET", "/v1/caches/blobs/keys/" + long, ""},
		{"PUT", "/v1/caches/blobs/keys/" + long, "x"},
		{"DELETE", "/v1/caches/blobs/keys/" + long, ""},
		{"PUT", "/v1/caches/blobs/keys/" + url.PathEscape(longUnicode), "x"},
		{"POST", "/dache/" + long, `{"value":1}`},
		{"PUT", "/v1/caches/tiny/keys/123456789", "x"}, // max_key_length: 8
		{"GET", "/v1/caches/blobs/keys/__strata:tag:x", ""},
		{"PUT", "/v1/caches/blobs/keys/__strata:clear", "x"},
		{"DELETE", "/v1/caches/blobs/keys/__strata:clear", ""},
		{"POST", "/v1/caches/blobs/expire/__strata:tag:x", ""},
		{"PUT", "/v1/caches/blobs/keys/__strata%3Aclear", "x"},
		{"GET", "/dache/__strata:ping", ""},
		{"POST", "/dache/__strata:x", `{"value":1}`},
		{"DELETE", "/dache/__strata:clear", ""},
		{"POST", "/v1/caches/blobs/batch-get", `{"keys":["ok","__strata:tag:x"]}`},
		{"POST", "/v1/caches/tiny/batch-get", `{"keys":["ok","123456789"]}`},
	} {
		st, body, h := send(t, c.method, u+c.path, c.body)
		wantError(t, c.method+" "+c.path[:min(len(c.path), 60)], st, body, h, 400, "bad_key")
	}
	// The boundaries are accepted.
	for _, p := range []string{
		"/v1/caches/blobs/keys/" + strings.Repeat("k", 1024),
		"/v1/caches/tiny/keys/12345678",
		"/v1/caches/blobs/keys/" + url.PathEscape(strings.Repeat("é", 512)),
		"/v1/caches/blobs/keys/__strata", // not the reserved prefix "__strata:"
	} {
		if st, body, _ := send(t, "PUT", u+p, "v"); st != 204 {
			t.Errorf("PUT %s: %d %s", p[:min(len(p), 60)], st, body)
			continue
		}
		wantValue(t, "boundary key", u+p, "v")
	}
	// A refused batch names the key (docs/server.md, batch-get).
	_, body, _ := send(t, "POST", u+"/v1/caches/blobs/batch-get", `{"keys":["ok","__strata:tag:x"]}`)
	if !strings.Contains(body, "__strata:tag:x") {
		t.Errorf("batch-get error does not name the key: %s", body)
	}
}

// TestHTTPKeyEncoding: docs/server.md, "Keys are the rest of the path
// (/keys/a/b is the key a/b), percent-decoded; %2F works too." A key set
// through an encoded path is read back through the same path, is the same
// key as its decoded form in a batch-get body, and is the same key through
// the dache interface of the dache cache.
func TestHTTPKeyEncoding(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	keys := []string{
		"plain", "a/b", "a/b/c/", "a b", "100%", "a%2Fb", "a+b", "a?b", "a#b", "a;b=c", "a&b", "~user",
		"ключ", "日本語/キー", "emoji🎉", "caf\u00e9", "cafe\u0301", "tab\there", "quote\"s", "back\\slash",
		"user:42", "..dots", "a..b", "x.", "__strata",
	}
	for i, k := range keys {
		enc := url.PathEscape(k) // escapes "/" as %2F
		v := "v" + strconv.Itoa(i)
		st, body, _ := send(t, "PUT", u+"/v1/caches/blobs/keys/"+enc, v)
		if st != 204 {
			t.Errorf("PUT key %q as %s: %d %s", k, enc, st, body)
			continue
		}
		wantValue(t, fmt.Sprintf("key %q through %s", k, enc), u+"/v1/caches/blobs/keys/"+enc, v)
		// The decoded key is what was stored.
		bq, _ := json.Marshal(map[string][]string{"keys": {k}})
		st, body, _ = send(t, "POST", u+"/v1/caches/blobs/batch-get", string(bq))
		var got batchGetResponse
		if err := json.Unmarshal([]byte(body), &got); st != 200 || err != nil || got.Values[k] == nil {
			t.Errorf("key %q (PUT as %s) not found by batch-get under its decoded name: %d %s", k, enc, st, body)
		}
	}
	// "cafe" with a combining accent and the precomposed one are different
	// keys (no normalisation).
	wantValue(t, "precomposed", u+"/v1/caches/blobs/keys/"+url.PathEscape("caf\u00e9"), "v15")
	wantValue(t, "decomposed", u+"/v1/caches/blobs/keys/"+url.PathEscape("cafe\u0301"), "v16")
	// a/b through raw slashes and through %2F is one key.
	wantValue(t, "a/b raw", u+"/v1/caches/blobs/keys/a/b", "v1")
	// a%2Fb (the literal key, written %252F) is not a/b.
	wantValue(t, "literal a%2Fb", u+"/v1/caches/blobs/keys/a%252Fb", "v5")
	// The dache interface decodes keys the same way, over the dache cache,
	// which the native API also serves.
	for _, k := range []string{"a/b", "ключ", "100%", "user:42"} {
		enc := url.PathEscape(k)
		if st, body, _ := send(t, "POST", u+"/dache/"+enc, `{"value":"`+k+`"}`); st != 204 {
			t.Errorf("dache POST %q: %d %s", k, st, body)
			continue
		}
		wantValue(t, "dache "+k, u+"/dache/"+enc, dacheValue(strconv.Quote(k)))
		wantValue(t, "dache key through the native API", u+"/v1/caches/dache/keys/"+enc, strconv.Quote(k))
	}
	// The same key in two caches is two entries (isolation).
	if st, _, _ := send(t, "PUT", u+"/v1/caches/docs/keys/plain", `"docs"`); st != 204 {
		t.Fatal(st)
	}
	wantValue(t, "blobs/plain untouched by docs/plain", u+"/v1/caches/blobs/keys/plain", "v0")
}

// allowMethods lists the paths and their Allow header (server.go routes).
var allowMethods = []struct{ path, allow string }{
	{"/healthz", "GET, HEAD"},
	{"/readyz", "GET, HEAD"},
	{"/metrics", "GET, HEAD"},
	{"/health", "GET, HEAD"},
	{"/v1/caches", "GET, HEAD"},
	{"/v1/caches/blobs/keys/a", "GET, HEAD, PUT, DELETE"},
	{"/v1/caches/blobs/expire/a", "POST"},
	{"/v1/caches/blobs/remove-by-tag", "POST"},
	{"/v1/caches/blobs/clear", "POST"},
	{"/v1/caches/blobs/batch-get", "POST"},
	{"/dache/a", "GET, HEAD, POST, DELETE"},
}

// TestHTTPMethodNotAllowed: docs/server.md, "405 method_not_allowed (with
// Allow)"; every method the Allow header names is served, every other is
// a JSON 405 with that header.
func TestHTTPMethodNotAllowed(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	all := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"}
	for _, p := range allowMethods {
		allowed := map[string]bool{}
		for m := range strings.SplitSeq(p.allow, ", ") {
			allowed[m] = true
		}
		for _, m := range all {
			body := ""
			if m == "POST" && strings.HasSuffix(p.path, "batch-get") {
				body = `{"keys":["a"]}`
			}
			if m == "POST" && strings.HasSuffix(p.path, "remove-by-tag") {
				body = `{"tags":["a"]}`
			}
			if m == "POST" && strings.HasPrefix(p.path, "/dache/") {
				body = `{"value":1}`
			}
			st, rb, h := send(t, m, u+p.path, body)
			if allowed[m] {
				if st == 405 || st >= 500 {
					t.Errorf("%s %s (in Allow %q): %d %s", m, p.path, p.allow, st, rb)
				}
				continue
			}
			if m == "HEAD" {
				continue // all paths allow HEAD or are POST-only, see below
			}
			wantError(t, m+" "+p.path, st, rb, h, 405, "method_not_allowed")
			if got := h.Get("Allow"); got != p.allow {
				t.Errorf("%s %s: Allow %q, want %q", m, p.path, got, p.allow)
			}
		}
		if !allowed["HEAD"] {
			st, rb, h := send(t, "HEAD", u+p.path, "")
			if st != 405 || rb != "" || h.Get("Allow") != p.allow {
				t.Errorf("HEAD %s: %d %q Allow %q, want 405 with Allow %q", p.path, st, rb, h.Get("Allow"), p.allow)
			}
		}
	}
	// A path that is no endpoint is a JSON 404, whatever the method.
	for _, m := range []string{"GET", "POST", "DELETE"} {
		st, body, h := send(t, m, u+"/v1/nothing", "")
		wantError(t, m+" /v1/nothing", st, body, h, 404, "not_found")
	}
}

func TestHTTPHead(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	k := u + "/v1/caches/blobs/keys/k"
	st, _, ph := send(t, "PUT", k, "hello")
	if st != 204 {
		t.Fatal(st)
	}
	_, _, gh := send(t, "GET", k, "")
	// docs/server.md: PUT answers "204, with the value's ETag", the one GET
	// gives.
	if ph.Get("Etag") == "" || ph.Get("Etag") != gh.Get("Etag") {
		t.Errorf("PUT ETag %q, GET ETag %q", ph.Get("Etag"), gh.Get("Etag"))
	}
	st, body, h := send(t, "HEAD", k, "")
	if st != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", st, body)
	}
	if h.Get("Content-Length") != "5" || h.Get("Etag") != gh.Get("Etag") || h.Get("Content-Type") != gh.Get("Content-Type") {
		t.Errorf("HEAD headers %v differ from GET's %v", h, gh)
	}
	if st, body, _ := send(t, "HEAD", k, "", "If-None-Match", gh.Get("Etag")); st != 304 || body != "" {
		t.Errorf("HEAD If-None-Match: %d %q", st, body)
	}
	if st, body, _ := send(t, "HEAD", u+"/v1/caches/blobs/keys/missing", ""); st != 404 || body != "" {
		t.Errorf("HEAD missing: %d %q", st, body)
	}
	// dache: HEAD answers as GET without the body.
	if st, _, _ := send(t, "POST", u+"/dache/d", `{"value":[1,2]}`); st != 204 {
		t.Fatal(st)
	}
	_, gbody, _ := send(t, "GET", u+"/dache/d", "")
	st, body, h = send(t, "HEAD", u+"/dache/d", "")
	if st != 200 || body != "" || h.Get("Content-Length") != strconv.Itoa(len(gbody)) || h.Get("Content-Type") != "application/json" {
		t.Errorf("HEAD /dache/d: %d %q %v (GET body %q)", st, body, h, gbody)
	}
	if st, _, _ := send(t, "HEAD", u+"/dache/missing", ""); st != 404 {
		t.Errorf("HEAD /dache/missing: %d", st)
	}
	for _, p := range []string{"/healthz", "/health", "/readyz", "/metrics", "/v1/caches"} {
		if st, body, _ := send(t, "HEAD", u+p, ""); st != 200 || body != "" {
			t.Errorf("HEAD %s: %d %q", p, st, body)
		}
	}
	// HEAD is a read: it changes nothing.
	wantValue(t, "after HEADs", k, "hello")
}

// TestHTTPContentType: docs/server.md, "The content type is a setting of
// the cache, not stored per value" (the Content-Type of a PUT is not
// kept); the dache interface takes a body whatever its Content-Type
// (dache's own example is curl -d, form-encoded) and answers JSON.
func TestHTTPContentType(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	for _, c := range []struct{ cache, body, putType, want string }{
		{"blobs", "\x89PNG", "image/png", "application/octet-stream"},
		{"docs", `{"a":1}`, "text/plain", "application/json"},
		{"images", "RIFF", "application/octet-stream", "image/webp"},
		{"blobs", "x", "", "application/octet-stream"},
	} {
		p := u + "/v1/caches/" + c.cache + "/keys/ct"
		hdr := []string{}
		if c.putType != "" {
			hdr = []string{"Content-Type", c.putType}
		}
		if st, body, _ := send(t, "PUT", p, c.body, hdr...); st != 204 {
			t.Fatalf("PUT %s: %d %s", c.cache, st, body)
		}
		st, body, h := send(t, "GET", p, "", "Accept", "text/html")
		if st != 200 || body != c.body || h.Get("Content-Type") != c.want {
			t.Errorf("GET %s: %d %q Content-Type %q, want %q", c.cache, st, body, h.Get("Content-Type"), c.want)
		}
	}
	for _, ct := range []string{"", "application/json", "application/json; charset=utf-8", "application/x-www-form-urlencoded", "text/plain"} {
		hdr := []string{}
		if ct != "" {
			hdr = []string{"Content-Type", ct}
		}
		if st, body, _ := send(t, "POST", u+"/dache/ct", `{"value":"`+ct+`"}`, hdr...); st != 204 {
			t.Errorf("dache POST with Content-Type %q: %d %s", ct, st, body)
			continue
		}
		st, body, h := send(t, "GET", u+"/dache/ct", "")
		if st != 200 || body != dacheValue(strconv.Quote(ct)) || h.Get("Content-Type") != "application/json" {
			t.Errorf("dache GET after Content-Type %q: %d %q %q", ct, st, body, h.Get("Content-Type"))
		}
	}
	// Errors are JSON and not sniffed; health is JSON; metrics are text.
	_, _, h := send(t, "GET", u+"/v1/caches/blobs/keys/missing", "")
	if h.Get("Content-Type") != "application/json" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("error headers: %v", h)
	}
	for p, want := range map[string]string{"/healthz": "application/json", "/health": "application/json", "/readyz": "application/json", "/v1/caches": "application/json"} {
		if _, _, h := send(t, "GET", u+p, ""); h.Get("Content-Type") != want {
			t.Errorf("%s Content-Type %q, want %q", p, h.Get("Content-Type"), want)
		}
	}
	if _, _, h := send(t, "GET", u+"/metrics", ""); !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Errorf("/metrics Content-Type %q, want text/plain", h.Get("Content-Type"))
	}
}

// TestHTTPAuth: docs/server.md, "Access control and limits". A caller
// without a valid token gets 401 (with WWW-Authenticate); no token, the
// server's or the caller's, appears in a response or in the log.
func TestHTTPAuth(t *testing.T) {
	const serverTok, cacheTok, wrongTok = "srv-SECRET-7f3a9c", "cache-SECRET-2b8e1d", "guess-SECRET-9z9z9z"
	yaml := peerYAML + "  private:\n    token: " + cacheTok + "\n"
	u, _, logs := peerServer(t, yaml, map[string]string{"STRATA_TOKEN": serverTok})
	auth := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	var bodies []string
	for _, c := range []struct {
		name, method, path string
		hdr                []string
		status             int
	}{
		{"no token", "GET", "/v1/caches/blobs/keys/a", nil, 401},
		{"wrong token", "GET", "/v1/caches/blobs/keys/a", auth(wrongTok), 401},
		{"wrong token PUT", "PUT", "/v1/caches/blobs/keys/a", auth(wrongTok), 401},
		{"empty bearer", "GET", "/v1/caches/blobs/keys/a", []string{"Authorization", "Bearer "}, 401},
		{"basic scheme", "GET", "/v1/caches/blobs/keys/a", []string{"Authorization", "Basic " + serverTok}, 401},
		{"token without scheme", "GET", "/v1/caches/blobs/keys/a", []string{"Authorization", serverTok}, 401},
		{"token prefix", "GET", "/v1/caches/blobs/keys/a", auth(serverTok[:len(serverTok)-1]), 401},
		{"token plus suffix", "GET", "/v1/caches/blobs/keys/a", auth(serverTok + "x"), 401},
		{"cache token elsewhere", "GET", "/v1/caches/blobs/keys/a", auth(cacheTok), 401},
		{"cache token on dache", "GET", "/dache/a", auth(cacheTok), 401},
		{"no token dache", "POST", "/dache/a", nil, 401},
		{"no token list", "GET", "/v1/caches", nil, 401},
		{"no token unknown cache", "GET", "/v1/caches/nope/keys/a", nil, 401},
		{"server token", "GET", "/v1/caches/blobs/keys/a", auth(serverTok), 404},
		{"server token on the private cache", "GET", "/v1/caches/private/keys/a", auth(serverTok), 404},
		{"cache token on its cache", "GET", "/v1/caches/private/keys/a", auth(cacheTok), 404},
		{"server token dache", "GET", "/dache/a", auth(serverTok), 404},
		{"open healthz", "GET", "/healthz", nil, 200},
		{"open health", "GET", "/health", nil, 200},
		{"open readyz", "GET", "/readyz", nil, 200},
		{"open metrics", "GET", "/metrics", nil, 200},
	} {
		body := ""
		if c.method != "GET" {
			body = `{"value":1}`
		}
		st, rb, h := send(t, c.method, u+c.path, body, c.hdr...)
		bodies = append(bodies, rb)
		if c.status == 401 {
			wantError(t, c.name, st, rb, h, 401, "unauthorized")
			if h.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", c.name)
			}
			continue
		}
		if st != c.status {
			t.Errorf("%s: %d, want %d: %s", c.name, st, c.status, rb)
		}
	}
	// A refused write changed nothing.
	if st, _, _ := send(t, "GET", u+"/v1/caches/blobs/keys/a", "", auth(serverTok)...); st != 404 {
		t.Errorf("a write with a wrong token stored something: %d", st)
	}
	for _, tok := range []string{serverTok, cacheTok, wrongTok, "SECRET"} {
		for _, b := range bodies {
			if strings.Contains(b, tok) {
				t.Errorf("a response body holds %q: %s", tok, b)
			}
		}
		if strings.Contains(logs.String(), tok) {
			t.Errorf("the log holds %q:\n%s", tok, logs.String())
		}
	}
	if !strings.Contains(logs.String(), `"status":401`) {
		t.Errorf("the 401s are not in the request log:\n%s", logs.String())
	}
}

// TestHTTPDacheCompat: the responses docs/server.md ("dache compatibility
// mode") gives, byte for byte where it shows them.
func TestHTTPDacheCompat(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	d := u + "/dache/user:1"
	expiry := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)

	st, body, h := send(t, "GET", d, "")
	if st != 404 || body != `{"error":{"code":"not_found","message":"no such key"}}`+"\n" || h.Get("Content-Type") != "application/json" {
		t.Errorf("GET missing: %d %q %q", st, body, h.Get("Content-Type"))
	}
	st, body, _ = send(t, "POST", d, `{"value": {"name": "Ada"}, "expiry": `+expiry+`}`)
	if st != 204 || body != "" {
		t.Errorf("POST: %d %q, want 204 and no body", st, body)
	}
	st, body, h = send(t, "GET", d, "")
	if st != 200 || body != `{"value":{"name": "Ada"}}`+"\n" || h.Get("Content-Type") != "application/json" {
		t.Errorf("GET: %d %q %q", st, body, h.Get("Content-Type"))
	}
	var parsed struct {
		Value struct{ Name string } `json:"value"`
	}
	if err := json.Unmarshal([]byte(body), &parsed); err != nil || parsed.Value.Name != "Ada" {
		t.Errorf("GET body does not parse as {\"value\": ...}: %v %q", err, body)
	}
	// An overwrite, then null ("The value may be any JSON, null included").
	if st, _, _ := send(t, "POST", d, `{"value": "second"}`); st != 204 {
		t.Errorf("overwrite: %d", st)
	}
	wantValue(t, "overwrite", d, dacheValue(`"second"`))
	if st, _, _ := send(t, "POST", d, `{"value": null}`); st != 204 {
		t.Errorf("null: %d", st)
	}
	wantValue(t, "null value (a hit, not a miss)", d, dacheValue("null"))
	// Missing "value", unknown fields: 400 bad_body ("Where we differ").
	for _, b := range []string{`{}`, `{"expiry": ` + expiry + `}`, `{"value": 1, "ttl": 5}`, `{"value": 1, "expiry": ` + expiry + `, "extra": true}`} {
		st, body, h := send(t, "POST", d, b)
		wantError(t, "POST "+b, st, body, h, 400, "bad_body")
	}
	wantValue(t, "after refused POSTs", d, dacheValue("null"))
	st, body, _ = send(t, "DELETE", d, "")
	if st != 204 || body != "" {
		t.Errorf("DELETE: %d %q", st, body)
	}
	if st, _, _ := send(t, "GET", d, ""); st != 404 {
		t.Errorf("GET after DELETE: %d", st)
	}
	if st, _, _ := send(t, "DELETE", d, ""); st != 204 {
		t.Errorf("DELETE of a missing key: %d, want 204", st)
	}
	st, body, h = send(t, "GET", u+"/health", "")
	if st != 200 || body != `{"status":"ok"}`+"\n" || h.Get("Content-Type") != "application/json" {
		t.Errorf("/health: %d %q %q", st, body, h.Get("Content-Type"))
	}
	// dache.enabled: false turns /dache and /health off.
	off, _, _ := peerServer(t, "dache:\n  enabled: false\n", nil)
	for _, p := range []string{"/dache/a", "/health"} {
		st, body, h := send(t, "GET", off+p, "")
		wantError(t, "dache off: "+p, st, body, h, 404, "not_found")
	}
}

// TestHTTPReadyzRedisDown: /readyz checks the distributed tier and says
// which cache and why; /healthz and /health stay 200 while the process
// lives (docs/server.md, "/healthz, /readyz").
func TestHTTPReadyzRedisDown(t *testing.T) {
	rs := redistest.Start(t)
	u, _, _ := peerServer(t, peerYAML, map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": rs.URL()})
	type readyBody struct {
		Ready  bool             `json:"ready"`
		Reason string           `json:"reason"`
		Caches []cacheReadiness `json:"caches"`
	}
	ready := func() (int, readyBody, string) {
		st, body, h := send(t, "GET", u+"/readyz", "")
		var rb readyBody
		if err := json.Unmarshal([]byte(body), &rb); err != nil || h.Get("Content-Type") != "application/json" {
			t.Fatalf("/readyz: %d %q (%v)", st, body, err)
		}
		return st, rb, body
	}
	waitFor(t, 10*time.Second, "/readyz with Redis up", func() bool { st, _, _ := ready(); return st == 200 })
	st, rb, body := ready()
	if !rb.Ready || rb.Reason != "" || len(rb.Caches) != 5 {
		t.Fatalf("/readyz up: %d %s", st, body)
	}
	for _, c := range rb.Caches {
		if !c.Ready || c.L2 != "ok" || c.Backplane != "redis" || c.CircuitOpen {
			t.Errorf("/readyz up, cache %+v", c)
		}
	}
	if st, _, _ := send(t, "PUT", u+"/v1/caches/blobs/keys/k", "v"); st != 204 {
		t.Fatal(st)
	}

	rs.Kill(t)
	waitFor(t, 10*time.Second, "/readyz to answer 503 with Redis down", func() bool { st, _, _ := ready(); return st == 503 })
	st, rb, body = ready()
	if rb.Ready || !strings.HasPrefix(rb.Reason, "cache ") || !strings.Contains(rb.Reason, "unavailable") {
		t.Errorf("/readyz down: %d %s", st, body)
	}
	for _, c := range rb.Caches {
		if c.Ready || c.L2 == "ok" {
			t.Errorf("/readyz down, cache %+v", c)
		}
	}
	for _, p := range []string{"/healthz", "/health"} {
		if st, body, _ := send(t, "GET", u+p, ""); st != 200 || body != `{"status":"ok"}`+"\n" {
			t.Errorf("%s with Redis down: %d %s", p, st, body)
		}
	}
	// Memory still answers what it holds.
	wantValue(t, "a value in memory with Redis down", u+"/v1/caches/blobs/keys/k", "v")

	rs.Restart(t)
	waitFor(t, 15*time.Second, "/readyz once Redis is back", func() bool { st, _, _ := ready(); return st == 200 })
	if st, body, _ := send(t, "POST", u+"/dache/after", `{"value":1}`); st != 204 {
		t.Errorf("a strict write once ready again: %d %s", st, body)
	}
}

// metricLine is one sample line of the Prometheus text format.
var metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)( -?\d+)?$`)

// TestHTTPMetricsFormat: /metrics parses as the Prometheus text format,
// carries the documented metrics, and never a key (docs/server.md,
// "/metrics": route is "the route pattern, never the key").
func TestHTTPMetricsFormat(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	const secretKey = "user-SECRETKEY-42"
	send(t, "PUT", u+"/v1/caches/blobs/keys/"+secretKey, "x")
	send(t, "GET", u+"/v1/caches/blobs/keys/"+secretKey, "")
	send(t, "GET", u+"/v1/caches/blobs/keys/"+secretKey+"-missing", "")
	send(t, "POST", u+"/dache/"+secretKey, `{"value":1}`)
	send(t, "GET", u+"/dache/"+secretKey, "")
	send(t, "GET", u+"/nowhere/"+secretKey, "")
	send(t, "PATCH", u+"/v1/caches/blobs/keys/"+secretKey, "")

	st, body, h := send(t, "GET", u+"/metrics", "")
	if st != 200 {
		t.Fatalf("/metrics: %d", st)
	}
	if strings.Contains(body, "SECRETKEY") {
		t.Errorf("/metrics holds a key")
	}
	// Line by line: HELP and TYPE before the samples of each family, every
	// sample well formed with a numeric value.
	typed := map[string]string{}
	for i, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "), strings.HasPrefix(line, "# TYPE "):
			f := strings.SplitN(line, " ", 4)
			if len(f) < 4 {
				t.Errorf("line %d: %q", i+1, line)
			} else if f[1] == "TYPE" {
				typed[f[2]] = f[3]
			}
		case strings.HasPrefix(line, "#"):
		default:
			m := metricLine.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("line %d is not a sample: %q", i+1, line)
				continue
			}
			if _, err := strconv.ParseFloat(m[3], 64); err != nil && m[3] != "+Inf" && m[3] != "-Inf" && m[3] != "NaN" {
				t.Errorf("line %d: value %q", i+1, m[3])
			}
			name := m[1]
			base := name
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if typed[strings.TrimSuffix(name, suf)] == "histogram" {
					base = strings.TrimSuffix(name, suf)
				}
			}
			if typed[base] == "" {
				t.Errorf("line %d: %s without a TYPE line before it", i+1, name)
			}
		}
	}
	// And through Prometheus's own parser.
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("expfmt: %v (Content-Type %q)", err, h.Get("Content-Type"))
	}
	for name, typ := range map[string]string{
		"strata_cache_hits_total": "COUNTER", "strata_cache_misses_total": "COUNTER",
		"strata_http_requests_total": "COUNTER", "strata_http_request_duration_seconds": "HISTOGRAM",
		"strata_cache_l2_circuit_open": "GAUGE", "strata_cache_recovery_pending": "GAUGE",
		"go_goroutines": "", // the Go collector is registered by main only
	} {
		f := fams[name]
		if typ == "" {
			continue
		}
		if f == nil {
			t.Errorf("no %s", name)
			continue
		}
		if got := f.GetType().String(); got != typ {
			t.Errorf("%s: type %s, want %s", name, got, typ)
		}
	}
	// route is a pattern (or "unmatched"), code a status, method a method.
	for _, m := range fams["strata_http_requests_total"].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["route"] != "unmatched" && !strings.Contains(l["route"], "/") {
			t.Errorf("route label %q", l["route"])
		}
		if c, err := strconv.Atoi(l["code"]); err != nil || c < 100 || c > 599 {
			t.Errorf("code label %q", l["code"])
		}
	}
}

// TestHTTPGracefulShutdown: on SIGTERM a request whose body is still
// arriving completes (204), the process exits 0, and the write is not cut
// (docs/server.md: "lets in-flight requests finish").
func TestHTTPGracefulShutdown(t *testing.T) {
	p := startProc(t, map[string]string{"DURABILITY_ENGINE": "memory"})
	pr, pw := io.Pipe()
	continued := make(chan struct{})
	var once sync.Once
	trace := &httptrace.ClientTrace{Got100Continue: func() { once.Do(func() { close(continued) }) }}
	r, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "POST", p.URL+"/dache/inflight", pr)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Expect", "100-continue")
	r.ContentLength = int64(len(`{"value":"done"}`))
	tr := &http.Transport{ExpectContinueTimeout: 30 * time.Second, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	type result struct {
		st   int
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Do(r)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- result{st: resp.StatusCode, body: string(b)}
	}()
	go func() {
		// The body's first half, once the handler reads (100 Continue).
		select {
		case <-continued:
		case <-time.After(20 * time.Second):
			pw.CloseWithError(fmt.Errorf("no 100 Continue"))
			return
		}
		_, _ = io.WriteString(pw, `{"value":`)
	}()
	<-continued // the handler is reading the body: the request is in flight
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the server to start shutting down", func() bool {
		return strings.Contains(p.Log(), `"msg":"shutting down"`)
	})
	_, _ = io.WriteString(pw, `"done"}`)
	pw.Close()
	res := <-got
	if res.err != nil || res.st != 204 {
		t.Fatalf("in-flight POST during shutdown: %d %q %v", res.st, res.body, res.err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("server still running 20s after SIGINT")
	}
	if p.err != nil {
		t.Fatalf("exit after SIGINT: %v\n%s", p.err, p.Log())
	}
	if !strings.Contains(p.Log(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", p.Log())
	}
	// Nothing is served any more.
	if resp, err := peerClient.Get(p.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("served after the stop: %d", resp.StatusCode)
	}
}

// TestHTTPTwoServersOneRedis: docs/server.md, "Several servers over one
// Redis are coherent: a write or delete on one is seen by the others
// within the backplane's delay".
func TestHTTPTwoServersOneRedis(t *testing.T) {
	rs := redistest.Start(t)
	env := map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": rs.URL()}
	a, _, _ := peerServer(t, peerYAML, env)
	b, _, _ := peerServer(t, peerYAML, env)
	waitFor(t, 10*time.Second, "both servers ready (backplane subscribed)", func() bool {
		sa, _, _ := send(t, "GET", a+"/readyz", "")
		sb, _, _ := send(t, "GET", b+"/readyz", "")
		return sa == 200 && sb == 200
	})
	eventually := func(what, u string, status int, body string) {
		t.Helper()
		waitFor(t, 10*time.Second, what, func() bool {
			st, got, _ := send(t, "GET", u, "")
			return st == status && (body == "" || got == body)
		})
	}
	// Native: a write on A is read on B; B holds it in memory; a change on
	// A reaches B's memory; a delete on B is seen on A.
	ka, kb := a+"/v1/caches/blobs/keys/k", b+"/v1/caches/blobs/keys/k"
	if st, _, _ := send(t, "PUT", ka, "v1"); st != 204 {
		t.Fatal(st)
	}
	eventually("B to read A's write", kb, 200, "v1") // blobs is not strict: its L2 write may be in the background
	if st, _, _ := send(t, "PUT", ka, "v2"); st != 204 {
		t.Fatal(st)
	}
	eventually("B to see A's change", kb, 200, "v2")
	if st, _, _ := send(t, "DELETE", kb, ""); st != 204 {
		t.Fatal(st)
	}
	eventually("A to see B's delete", ka, 404, "")
	// Expire on A: B misses, the stale value stays a fallback only with
	// fail-safe, so a plain GET is 404.
	if st, _, _ := send(t, "PUT", a+"/v1/caches/docs/keys/e", `"e"`); st != 204 {
		t.Fatal(st)
	}
	eventually("B to read e", b+"/v1/caches/docs/keys/e", 200, `"e"`)
	if st, _, _ := send(t, "POST", a+"/v1/caches/docs/expire/e", ""); st != 204 {
		t.Fatal(st)
	}
	eventually("B to see A's expire", b+"/v1/caches/docs/keys/e", 404, "")
	// Clear on B: A misses what it held.
	if st, _, _ := send(t, "PUT", a+"/v1/caches/docs/keys/c", `"c"`); st != 204 {
		t.Fatal(st)
	}
	eventually("A to read c", a+"/v1/caches/docs/keys/c", 200, `"c"`)
	if st, _, _ := send(t, "POST", b+"/v1/caches/docs/clear", ""); st != 204 {
		t.Fatal(st)
	}
	eventually("A to see B's clear", a+"/v1/caches/docs/keys/c", 404, "")

	// remove-by-tag on A (mode delete): B misses the tagged key, keeps the
	// other.
	if st, _, _ := send(t, "PUT", a+"/v1/caches/docs/keys/t1", `1`, "Strata-Tags", "team:7"); st != 204 {
		t.Fatal(st)
	}
	if st, _, _ := send(t, "PUT", a+"/v1/caches/docs/keys/t2", `2`, "Strata-Tags", "team:8"); st != 204 {
		t.Fatal(st)
	}
	eventually("B to read t1", b+"/v1/caches/docs/keys/t1", 200, "1")
	eventually("B to read t2", b+"/v1/caches/docs/keys/t2", 200, "2")
	if st, body, _ := send(t, "POST", a+"/v1/caches/docs/remove-by-tag", `{"tags":["team:7"],"mode":"delete"}`); st != 204 {
		t.Fatalf("remove-by-tag: %d %s", st, body)
	}
	eventually("B to see A's remove-by-tag", b+"/v1/caches/docs/keys/t1", 404, "")
	wantValue(t, "B keeps the untagged key", b+"/v1/caches/docs/keys/t2", "2")

	// dache: the same, with the dache responses.
	if st, body, _ := send(t, "POST", a+"/dache/d", `{"value":{"n":1}}`); st != 204 {
		t.Fatalf("dache POST on A: %d %s", st, body)
	}
	wantValue(t, "B reads A's dache write", b+"/dache/d", dacheValue(`{"n":1}`))
	if st, _, _ := send(t, "POST", b+"/dache/d", `{"value":{"n":2}}`); st != 204 {
		t.Fatal(st)
	}
	eventually("A to see B's dache overwrite", a+"/dache/d", 200, dacheValue(`{"n":2}`))
	if st, _, _ := send(t, "DELETE", a+"/dache/d", ""); st != 204 {
		t.Fatal(st)
	}
	eventually("B to see A's dache delete", b+"/dache/d", 404, "")
	// An expiry set on A holds on B.
	soon := strconv.FormatInt(time.Now().Add(1500*time.Millisecond).Unix(), 10)
	if st, body, _ := send(t, "POST", a+"/dache/soon", `{"value":1,"expiry":`+soon+`}`); st != 204 {
		t.Fatalf("POST soon: %d %s", st, body)
	}
	if st, _, _ := send(t, "GET", b+"/dache/soon", ""); st != 200 {
		t.Errorf("B before the expiry: %d", st)
	}
	eventually("the expiry to hold on B", b+"/dache/soon", 404, "")
}
