package main

// A JSON request body that names a member twice. Needs peer_http_test.go
// (peerServer, send, wantError, wantValue, dacheValue).

import (
	"strconv"
	"testing"
	"time"
)

// TestHTTPDuplicateJSONFieldRefused: encoding/json keeps the last of two
// members with one name, so the dache POST {"value":1,"value":2} stored 2,
// {"value":1,"expiry":<future>,"expiry":null} stored with no expiry, and a
// batch-get or remove-by-tag acted on the last list only, all with a 2xx.
// A name given twice in the request object (escaped or not) is 400
// bad_body and changes nothing; a nested object is a value, kept as sent.
func TestHTTPDuplicateJSONFieldRefused(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	d := u + "/dache/d"
	if st, body, _ := send(t, "POST", d, `{"value":"orig"}`); st != 204 {
		t.Fatalf("dache POST: %d %s", st, body)
	}
	k := u + "/v1/caches/blobs/keys/k"
	if st, body, _ := send(t, "PUT", k, "orig", "Strata-Tags", "t"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	future := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	for _, c := range []struct{ path, body string }{
		{"/dache/d", `{"value":"new","value":"newer"}`},
		{"/dache/d", `{"value":"new","valu\u0065":"newer"}`},
		{"/dache/d", `{"value":"new","expiry":` + future + `,"expiry":null}`},
		{"/dache/d", `{"expiry":null,"value":"new","expiry":null}`},
		{"/v1/caches/blobs/batch-get", `{"keys":["k"],"keys":["x"]}`},
		{"/v1/caches/blobs/remove-by-tag", `{"tags":["x"],"tags":["t"],"mode":"delete"}`},
		{"/v1/caches/blobs/remove-by-tag", `{"tags":["t"],"mode":"expire","mode":"delete"}`},
	} {
		st, body, h := send(t, "POST", u+c.path, c.body)
		wantError(t, "POST "+c.path+" "+c.body, st, body, h, 400, "bad_body")
	}
	wantValue(t, "dache value after refused duplicates", d, dacheValue(`"orig"`))
	wantValue(t, "tagged value after refused duplicates", k, "orig")
	// The same name in nested objects, or in two of them, is the value's.
	for _, v := range []string{`{"a":1,"a":2}`, `[{"a":1},{"a":2}]`, `{"value":{"value":1}}`} {
		if st, body, _ := send(t, "POST", d, `{"value":`+v+`}`); st != 204 {
			t.Errorf("dache POST value %s: %d %s", v, st, body)
			continue
		}
		wantValue(t, "nested "+v, d, dacheValue(v))
	}
}
