package main

// docs/server.md, "The native API": "A query string that does not parse
// (an invalid escape such as %zz, a ; between parameters) is 400
// bad_request", and a refused request changes nothing. Only GET, PUT and
// clear parsed their query; DELETE, expire, remove-by-tag, batch-get and
// the dache routes ignored it and performed the request.

import "testing"

func TestHuntMalformedQueryRefusedOnEveryEndpoint(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	k := u + "/v1/caches/blobs/keys/k"
	put := func() {
		t.Helper()
		if st, body, _ := send(t, "PUT", k+"?ttl=1h", "orig", "Strata-Tags", "t1"); st != 204 {
			t.Fatalf("PUT: %d %s", st, body)
		}
		if st, body, _ := send(t, "POST", u+"/dache/k", `{"value":"orig"}`); st != 204 {
			t.Fatalf("dache POST: %d %s", st, body)
		}
	}
	for _, q := range []string{"x=%zz", "a=1;b=2"} {
		for _, c := range []struct{ method, path, body string }{
			{"DELETE", "/v1/caches/blobs/keys/k", ""},
			{"POST", "/v1/caches/blobs/expire/k", ""},
			{"POST", "/v1/caches/blobs/remove-by-tag", `{"tags":["t1"],"mode":"delete"}`},
			{"POST", "/v1/caches/blobs/batch-get", `{"keys":["k"]}`},
			{"POST", "/dache/k", `{"value":"new"}`},
			{"DELETE", "/dache/k", ""},
			{"GET", "/dache/k", ""},
		} {
			put()
			st, body, h := send(t, c.method, u+c.path+"?"+q, c.body)
			wantError(t, c.method+" "+c.path+"?"+q, st, body, h, 400, "bad_request")
			wantValue(t, "after "+c.method+" "+c.path+"?"+q, k, "orig")
			wantValue(t, "dache after "+c.method+" "+c.path+"?"+q, u+"/dache/k", dacheValue(`"orig"`))
		}
	}
}
