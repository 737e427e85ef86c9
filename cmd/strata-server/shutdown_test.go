package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShutdownBounded: a request that does not end (a body that stops
// arriving) delays a graceful shutdown by shutdown_timeout at most, and a
// second SIGTERM ends the wait at once (it was swallowed: the drain ran
// to shutdown_timeout whatever the operator sent); with a shutdown_delay,
// the second signal ends the delay and the third the wait. Either way the
// connection is closed, the caches are closed and the exit code is 1.
func TestShutdownBounded(t *testing.T) {
	for _, c := range []struct {
		name    string
		timeout string
		delay   string
		// awaited are the log messages awaited before each signal after
		// the first.
		awaited []string
		cutBy   string // the err of the "in-flight requests cut" line
	}{
		{"shutdown_timeout reached", "1s", "", nil, "context deadline exceeded"},
		{"second signal", "5m", "", []string{"shutting down"}, "second signal"},
		{"third signal after a shutdown delay", "5m", "5m", []string{"draining", "shutting down"}, "third signal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			yaml := "read_timeout: 5m\nwrite_timeout: 5m\nshutdown_timeout: " + c.timeout + "\n"
			if c.delay != "" {
				yaml += "shutdown_delay: " + c.delay + "\n"
			}
			p := startProc(t, map[string]string{"STRATA_CONFIG": writeConfig(t, yaml)})
			conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, "POST /dache/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(conn)
			line, err := br.ReadString('\n')
			if err != nil || !strings.Contains(line, "100 Continue") {
				t.Fatalf("no 100 Continue: %q %v", line, err)
			}
			if line, err := br.ReadString('\n'); err != nil || line != "\r\n" {
				t.Fatalf("after 100 Continue: %q %v", line, err)
			}
			// The handler reads the body: the request is in flight, and
			// the rest of its body never comes.
			if _, err := io.WriteString(conn, `{"value":`); err != nil {
				t.Fatal(err)
			}
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			for _, msg := range c.awaited {
				waitFor(t, 10*time.Second, "the log line "+msg, func() bool {
					return strings.Contains(p.Log(), `"msg":"`+msg+`"`)
				})
				if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				t.Fatalf("still running 20s after SIGTERM x%d with shutdown_timeout %s, shutdown_delay %s", 1+len(c.awaited), c.timeout, c.delay)
			}
			ee, ok := p.err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want exit status 1 (requests cut)", p.err)
			}
			if log := p.Log(); !strings.Contains(log, `"msg":"shutdown: in-flight requests cut","err":"`+c.cutBy+`"`) ||
				!strings.Contains(log, `"msg":"stopped"`) {
				t.Fatalf("log:\n%s", log)
			}
			// The cut request's connection is closed, with no answer.
			if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
				t.Fatalf("the cut request's connection: %q %v; want it closed without an answer", b, err)
			}
		})
	}
}

// fresh sends one request on a connection of its own (a new connection
// is what a load balancer opens to an instance it still routes to, and
// what a closed listener refuses) and returns the status and body.
func fresh(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s on a new connection: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestShutdownDelayServes: with STRATA_SHUTDOWN_DELAY, SIGTERM turns
// /readyz to 503 for new connections while the listener stays open and
// every other endpoint keeps serving (the listener used to close at once,
// so that no probe saw the 503 and the connections a load balancer sent
// meanwhile were refused). A second SIGTERM ends a one-minute delay at
// once and the graceful shutdown exits 0.
func TestShutdownDelayServes(t *testing.T) {
	p := startProc(t, map[string]string{
		"STRATA_SHUTDOWN_DELAY": "1m",
		"STRATA_CONFIG":         writeConfig(t, "caches:\n  docs: {}\n"),
	})
	key := p.URL + "/v1/caches/docs/keys/"
	// An answer also means the server loop listens for signals.
	if st, body := fresh(t, "GET", p.URL+"/readyz", ""); st != 200 {
		t.Fatalf("readyz before SIGTERM: %d %s", st, body)
	}
	if st, body := fresh(t, "PUT", key+"before", "v0"); st != 204 {
		t.Fatalf("PUT before SIGTERM: %d %s", st, body)
	}
	// A client on a kept-alive connection, opened before the signal.
	kept := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer kept.CloseIdleConnections()
	keptGet := func() *http.Response {
		t.Helper()
		resp, err := kept.Get(p.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := keptGet(); resp.Close {
		t.Fatalf("Connection: close before SIGTERM")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// fresh fails the test if the listener is closed.
	var body string
	waitFor(t, 10*time.Second, "readyz to answer 503 after SIGTERM", func() bool {
		var st int
		st, body = fresh(t, "GET", p.URL+"/readyz", "")
		return st == 503
	})
	if !strings.Contains(body, `"reason":"shutting down"`) {
		t.Errorf("readyz during the delay: %s; want the reason shutting down", body)
	}
	// The line may follow the 503 (the flag is set first).
	waitFor(t, 10*time.Second, "the draining line", func() bool {
		return strings.Contains(p.Log(), `"msg":"draining","delay":60000000000`)
	})
	for _, r := range []struct {
		method, url, body string
		st                int
		want              string
	}{
		{"PUT", key + "during", "v1", 204, ""},
		{"GET", key + "during", "", 200, "v1"},
		{"GET", key + "before", "", 200, "v0"},
		{"POST", p.URL + "/dache/d", `{"value":1}`, 204, ""},
		{"GET", p.URL + "/dache/d", "", 200, `{"value":1}` + "\n"},
		{"GET", p.URL + "/healthz", "", 200, `{"status":"ok"}` + "\n"},
		{"GET", p.URL + "/readyz", "", 503, ""},
	} {
		st, body := fresh(t, r.method, r.url, r.body)
		if st != r.st || (r.want != "" && body != r.want) {
			t.Errorf("%s %s during the delay: %d %q; want %d %q", r.method, r.url, st, body, r.st, r.want)
		}
	}
	// The kept-alive connection is told to close after its answer, so
	// that the client's next request opens a new connection (which a load
	// balancer sends elsewhere).
	if resp := keptGet(); resp.StatusCode != 200 || !resp.Close {
		t.Errorf("a kept-alive connection during the delay: status %d, Connection: close %v; want 200 and close", resp.StatusCode, resp.Close)
	}
	select {
	case <-p.done:
		t.Fatalf("exited during the delay: %v", p.err)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20s after a second SIGTERM during a one-minute shutdown_delay")
	}
	if p.err != nil {
		t.Fatalf("exit %v after the second SIGTERM, want 0", p.err)
	}
	log := p.Log()
	if !inOrder(log, `"msg":"draining"`, `"msg":"shutdown delay ended by a second signal"`, `"msg":"shutting down"`, `"msg":"stopped"`) {
		t.Fatalf("log:\n%s", log)
	}
}

// TestShutdownDelayElapses: after shutdown_delay (the file's setting) the
// graceful shutdown runs by itself and the process exits 0, no sooner.
func TestShutdownDelayElapses(t *testing.T) {
	const delay = time.Second
	p := startProc(t, map[string]string{"STRATA_CONFIG": writeConfig(t, "shutdown_delay: 1s\n")})
	// An answer means the server loop runs, so that SIGTERM is handled
	// (the "listening" line comes before the server listens for signals).
	if st, body := fresh(t, "GET", p.URL+"/readyz", ""); st != 200 {
		t.Fatalf("readyz before SIGTERM: %d %s", st, body)
	}
	start := time.Now()
	if err := p.Term(t); err != nil {
		t.Fatalf("exit %v after SIGTERM, want 0\n%s", err, p.Log())
	}
	if took := time.Since(start); took < delay {
		t.Errorf("exited %v after SIGTERM, before shutdown_delay %v", took, delay)
	}
	if log := p.Log(); !inOrder(log, `"msg":"draining"`, `"msg":"shutting down"`, `"msg":"stopped"`) ||
		strings.Contains(log, "second signal") {
		t.Fatalf("log:\n%s", log)
	}
}

// TestShutdownDelayInProcess runs the server loop (run) with a shutdown
// delay ended by its ctx: it returns 0 after the delay, and leaves no
// goroutine behind (goleak, in TestMain).
func TestShutdownDelayInProcess(t *testing.T) {
	env := map[string]string{"STRATA_LISTEN": "127.0.0.1:0", "LOG_REQUESTS": "false", "STRATA_SHUTDOWN_DELAY": "200ms"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, nil, func(k string) string { return env[k] }, pw)
		pw.Close()
	}()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	await := func(msg string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("run ended before a %q line", msg)
				}
				if strings.Contains(l, `"msg":"`+msg+`"`) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q line after 10s", msg)
			}
		}
	}
	await("listening")
	start := time.Now()
	cancel()
	await("draining")
	await("shutting down")
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("shutting down %v after the cancel, before shutdown_delay 200ms", took)
	}
	if code := <-exit; code != 0 {
		t.Fatalf("exit code %d after the delay", code)
	}
	for range lines {
	}
}

// inOrder reports whether log holds each of parts, in that order.
func inOrder(log string, parts ...string) bool {
	for _, p := range parts {
		i := strings.Index(log, p)
		if i < 0 {
			return false
		}
		log = log[i+len(p):]
	}
	return true
}

// TestShutdownDelayConfig: shutdown_delay is a duration of the file,
// STRATA_SHUTDOWN_DELAY overrides it (an explicit 0s too), and the default
// is 0. A negative or unreadable one is a configuration error, exit 2,
// whose line names the setting and not the value.
func TestShutdownDelayConfig(t *testing.T) {
	for _, c := range []struct {
		yaml string
		env  string
		want time.Duration
	}{
		{"", "", 0},
		{"shutdown_delay: 15s\n", "", 15 * time.Second},
		{"", "2s", 2 * time.Second},
		{"shutdown_delay: 15s\n", "1m30s", 90 * time.Second},
		{"shutdown_delay: 15s\n", "0s", 0},
	} {
		path := ""
		if c.yaml != "" {
			path = writeConfig(t, c.yaml)
		}
		cfg, err := loadConfig(path, func(k string) string { return map[string]string{"STRATA_SHUTDOWN_DELAY": c.env}[k] })
		if err != nil {
			t.Fatalf("%q STRATA_SHUTDOWN_DELAY=%q: %v", c.yaml, c.env, err)
		}
		if got := time.Duration(cfg.ShutdownDelay); got != c.want {
			t.Errorf("%q STRATA_SHUTDOWN_DELAY=%q: shutdown delay %v, want %v", c.yaml, c.env, got, c.want)
		}
	}
	for _, c := range []struct {
		yaml, env string
		want      []string
	}{
		{"shutdown_delay: -97s\n", "", []string{"line 1: shutdown_delay", "negative"}},
		{"", "-97s", []string{"STRATA_SHUTDOWN_DELAY", "negative"}},
		{"", "97", []string{"STRATA_SHUTDOWN_DELAY", "a duration"}},
		{"shutdown_delay: 1s\n", "-97ms", []string{"STRATA_SHUTDOWN_DELAY", "negative"}},
	} {
		args, path := []string{}, ""
		if c.yaml != "" {
			path = writeConfig(t, c.yaml)
			args = append(args, "-config", path)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, binary(t), args...)
		cmd.Env = []string{"STRATA_LISTEN=127.0.0.1:0", "LOG_REQUESTS=false"}
		if c.env != "" {
			cmd.Env = append(cmd.Env, "STRATA_SHUTDOWN_DELAY="+c.env)
		}
		out, err := cmd.CombinedOutput()
		cancel()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%q STRATA_SHUTDOWN_DELAY=%q: %v, want exit 2; output %q", c.yaml, c.env, err, out)
			continue
		}
		msg := strings.TrimSuffix(string(out), "\n")
		if path != "" {
			msg = strings.ReplaceAll(msg, path, "FILE") // its temporary directory may hold a 97
		}
		if strings.Contains(msg, "97") || strings.Contains(msg, "\n") {
			t.Errorf("%q STRATA_SHUTDOWN_DELAY=%q: output %q; want one line without the value", c.yaml, c.env, out)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q STRATA_SHUTDOWN_DELAY=%q: output %q; want it to say %q", c.yaml, c.env, out, w)
			}
		}
	}
}
