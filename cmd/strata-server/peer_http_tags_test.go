package main

// BUG (consistency): remove-by-tag with an empty tag ({"tags":[""]}) was
// 400 bad_request (the library's ErrInvalidOptions), and a tag longer
// than hybrid.MaxTagLength too, where a PUT with such a tag is bad_tags.
// Every endpoint that takes tags (PUT's Strata-Tags, remove-by-tag's
// "tags"; no batch endpoint takes any) answers an invalid tag with 400
// bad_tags and changes nothing.
// Needs peer_http_test.go (peerServer, send, wantError, wantValue).

import (
	"strings"
	"testing"
)

func TestHTTPInvalidTagsAreBadTags(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	k := u + "/v1/caches/blobs/keys/k"
	if st, body, _ := send(t, "PUT", k, "orig", tagsHeader, "team"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	long := strings.Repeat("t", 257)
	for _, tags := range []string{"", " ", ",", "a,,b", "a, ,b", "a,", long, "a," + long} {
		st, body, h := send(t, "PUT", k, "new", tagsHeader, tags)
		wantError(t, "PUT "+tagsHeader+": "+tags, st, body, h, 400, "bad_tags")
	}
	wantValue(t, "after refused PUTs", k, "orig")
	for _, mode := range []string{"expire", "delete"} {
		for _, tags := range []string{`[""]`, `["team",""]`, `["` + long + `"]`, `["team","` + long + `"]`} {
			b := `{"tags":` + tags + `,"mode":"` + mode + `"}`
			st, body, h := send(t, "POST", u+"/v1/caches/blobs/remove-by-tag", b)
			wantError(t, "remove-by-tag "+b, st, body, h, 400, "bad_tags")
		}
	}
	wantValue(t, "after refused remove-by-tags", k, "orig")
	// Valid tags still work.
	if st, body, _ := send(t, "POST", u+"/v1/caches/blobs/remove-by-tag", `{"tags":["team"],"mode":"delete"}`); st != 204 {
		t.Fatalf("remove-by-tag: %d %s", st, body)
	}
	if st, _, _ := send(t, "GET", k, ""); st != 404 {
		t.Errorf("GET after remove-by-tag: %d, want 404", st)
	}
}
