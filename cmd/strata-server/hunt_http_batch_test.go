package main

// batch-get as a client in another language reads it (docs/server.md,
// "POST /v1/caches/{cache}/batch-get"): values are base64 strings in a
// bytes cache (the empty value is "", never null, from memory or from the
// distributed tier), the JSON values themselves in a json cache (a stored
// null is a value, not a missing key), "missing" lists the absent keys in
// the order asked, once each, and a batch larger than the library's 1,000
// keys per round trip is answered whole.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata/internal/redistest"
)

type rawBatch struct {
	Values  map[string]json.RawMessage `json:"values"`
	Missing []string                   `json:"missing"`
}

func batchGetRaw(t *testing.T, u, cache string, keys ...string) (int, rawBatch, string) {
	t.Helper()
	b, _ := json.Marshal(map[string][]string{"keys": keys})
	st, body, h := send(t, "POST", u+"/v1/caches/"+cache+"/batch-get", string(b))
	var got rawBatch
	if st == 200 {
		if h.Get("Content-Type") != "application/json" {
			t.Errorf("batch-get Content-Type %q", h.Get("Content-Type"))
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("batch-get: not JSON: %q", body)
		}
		if got.Values == nil || got.Missing == nil {
			t.Errorf("batch-get: values or missing is null, want {} and []: %s", body)
		}
	}
	return st, got, body
}

func TestHuntBatchGetShapes(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	bin := "\x00\xff\xfe binary \n"
	for k, v := range map[string]string{"empty": "", "bin": bin, "text": "plain"} {
		if st, body, _ := send(t, "PUT", u+"/v1/caches/blobs/keys/"+k, v); st != 204 {
			t.Fatalf("PUT %s: %d %s", k, st, body)
		}
	}
	for k, v := range map[string]string{"null": "null", "num": "42", "str": `"s"`, "obj": `{"a":[1,{"b":null}]}`} {
		if st, body, _ := send(t, "PUT", u+"/v1/caches/docs/keys/"+k, v); st != 204 {
			t.Fatalf("PUT docs %s: %d %s", k, st, body)
		}
	}
	st, got, body := batchGetRaw(t, u, "blobs", "z-absent", "empty", "a-absent", "bin", "z-absent", "text", "m-absent")
	if st != 200 {
		t.Fatalf("batch-get blobs: %d %s", st, body)
	}
	for k, want := range map[string]string{"empty": "", "bin": bin, "text": "plain"} {
		var s string
		if string(got.Values[k]) == "null" || json.Unmarshal(got.Values[k], &s) != nil {
			t.Errorf("blobs %s: %s, want a base64 string", k, got.Values[k])
			continue
		}
		if dec, err := base64.StdEncoding.DecodeString(s); err != nil || string(dec) != want {
			t.Errorf("blobs %s: %q decodes to %q (%v), want %q", k, s, dec, err, want)
		}
	}
	if want := []string{"z-absent", "a-absent", "m-absent"}; !slices.Equal(got.Missing, want) {
		t.Errorf("missing %q, want %q (the order asked, once each)", got.Missing, want)
	}
	st, got, body = batchGetRaw(t, u, "docs", "null", "num", "str", "obj", "absent")
	if st != 200 {
		t.Fatalf("batch-get docs: %d %s", st, body)
	}
	for k, want := range map[string]string{"null": "null", "num": "42", "str": `"s"`, "obj": `{"a":[1,{"b":null}]}`} {
		if v, ok := got.Values[k]; !ok || string(v) != want {
			t.Errorf("docs %s: %q (present %v), want %s", k, v, ok, want)
		}
	}
	if !slices.Equal(got.Missing, []string{"absent"}) {
		t.Errorf("docs missing %q, want [absent]", got.Missing)
	}
	// Nothing found: values is {} and missing lists everything.
	st, got, body = batchGetRaw(t, u, "blobs", "x", "y")
	if st != 200 || len(got.Values) != 0 || !slices.Equal(got.Missing, []string{"x", "y"}) {
		t.Errorf("batch-get of absent keys: %d %s", st, body)
	}
}

func TestHuntBatchGetAboveOneRoundTrip(t *testing.T) {
	u, _, _ := peerServer(t, "max_body_bytes: 1048576\nmax_batch_keys: 2500\ncaches:\n  blobs: {}\n", nil)
	var keys []string
	for i := range 2500 {
		keys = append(keys, fmt.Sprintf("k%04d", i))
	}
	for i := 0; i < 2500; i += 7 {
		if st, body, _ := send(t, "PUT", u+"/v1/caches/blobs/keys/"+keys[i], keys[i]); st != 204 {
			t.Fatalf("PUT: %d %s", st, body)
		}
	}
	st, got, body := batchGetRaw(t, u, "blobs", keys...)
	if st != 200 {
		t.Fatalf("batch-get of 2500 keys: %d %.200s", st, body)
	}
	var missing []string
	for i, k := range keys {
		if i%7 != 0 {
			missing = append(missing, k)
			continue
		}
		if want := `"` + base64.StdEncoding.EncodeToString([]byte(k)) + `"`; string(got.Values[k]) != want {
			t.Errorf("%s: %s, want %s", k, got.Values[k], want)
		}
	}
	if len(got.Values) != (2500+6)/7 || !slices.Equal(got.Missing, missing) {
		t.Errorf("2500 keys: %d values, %d missing; want %d and %d in order", len(got.Values), len(got.Missing), (2500+6)/7, len(missing))
	}
	// One more than max_batch_keys: refused, whole.
	st, _, body = batchGetRaw(t, u, "blobs", append(keys, "one-more")...)
	if st != 400 || errCode(t, body) != "bad_body" {
		t.Errorf("batch-get of max_batch_keys+1: %d %s", st, body)
	}
}

// The empty value and binary bytes written on one server are read from
// Redis by another: the same base64 strings as from memory.
func TestHuntBatchGetBytesFromRedis(t *testing.T) {
	rs := redistest.Start(t)
	env := map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": rs.URL()}
	a, _, _ := peerServer(t, peerYAML, env)
	b, _, _ := peerServer(t, peerYAML, env)
	want := map[string]string{"empty": "", "bin": "\x00\xff\x01", "text": strings.Repeat("t", 300)}
	for k, v := range want {
		if st, body, _ := send(t, "PUT", a+"/v1/caches/blobs/keys/"+k, v); st != 204 {
			t.Fatalf("PUT %s: %d %s", k, st, body)
		}
	}
	if st, body, _ := send(t, "PUT", a+"/v1/caches/docs/keys/null", "null"); st != 204 {
		t.Fatalf("PUT null: %d %s", st, body)
	}
	var got, docs rawBatch
	waitFor(t, 10*time.Second, "the writes to reach Redis", func() bool {
		var st int
		st, got, _ = batchGetRaw(t, b, "blobs", "empty", "bin", "text")
		if st != 200 || len(got.Missing) != 0 {
			return false
		}
		st, docs, _ = batchGetRaw(t, b, "docs", "null")
		return st == 200 && len(docs.Missing) == 0
	})
	for k, v := range want {
		if w := `"` + base64.StdEncoding.EncodeToString([]byte(v)) + `"`; string(got.Values[k]) != w {
			t.Errorf("%s read from Redis: %s, want %s", k, got.Values[k], w)
		}
	}
	if string(docs.Values["null"]) != "null" {
		t.Errorf("docs null read from Redis: %q", docs.Values["null"])
	}
}
