package main

// RFC 9110 14.5: "An origin server that allows PUT on a given target
// resource MUST send a 400 (Bad Request) response to a PUT request that
// contains a Content-Range header field, since the content is likely to be
// partial content that has been mistakenly PUT as a full representation."
// The server used to answer 204 and store the part as the whole value.

import "testing"

func TestHuntPutContentRangeRefused(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	k := u + "/v1/caches/blobs/keys/cr"
	if st, body, _ := send(t, "PUT", k, "whole value"); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	st, body, h := send(t, "PUT", k, "part", "Content-Range", "bytes 0-3/11")
	if st != 400 {
		t.Errorf("PUT with Content-Range: %d %q (ETag %q), want 400 (RFC 9110 14.5)", st, body, h.Get("Etag"))
	} else {
		wantError(t, "PUT with Content-Range", st, body, h, 400, errCode(t, body))
	}
	// A refused request changes nothing (docs/server.md, PUT).
	wantValue(t, "value after a partial PUT", k, "whole value")
	// The same through a JSON cache: a part of a JSON document may itself
	// be valid JSON ("1" of "12").
	d := u + "/v1/caches/docs/keys/cr"
	if st, body, _ := send(t, "PUT", d, `12`); st != 204 {
		t.Fatalf("PUT json: %d %s", st, body)
	}
	if st, body, _ := send(t, "PUT", d, `1`, "Content-Range", "bytes 0-0/2"); st != 400 {
		t.Errorf("PUT json with Content-Range: %d %q, want 400", st, body)
	}
	wantValue(t, "json value after a partial PUT", d, `12`)
}
