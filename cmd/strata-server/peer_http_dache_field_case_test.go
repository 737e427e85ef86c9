package main

// BUG (minor): dache body fields are matched case-insensitively, so
// {"Value": 1} or {"VALUE": 1, "EXPIRY": ...} is taken as {"value": ...}
// instead of being refused as unknown fields / a missing "value".
// docs/server.md ("Where we differ from dache"): refused with 400: "a
// missing `value`, an unknown field".
// Cause: dache.go dachePost decodes with encoding/json, whose field matching
// is case-insensitive; DisallowUnknownFields does not catch "Value".
// The native API (batch-get, remove-by-tag) had the same flaw.
// Needs peer_http_test.go (peerServer, send, wantError).

import "testing"

func TestHTTPDacheFieldNamesExact(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	for _, b := range []string{`{"Value":1}`, `{"VALUE":1}`, `{"value":1,"Expiry":4102444800}`} {
		st, body, h := send(t, "POST", u+"/dache/k", b)
		wantError(t, "dache POST "+b, st, body, h, 400, "bad_body")
	}
	if st, _, _ := send(t, "GET", u+"/dache/k", ""); st != 404 {
		t.Errorf("a refused POST stored something: GET %d", st)
	}
}

// The native API's JSON bodies match field names exactly too.
func TestHTTPNativeFieldNamesExact(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	if st, body, _ := send(t, "PUT", u+"/v1/caches/docs/keys/a", `1`, "Strata-Tags", "t"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	for _, c := range []struct{ path, body string }{
		{"batch-get", `{"Keys":["a"]}`},
		{"batch-get", `{"keys":["a"],"KEYS":["b"]}`},
		{"remove-by-tag", `{"Tags":["t"]}`},
		{"remove-by-tag", `{"tags":["t"],"Mode":"delete"}`},
	} {
		st, body, h := send(t, "POST", u+"/v1/caches/docs/"+c.path, c.body)
		wantError(t, c.path+" "+c.body, st, body, h, 400, "bad_body")
	}
	if st, body, _ := send(t, "GET", u+"/v1/caches/docs/keys/a", ""); st != 200 || body != "1" {
		t.Errorf("a refused remove-by-tag changed the entry: GET %d %s", st, body)
	}
	if st, body, _ := send(t, "POST", u+"/v1/caches/docs/batch-get", `{"keys":["a"]}`); st != 200 {
		t.Errorf("batch-get with exact field names: %d %s", st, body)
	}
}
