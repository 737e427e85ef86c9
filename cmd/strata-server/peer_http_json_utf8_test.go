package main

// JSON bodies that are not UTF-8. Needs peer_http_test.go (peerServer,
// send, wantError, wantValue, dacheValue).

import (
	"encoding/json"
	"testing"
)

// TestHTTPJSONNotUTF8Refused: encoding/json reads bytes that are not UTF-8
// inside a string as U+FFFD, and json.Valid passes them. So a batch-get of
// a key holding a stray 0xff byte read the key "\ufffd" and answered 200
// about that other key, remove-by-tag removed another tag, and a dache
// POST or a JSON cache's PUT stored bytes that were served later as JSON
// that is not JSON. JSON text must be UTF-8 (RFC 8259 8.1): such a body is
// 400 bad_body and changes nothing. A bytes cache still takes any bytes.
func TestHTTPJSONNotUTF8Refused(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	// The key U+FFFD, which a misread batch-get would find.
	if st, body, _ := send(t, "PUT", u+"/v1/caches/blobs/keys/%EF%BF%BD", "replacement", "Strata-Tags", "\ufffd"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	if st, body, _ := send(t, "PUT", u+"/v1/caches/docs/keys/k", `"orig"`); st != 204 {
		t.Fatalf("PUT docs: %d %s", st, body)
	}
	if st, body, _ := send(t, "POST", u+"/dache/d", `{"value":"orig"}`); st != 204 {
		t.Fatalf("dache POST: %d %s", st, body)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/caches/blobs/batch-get", "{\"keys\":[\"\xff\"]}"},
		{"POST", "/v1/caches/blobs/batch-get", "{\"keys\":[\"a\xc3\"]}"},
		{"POST", "/v1/caches/blobs/remove-by-tag", "{\"tags\":[\"\xff\"],\"mode\":\"delete\"}"},
		{"POST", "/dache/d", "{\"value\":\"\xff\"}"},
		{"POST", "/dache/d", "{\"value\":\"new\",\"\xff\":1}"},
		{"PUT", "/v1/caches/docs/keys/k", "\"\xfe\xff\""},
		{"PUT", "/v1/caches/docs/keys/k", "{\"a\xed\xa0\x80\":1}"}, // an encoded surrogate
	} {
		st, body, h := send(t, c.method, u+c.path, c.body)
		wantError(t, c.method+" "+c.path+" "+string(c.body), st, body, h, 400, "bad_body")
		if st == 400 && !json.Valid([]byte(body)) {
			t.Errorf("%s %s: the error is not valid JSON: %q", c.method, c.path, body)
		}
	}
	wantValue(t, "tagged key after a refused remove-by-tag", u+"/v1/caches/blobs/keys/%EF%BF%BD", "replacement")
	wantValue(t, "docs value after refused PUTs", u+"/v1/caches/docs/keys/k", `"orig"`)
	wantValue(t, "dache value after refused POSTs", u+"/dache/d", dacheValue(`"orig"`))
	// UTF-8 text, escapes included, is fine, and a bytes cache holds any bytes.
	if st, body, _ := send(t, "POST", u+"/dache/d", `{"value":"é\u00e9\ud83c\udf89"}`); st != 204 {
		t.Errorf("dache POST UTF-8: %d %s", st, body)
	}
	if st, body, _ := send(t, "PUT", u+"/v1/caches/blobs/keys/bin", "\xff\xfe\x00"); st != 204 {
		t.Errorf("PUT bytes: %d %s", st, body)
	}
	wantValue(t, "bytes value", u+"/v1/caches/blobs/keys/bin", "\xff\xfe\x00")
}
