package main

// batch-get counts the distinct keys against max_batch_keys: duplicates
// are answered once (docs/server.md, "POST .../batch-get"), so they do not
// make a batch too large.
// Needs peer_http_test.go (peerServer, send, wantError).

import (
	"encoding/json"
	"testing"
)

func TestHTTPBatchGetLimitCountsDistinctKeys(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML+"max_batch_keys: 2\n", nil)
	if st, body, _ := send(t, "PUT", u+"/v1/caches/docs/keys/a", `{"a":1}`); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	st, body, _ := send(t, "POST", u+"/v1/caches/docs/batch-get", `{"keys":["a","a","b","a","b"]}`)
	if st != 200 {
		t.Fatalf("batch-get of 2 distinct keys in 5: %d %s, want 200", st, body)
	}
	var resp struct {
		Values  map[string]json.RawMessage `json:"values"`
		Missing []string                   `json:"missing"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Values) != 1 || string(resp.Values["a"]) != `{"a":1}` || len(resp.Missing) != 1 || resp.Missing[0] != "b" {
		t.Errorf("batch-get = %s, want a once and b missing once", body)
	}
	st, body, h := send(t, "POST", u+"/v1/caches/docs/batch-get", `{"keys":["a","b","c"]}`)
	wantError(t, "batch-get of 3 distinct keys with max_batch_keys 2", st, body, h, 400, "bad_body")
}
