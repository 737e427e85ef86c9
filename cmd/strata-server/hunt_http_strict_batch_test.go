package main

// docs/server.md, GET: "In a strict cache, a miss while the distributed
// tier is unavailable is 503 tier_unavailable rather than a false 404";
// dache mode: "While Redis is down ... a key not in this server's memory
// is a 503 (we cannot tell it is absent), not a 404". batch-get of the
// same keys in the same cache used to answer 200 and list them in
// "missing": a client told that keys which are in Redis are absent.

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/strata-cache/strata/internal/redistest"
)

func TestHuntStrictBatchGetTierDownIsNotMissing(t *testing.T) {
	rs := redistest.Start(t)
	env := map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": rs.URL()}
	yaml := peerYAML + "  strict:\n    strict_writes: true\n"
	a, _, _ := peerServer(t, yaml, env)
	b, _, _ := peerServer(t, yaml, env) // never holds the keys in memory
	for _, p := range []string{"/v1/caches/strict/keys/k", "/v1/caches/dache/keys/k"} {
		if st, body, _ := send(t, "PUT", a+p, `"v"`); st != 204 {
			t.Fatalf("PUT %s: %d %s", p, st, body)
		}
	}
	rs.Kill(t)
	for _, cache := range []string{"strict", "dache"} {
		// GET of the key on b: 503, as documented (awaited: the first
		// read meets the failure, later ones the open breaker).
		waitFor(t, 10*time.Second, "GET on b to say tier_unavailable", func() bool {
			st, _, _ := send(t, "GET", b+"/v1/caches/"+cache+"/keys/k", "")
			return st == 503
		})
		st, body, h := send(t, "POST", b+"/v1/caches/"+cache+"/batch-get", `{"keys":["k"]}`)
		if st == 200 {
			var got batchGetResponse
			_ = json.Unmarshal([]byte(body), &got)
			t.Errorf("%s: batch-get with Redis down: 200 %s: the key, which Redis holds, is reported missing; want 503 tier_unavailable as GET answers", cache, body)
			continue
		}
		wantError(t, cache+": batch-get with Redis down", st, body, h, 503, "tier_unavailable")
	}
}
