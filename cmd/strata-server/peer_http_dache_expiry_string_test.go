package main

// BUG: "expiry" given as a JSON string of digits is accepted.
// docs/server.md ("Where we differ from dache"): refused with 400 "... an
// `expiry` that is not a whole number"; SPEC.md 11: {"value": ...,
// "expiry": unix-seconds}. A string is not a number.
// Cause: dache.go dacheBody.Expiry is *json.Number, and encoding/json decodes
// a quoted numeric string into a json.Number without error.
// Needs peer_http_test.go (peerServer, send, wantError, wantValue, dacheValue).

import (
	"strconv"
	"testing"
	"time"
)

func TestHTTPDacheExpiryStringRefused(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	if st, body, _ := send(t, "POST", u+"/dache/k", `{"value":"orig"}`); st != 204 {
		t.Fatalf("POST: %d %s", st, body)
	}
	far := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	for _, e := range []string{`"` + far + `"`, `"-1"`, `"0"`} {
		st, body, h := send(t, "POST", u+"/dache/k", `{"value":"new","expiry":`+e+`}`)
		if st != 400 {
			t.Errorf("expiry %s: %d, want 400 (a string is not a Unix time): %s", e, st, body)
			continue
		}
		wantError(t, "expiry "+e, st, body, h, 400, errCode(t, body))
	}
	wantValue(t, "value after refused POSTs", u+"/dache/k", dacheValue(`"orig"`))
}
