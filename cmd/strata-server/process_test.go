package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata/internal/redistest"
)

// requireCurl skips the test without curl, or fails it when CI is set.
func requireCurl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("curl not found on PATH (CI is set, so this is a failure): apt-get install curl")
	}
	t.Skip("curl not found on PATH, skipping: apt-get install curl")
	return ""
}

// curl runs curl with args and returns its output (the body, then the
// status code written by -w).
func curl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args = append([]string{"-sS", "-w", " %{http_code}"}, args...)
	out, err := exec.CommandContext(ctx, requireCurl(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// TestDacheInterfaceCurl drives dache's interface with curl, configured
// the dache way (PORT, DURABILITY_ENGINE, LOGGING_REDACT_KEYS).
func TestDacheInterfaceCurl(t *testing.T) {
	requireCurl(t)
	port := freePort(t)
	p := startProc(t, map[string]string{
		"PORT": port, "STRATA_HOST": "127.0.0.1", "DURABILITY_ENGINE": "memory",
		"LOGGING_REDACT_KEYS": "true", "LOG_REQUESTS": "true",
	})
	if p.URL != "http://127.0.0.1:"+port {
		t.Fatalf("listening on %s, want port %s", p.URL, port)
	}
	u := p.URL + "/dache/user:secret-42"
	expiry := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	steps := []struct {
		args []string
		want string
	}{
		{[]string{u}, `{"error":{"code":"not_found","message":"no such key"}}` + "\n 404"},
		{[]string{"-X", "POST", "-H", "Content-Type: application/json", "-d", `{"value": {"name": "Ada", "n": [1, 2.5, null]}, "expiry": ` + expiry + `}`, u}, " 204"},
		{[]string{u}, `{"value":{"name": "Ada", "n": [1, 2.5, null]}}` + "\n 200"},
		{[]string{"-X", "POST", "-d", `{"value": "no expiry"}`, u}, " 204"},
		{[]string{u}, `{"value":"no expiry"}` + "\n 200"},
		{[]string{"-X", "DELETE", u}, " 204"},
		{[]string{u}, `{"error":{"code":"not_found","message":"no such key"}}` + "\n 404"},
		{[]string{p.URL + "/health"}, `{"status":"ok"}` + "\n 200"},
	}
	for i, s := range steps {
		if got := curl(t, s.args...); got != s.want {
			t.Fatalf("step %d curl %v:\n got %q\nwant %q", i, s.args, got, s.want)
		}
	}
	// An expiry a second away: the entry goes.
	soon := strconv.FormatInt(time.Now().Add(1500*time.Millisecond).Unix(), 10)
	if got := curl(t, "-X", "POST", "-d", `{"value": 1, "expiry": `+soon+`}`, u); got != " 204" {
		t.Fatal(got)
	}
	waitFor(t, 5*time.Second, "the entry to reach its expiry", func() bool {
		return strings.HasSuffix(curl(t, u), " 404")
	})
	// LOGGING_REDACT_KEYS: request logs carry the route, not the key.
	if log := p.Log(); strings.Contains(log, "secret-42") || !strings.Contains(log, `"path":"GET /dache/{key...}"`) {
		t.Fatalf("request log with redaction on:\n%s", log)
	}
	if err := p.Term(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

func TestEngineErrors(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"DURABILITY_ENGINE=postgres", "POSTGRES_USER=cache", "POSTGRES_PASSWORD=hunter2"}, "needs POSTGRES_HOST"},
		{[]string{"DURABILITY_ENGINE=etcd"}, "needs ETCD_ENDPOINTS"},
		{[]string{"DURABILITY_ENGINE=etcd", "ETCD_ENDPOINTS=127.0.0.1:1", "ETCD_USERNAME=cache", "ETCD_PASSWORD=hunter2"}, "http:// or https:// URL"},
		{[]string{"DURABILITY_ENGINE=redis"}, "needs REDIS_URL"},
		{[]string{"DURABILITY_ENGINE=redis", "REDIS_URL=redis://user:hunter2@127.0.0.1:1/?dial_timeout=bad"}, "Redis.URL"},
	} {
		cmd := exec.Command(binary(t))
		cmd.Env = append([]string{"STRATA_LISTEN=127.0.0.1:0"}, c.env...)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Fatalf("%v: exit %v, want 2; output %s", c.env, err, out)
		}
		if !strings.Contains(string(out), c.want) || strings.Contains(string(out), "hunter2") {
			t.Fatalf("%v: output %q, want %q and no password", c.env, out, c.want)
		}
	}
}

// writeConfig writes a YAML configuration file for a server process.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestScaleOut runs three servers over one redis-server: a change on one
// is seen on the others, and killing one mid-load leaves the others
// serving without an error.
func TestScaleOut(t *testing.T) {
	rs := redistest.Start(t)
	cfg := writeConfig(t, "caches:\n  shared: {}\n")
	env := map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": rs.URL(), "STRATA_CONFIG": cfg}
	ps := []*proc{startProc(t, env), startProc(t, env), startProc(t, env)}
	key := func(p *proc, k string) string { return p.URL + "/v1/caches/shared/keys/" + k }
	get := func(p *proc, k string) (int, string) {
		st, body, _ := do(t, "GET", key(p, k), "")
		return st, body
	}
	// Read k on every node first, so that the memory tiers hold it and
	// only the backplane can tell them of the change.
	if st, _, _ := do(t, "PUT", key(ps[0], "k"), "v1"); st != 204 {
		t.Fatal(st)
	}
	for _, p := range ps {
		waitFor(t, 5*time.Second, "v1 on every node", func() bool { st, b := get(p, "k"); return st == 200 && b == "v1" })
	}
	if st, _, _ := do(t, "PUT", key(ps[1], "k"), "v2"); st != 204 {
		t.Fatal(st)
	}
	for _, p := range ps {
		waitFor(t, 5*time.Second, "v2 on every node", func() bool { st, b := get(p, "k"); return st == 200 && b == "v2" })
	}
	if st, _, _ := do(t, "DELETE", key(ps[2], "k"), ""); st != 204 {
		t.Fatal(st)
	}
	for _, p := range ps {
		waitFor(t, 5*time.Second, "the delete on every node", func() bool { st, _ := get(p, "k"); return st == 404 })
	}
	// The dache interface is coherent too.
	if st, _, _ := do(t, "POST", ps[0].URL+"/dache/d", `{"value":[1]}`); st != 204 {
		t.Fatal(st)
	}
	waitFor(t, 5*time.Second, "the dache value on node 2", func() bool {
		st, b, _ := do(t, "GET", ps[2].URL+"/dache/d", "")
		return st == 200 && b == `{"value":[1]}`+"\n"
	})

	// Load on nodes 0 and 1 while node 2 is killed.
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			p := ps[w%2]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("load-%d", i%50)
				var req *http.Request
				if i%4 == 0 {
					req, _ = http.NewRequest("PUT", key(p, k), strings.NewReader("x"))
				} else {
					req, _ = http.NewRequest("GET", key(p, k), nil)
				}
				resp, err := client.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode >= 500 {
						err = fmt.Errorf("%s %s: %d", req.Method, req.URL, resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	waitFor(t, 10*time.Second, "load on nodes 0 and 1", func() bool { return ok.Load() > 200 })
	ps[2].Kill()
	before := ok.Load()
	waitFor(t, 10*time.Second, "more load after the kill", func() bool { return ok.Load() > before+500 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests to the surviving nodes failed; first: %v", n, firstErr.Load())
	}
	// The survivors still see each other's changes.
	if st, _, _ := do(t, "PUT", key(ps[0], "after"), "a"); st != 204 {
		t.Fatal(st)
	}
	waitFor(t, 5*time.Second, "node 1 to see node 0's write after the kill", func() bool { st, b := get(ps[1], "after"); return st == 200 && b == "a" })
	t.Logf("%d requests served by the surviving nodes", ok.Load())
}

// TestRedisOutage: Redis goes down and comes back under a server whose
// dache cache has strict writes.
func TestRedisOutage(t *testing.T) {
	rs := redistest.Start(t)
	p := startProc(t, map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": rs.URL()})
	post := func(k, v string) (int, string) {
		st, body, _ := do(t, "POST", p.URL+"/dache/"+k, `{"value":`+v+`}`)
		return st, body
	}
	if st, body := post("k", `"kept"`); st != 204 {
		t.Fatalf("POST: %d %s", st, body)
	}
	if st, body, _ := do(t, "GET", p.URL+"/readyz", ""); st != 200 {
		t.Fatalf("readyz with Redis up: %d %s", st, body)
	}
	rs.Kill(t)

	// Reads from memory keep working.
	if st, body, _ := do(t, "GET", p.URL+"/dache/k", ""); st != 200 || body != `{"value":"kept"}`+"\n" {
		t.Fatalf("GET from memory with Redis down: %d %s", st, body)
	}
	// Strict writes fail cleanly, every time.
	for i := range 3 {
		st, body := post(fmt.Sprintf("w%d", i), "1")
		if st != 503 || errCode(t, body) != "tier_unavailable" {
			t.Fatalf("write %d with Redis down: %d %s", i, st, body)
		}
	}
	st, body, _ := do(t, "DELETE", p.URL+"/dache/k", "")
	if st != 503 || errCode(t, body) != "tier_unavailable" {
		t.Fatalf("delete with Redis down: %d %s", st, body)
	}
	// A key not in memory cannot be answered: 503, not a false 404.
	st, body, _ = do(t, "GET", p.URL+"/dache/never", "")
	if st != 503 || errCode(t, body) != "tier_unavailable" {
		t.Fatalf("GET of a key not in memory with Redis down: %d %s", st, body)
	}
	st, body, _ = do(t, "GET", p.URL+"/readyz", "")
	if st != 503 || !strings.Contains(body, `"name":"dache","ready":false`) || !strings.Contains(body, "unavailable") {
		t.Fatalf("readyz with Redis down: %d %s", st, body)
	}
	if st, _, _ := do(t, "GET", p.URL+"/healthz", ""); st != 200 {
		t.Fatalf("healthz with Redis down: %d", st)
	}

	rs.Restart(t)
	waitFor(t, 15*time.Second, "readyz after Redis is back", func() bool {
		st, _, _ := do(t, "GET", p.URL+"/readyz", "")
		return st == 200
	})
	if st, body := post("k3", `"back"`); st != 204 {
		t.Fatalf("write after Redis is back: %d %s", st, body)
	}
	// The write reached Redis: a new server with an empty memory reads it.
	p2 := startProc(t, map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": rs.URL()})
	if st, body, _ := do(t, "GET", p2.URL+"/dache/k3", ""); st != 200 || body != `{"value":"back"}`+"\n" {
		t.Fatalf("GET on a fresh server: %d %s", st, body)
	}
	_, metrics, _ := do(t, "GET", p.URL+"/metrics", "")
	if !strings.Contains(metrics, `strata_cache_l2_errors_total{cache="dache"`) {
		t.Errorf("metrics lack the L2 errors of the outage")
	}
}

// TestGracefulShutdown: SIGTERM lets an in-flight request finish, then
// the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	up := &upstream{status: 200, body: "slow", delay: 700 * time.Millisecond, seen: make(chan string, 1)}
	us := newLoopbackServer(t, up)
	cfg := writeConfig(t, "caches:\n  web:\n    origin:\n      url: "+us+"\n")
	p := startProc(t, map[string]string{"STRATA_CONFIG": cfg})
	type res struct {
		st   int
		body string
	}
	got := make(chan res, 1)
	go func() {
		resp, err := http.Get(p.URL + "/v1/caches/web/keys/x")
		if err != nil {
			got <- res{-1, err.Error()}
			return
		}
		defer resp.Body.Close()
		b := make([]byte, 100)
		n, _ := resp.Body.Read(b)
		got <- res{resp.StatusCode, string(b[:n])}
	}()
	<-up.seen // the request is in flight, at the origin
	if err := p.Term(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Log())
	}
	r := <-got
	if r.st != 200 || r.body != "slow" {
		t.Fatalf("in-flight request: %d %q", r.st, r.body)
	}
	if !strings.Contains(p.Log(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", p.Log())
	}
}

// newLoopbackServer serves h on a loopback port until the test ends.
func newLoopbackServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
