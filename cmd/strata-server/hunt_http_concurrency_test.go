package main

// Many clients on one key. In origin mode every read of a cold key (GET,
// HEAD and batch-get alike) waits for one origin call (docs/server.md,
// "Origin mode": "one origin call per key however many requests wait").
// Writers and readers racing on one key: every answer is one whole value
// with its own ETag and Content-Length, never a mix.

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHuntOriginOneLoadForGetHeadAndBatch(t *testing.T) {
	var calls atomic.Int64
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.WriteString(w, "loaded once")
	}))
	defer origin.Close()
	u, _, _ := peerServer(t, `
caches:
  web:
    factory_soft_timeout: 0s
    origin:
      url: `+origin.URL+`
      timeout: 10s
`, nil)
	const n = 30
	var sent sync.WaitGroup // every request written to the server
	sent.Add(n)
	var done sync.WaitGroup
	type answer struct {
		what, body string
		status     int
	}
	answers := make(chan answer, n)
	for i := range n {
		method, path, body := "GET", "/v1/caches/web/keys/cold", ""
		switch i % 3 {
		case 1:
			method = "HEAD"
		case 2:
			method, path, body = "POST", "/v1/caches/web/batch-get", `{"keys":["cold","cold"]}`
		}
		done.Go(func() {
			var once sync.Once
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(sent.Done) }}
			r, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), method, u+path, strings.NewReader(body))
			if err != nil {
				once.Do(sent.Done)
				t.Error(err)
				return
			}
			resp, err := peerClient.Do(r)
			once.Do(sent.Done)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- answer{method + " " + path, string(b), resp.StatusCode}
		})
	}
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the origin was never called")
	}
	sent.Wait() // all thirty are in flight while the one origin call waits
	close(release)
	done.Wait()
	close(answers)
	for a := range answers {
		want := "loaded once"
		switch {
		case strings.HasPrefix(a.what, "HEAD"):
			want = ""
		case strings.HasPrefix(a.what, "POST"):
			want = `{"values":{"cold":"bG9hZGVkIG9uY2U="},"missing":[]}` + "\n"
		}
		if a.status != 200 || a.body != want {
			t.Errorf("%s: %d %q, want 200 %q", a.what, a.status, a.body, want)
		}
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("origin called %d times for %d concurrent reads of one key, want 1", c, n)
	}
}

func TestHuntConcurrentWritersAndReadersSeeWholeValues(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	values := map[string]bool{}
	var bodies []string
	for i := range 8 {
		v := strings.Repeat(strconv.Itoa(i), 100+i*37) // distinct lengths
		values[v] = true
		bodies = append(bodies, v)
	}
	k := u + "/v1/caches/blobs/keys/hot"
	d := u + "/dache/hot"
	if st, _, _ := send(t, "PUT", k, bodies[0]); st != 204 {
		t.Fatal(st)
	}
	if st, _, _ := send(t, "POST", d, `{"value":"`+bodies[0]+`"}`); st != 204 {
		t.Fatal(st)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 15 {
				v := bodies[(w+i)%len(bodies)]
				if st, body, h := send(t, "PUT", k, v); st != 204 || h.Get("Etag") != etag([]byte(v)) {
					t.Errorf("PUT: %d %s ETag %q", st, body, h.Get("Etag"))
				}
				if st, body, _ := send(t, "POST", d, `{"value":"`+v+`"}`); st != 204 {
					t.Errorf("dache POST: %d %s", st, body)
				}
			}
		})
	}
	for range 8 {
		wg.Go(func() {
			for range 15 {
				st, body, h := send(t, "GET", k, "")
				if st != 200 || !values[body] {
					t.Errorf("GET: %d, a body of %d bytes that no client wrote", st, len(body))
					continue
				}
				if h.Get("Etag") != etag([]byte(body)) || h.Get("Content-Length") != strconv.Itoa(len(body)) {
					t.Errorf("GET: ETag %q Content-Length %q for a body of %d bytes (its ETag %q)",
						h.Get("Etag"), h.Get("Content-Length"), len(body), etag([]byte(body)))
				}
				st, body, _ = send(t, "GET", d, "")
				var ok bool
				for v := range values {
					if body == dacheValue(fmt.Sprintf("%q", v)) {
						ok = true
					}
				}
				if st != 200 || !ok {
					t.Errorf("dache GET: %d %.60q...: not a value any client wrote", st, body)
				}
			}
		})
	}
	wg.Wait()
}
