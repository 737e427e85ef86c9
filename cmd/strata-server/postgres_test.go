package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata/internal/pgtest"
)

// TestPostgresEngine is dache's own configuration (DURABILITY_ENGINE=postgres
// and POSTGRES_*) on two servers over one PostgreSQL: a write on one is read
// on the other, a change reaches the other's memory through LISTEN/NOTIFY,
// /readyz names the tier, and after PostgreSQL was killed and restarted both
// are ready and coherent again. The password appears in no log.
func TestPostgresEngine(t *testing.T) {
	pg := pgtest.Start(t)
	const password = "hunter2-pg-secret" // trust authentication ignores it; the log must too
	env := map[string]string{"DURABILITY_ENGINE": "postgres", "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": strconv.Itoa(pg.Port()),
		"POSTGRES_USER": pgtest.User, "POSTGRES_PASSWORD": password, "POSTGRES_DATABASE": "postgres", "POSTGRES_SSLMODE": "disable"}
	ps := []*proc{startProc(t, env), startProc(t, env)}
	for _, p := range ps {
		waitFor(t, 10*time.Second, "readyz with PostgreSQL up", func() bool {
			st, body, _ := do(t, "GET", p.URL+"/readyz", "")
			return st == 200 && strings.Contains(body, `"name":"dache","ready":true,"l2":"ok"`) && strings.Contains(body, `"backplane":"postgres"`)
		})
	}
	post := func(p *proc, k, v string) {
		t.Helper()
		if st, body, _ := do(t, "POST", p.URL+"/dache/"+k, `{"value":`+v+`}`); st != 204 {
			t.Fatalf("POST %s: %d %s", k, st, body)
		}
	}
	get := func(p *proc, k string) (int, string) {
		st, body, _ := do(t, "GET", p.URL+"/dache/"+k, "")
		return st, body
	}
	post(ps[0], "k", `"v1"`)
	for _, p := range ps {
		waitFor(t, 5*time.Second, "v1 on both", func() bool { st, b := get(p, "k"); return st == 200 && b == `{"value":"v1"}`+"\n" })
	}
	post(ps[1], "k", `"v2"`) // server 0 holds v1 in memory: only a notification tells it
	waitFor(t, 5*time.Second, "v2 on server 0", func() bool { st, b := get(ps[0], "k"); return st == 200 && b == `{"value":"v2"}`+"\n" })
	if st, _, _ := do(t, "DELETE", ps[0].URL+"/dache/k", ""); st != 204 {
		t.Fatal(st)
	}
	waitFor(t, 5*time.Second, "the delete on server 1", func() bool { st, _ := get(ps[1], "k"); return st == 404 })

	pg.Kill()
	waitFor(t, 15*time.Second, "readyz to report PostgreSQL down", func() bool {
		st, body, _ := do(t, "GET", ps[0].URL+"/readyz", "")
		return st == 503 && strings.Contains(body, `"name":"dache","ready":false`)
	})
	pg.Restart(t)
	for _, p := range ps {
		waitFor(t, 40*time.Second, "readyz after PostgreSQL is back", func() bool {
			st, _, _ := do(t, "GET", p.URL+"/readyz", "")
			return st == 200
		})
	}
	waitFor(t, 10*time.Second, "a strict write after the restart", func() bool {
		st, _, _ := do(t, "POST", ps[1].URL+"/dache/after", `{"value":1}`)
		return st == 204
	})
	waitFor(t, 10*time.Second, "server 0 to read it", func() bool { st, b := get(ps[0], "after"); return st == 200 && b == `{"value":1}`+"\n" })
	for i, p := range ps {
		if strings.Contains(p.Log(), password) {
			t.Fatalf("server %d logged the PostgreSQL password:\n%s", i, p.Log())
		}
	}
}
