package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchValue is the value of the GET benchmarks, 256 bytes.
var benchValue = bytes.Repeat([]byte("0123456789abcdef"), 16)

// BenchmarkHTTP measures GET hits and PUTs through the server's handler
// on a loopback listener, side by side with the floor: a bare net/http
// handler answering the same bytes. Each iteration is one request; the
// load comes from 1×GOMAXPROCS and 4×GOMAXPROCS client goroutines (in the
// same process) over keep-alive connections. It reports requests/s and the p50 and p99 latencies. Run:
//
//	cd cmd/strata-server && go test -run '^$' -bench BenchmarkHTTP -benchtime 20000x -count 3
func BenchmarkHTTP(b *testing.B) {
	floor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/octet-stream"}
		h["Content-Length"] = []string{strconv.Itoa(len(benchValue))}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(benchValue)
	}))
	defer floor.Close()
	ts, _ := testServer(b, "log_requests: false\ncaches:\n  bench: {}\n", nil)
	for i := range 100 {
		req, _ := http.NewRequest("PUT", ts.URL+"/v1/caches/bench/keys/k"+strconv.Itoa(i), bytes.NewReader(benchValue))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 204 {
			b.Fatalf("seed: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	for _, par := range []int{1, 4} {
		conc := "conc" + strconv.Itoa(par*runtime.GOMAXPROCS(0))
		b.Run("floor/"+conc, func(b *testing.B) { runLoad(b, par, "GET", func(i int) string { return floor.URL + "/k" }, nil) })
		b.Run("get_hit/"+conc, func(b *testing.B) {
			runLoad(b, par, "GET", func(i int) string { return ts.URL + "/v1/caches/bench/keys/k" + strconv.Itoa(i%100) }, nil)
		})
		b.Run("put/"+conc, func(b *testing.B) {
			runLoad(b, par, "PUT", func(i int) string { return ts.URL + "/v1/caches/bench/keys/p" + strconv.Itoa(i%1000) }, benchValue)
		})
	}
	http.DefaultClient.CloseIdleConnections()
}

func runLoad(b *testing.B, par int, method string, url func(int) string, body []byte) {
	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism(par)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 4096)
		i := 0
		for pb.Next() {
			var rd io.Reader
			if body != nil {
				rd = bytes.NewReader(body)
			}
			req, _ := http.NewRequest(method, url(i), rd)
			i++
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(t0))
			if resp.StatusCode >= 300 {
				b.Errorf("%s: %d", method, resp.StatusCode)
				return
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}
