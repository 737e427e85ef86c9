package main

// BUG: a JSON body followed by a stray "}" or "]" is accepted.
// docs/server.md ("Where we differ from dache"): "Bad input is refused with
// 400 and a JSON error, and changes nothing: a body that is not JSON, ...".
// Cause: dache.go dachePost and native.go decodeJSON check trailing data with
// json.Decoder.More(), which reports false when the next byte is '}' or ']'.
// Needs peer_http_test.go (peerServer, send, wantError, wantValue, dacheValue).

import "testing"

func TestHTTPTrailingJSONRefused(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	if st, body, _ := send(t, "POST", u+"/dache/k", `{"value":"orig"}`); st != 204 {
		t.Fatalf("POST: %d %s", st, body)
	}
	for _, b := range []string{`{"value":1}}`, `{"value":1}]`, `{"value":1} ]`} {
		st, body, h := send(t, "POST", u+"/dache/k", b)
		wantError(t, "dache POST "+b, st, body, h, 400, "bad_body")
	}
	wantValue(t, "dache value after refused POSTs", u+"/dache/k", dacheValue(`"orig"`))
	for _, c := range []struct{ path, body string }{
		{"batch-get", `{"keys":["a"]}}`},
		{"batch-get", `{"keys":["a"]}]`},
		{"remove-by-tag", `{"tags":["a"]}}`},
	} {
		st, body, h := send(t, "POST", u+"/v1/caches/docs/"+c.path, c.body)
		wantError(t, c.path+" "+c.body, st, body, h, 400, "bad_body")
	}
}

// White space after the JSON value is not trailing data.
func TestHTTPTrailingWhiteSpaceAccepted(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	if st, body, _ := send(t, "POST", u+"/dache/k", "{\"value\":1} \r\n\t\n"); st != 204 {
		t.Fatalf("dache POST with trailing white space: %d %s", st, body)
	}
	wantValue(t, "dache value", u+"/dache/k", dacheValue("1"))
	if st, body, _ := send(t, "POST", u+"/v1/caches/docs/batch-get", "{\"keys\":[\"a\"]}\n"); st != 200 {
		t.Errorf("batch-get with a trailing newline: %d %s", st, body)
	}
}
