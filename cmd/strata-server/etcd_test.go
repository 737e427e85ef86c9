package main

import (
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata/internal/etcdtest"
)

// TestEtcdEngine runs two servers over one etcd member
// (DURABILITY_ENGINE=etcd): a change on one is seen on the other through
// etcd's change feed, /readyz names the etcd tier, and after etcd was
// killed and restarted both are ready again and still coherent.
func TestEtcdEngine(t *testing.T) {
	m := etcdtest.Start(t)
	cfg := writeConfig(t, "caches:\n  shared: {}\n")
	env := map[string]string{"DURABILITY_ENGINE": "etcd", "ETCD_ENDPOINTS": m.Endpoint(), "STRATA_CONFIG": cfg}
	ps := []*proc{startProc(t, env), startProc(t, env)}
	key := func(p *proc, k string) string { return p.URL + "/v1/caches/shared/keys/" + k }
	get := func(p *proc, k string) (int, string) {
		st, body, _ := do(t, "GET", key(p, k), "")
		return st, body
	}
	for _, p := range ps {
		waitFor(t, 10*time.Second, "readyz with etcd up", func() bool {
			st, body, _ := do(t, "GET", p.URL+"/readyz", "")
			return st == 200 && strings.Contains(body, `"name":"shared","ready":true,"l2":"ok"`) && strings.Contains(body, `"backplane":"etcd"`)
		})
	}
	// Both read k first, so that their memory holds it and only the feed
	// can tell them of the change.
	if st, _, _ := do(t, "PUT", key(ps[0], "k"), "v1"); st != 204 {
		t.Fatal(st)
	}
	for _, p := range ps {
		waitFor(t, 5*time.Second, "v1 on both", func() bool { st, b := get(p, "k"); return st == 200 && b == "v1" })
	}
	if st, _, _ := do(t, "PUT", key(ps[1], "k"), "v2"); st != 204 {
		t.Fatal(st)
	}
	waitFor(t, 5*time.Second, "v2 on server 0", func() bool { st, b := get(ps[0], "k"); return st == 200 && b == "v2" })
	if st, _, _ := do(t, "DELETE", key(ps[0], "k"), ""); st != 204 {
		t.Fatal(st)
	}
	waitFor(t, 5*time.Second, "the delete on server 1", func() bool { st, _ := get(ps[1], "k"); return st == 404 })

	m.Kill()
	waitFor(t, 15*time.Second, "readyz to report etcd down", func() bool {
		st, body, _ := do(t, "GET", ps[0].URL+"/readyz", "")
		return st == 503 && strings.Contains(body, `"name":"shared","ready":false`)
	})
	m.Restart(t)
	for _, p := range ps {
		waitFor(t, 20*time.Second, "readyz after etcd is back", func() bool {
			st, _, _ := do(t, "GET", p.URL+"/readyz", "")
			return st == 200
		})
	}
	if st, _, _ := do(t, "PUT", key(ps[1], "after"), "a"); st != 204 {
		t.Fatal(st)
	}
	// (The write reaches etcd in the background: the cache's writes are
	// not strict.)
	waitFor(t, 10*time.Second, "server 0 to read server 1's write after the restart", func() bool {
		st, b := get(ps[0], "after")
		return st == 200 && b == "a"
	})
	if st, _, _ := do(t, "PUT", key(ps[1], "after"), "b"); st != 204 {
		t.Fatal(st)
	}
	waitFor(t, 10*time.Second, "server 0 to hear server 1's change after the restart", func() bool {
		st, b := get(ps[0], "after")
		return st == 200 && b == "b"
	})
}

// TestEtcdUnreachable: a server whose etcd does not answer starts, serves
// from memory, and says why in /readyz; the etcd password appears neither
// there nor in its log.
func TestEtcdUnreachable(t *testing.T) {
	const password = "hunter2-etcd-secret"
	p := startProc(t, map[string]string{"DURABILITY_ENGINE": "etcd", "ETCD_ENDPOINTS": "http://127.0.0.1:" + freePort(t),
		"ETCD_USERNAME": "cache", "ETCD_PASSWORD": password, "STRATA_CONFIG": writeConfig(t, "caches:\n  shared: {}\n")})
	st, body, _ := do(t, "GET", p.URL+"/readyz", "")
	if st != 503 || !strings.Contains(body, `"name":"shared","ready":false`) {
		t.Fatalf("readyz with etcd unreachable: %d %s", st, body)
	}
	if st, _, _ := do(t, "GET", p.URL+"/healthz", ""); st != 200 {
		t.Fatalf("healthz: %d", st)
	}
	if strings.Contains(body, password) || strings.Contains(p.Log(), password) {
		t.Fatalf("the etcd password appears in /readyz or the log:\n%s\n%s", body, p.Log())
	}
}
