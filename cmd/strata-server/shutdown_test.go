package main

import (
	"bufio"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShutdownBounded: a request that does not end (a body that stops
// arriving) delays a graceful shutdown by shutdown_timeout at most, and a
// second SIGTERM ends the wait at once (it was swallowed: the drain ran
// to shutdown_timeout whatever the operator sent). Either way the
// connection is closed, the caches are closed and the exit code is 1.
func TestShutdownBounded(t *testing.T) {
	for _, c := range []struct {
		name    string
		timeout string
		signals int
	}{
		{"shutdown_timeout reached", "1s", 1},
		{"second signal", "5m", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startProc(t, map[string]string{"STRATA_CONFIG": writeConfig(t,
				"read_timeout: 5m\nwrite_timeout: 5m\nshutdown_timeout: "+c.timeout+"\n")})
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
			if c.signals > 1 {
				waitFor(t, 10*time.Second, "the server to start shutting down", func() bool {
					return strings.Contains(p.Log(), `"msg":"shutting down"`)
				})
				if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				t.Fatalf("still running 20s after SIGTERM x%d with shutdown_timeout %s", c.signals, c.timeout)
			}
			ee, ok := p.err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want exit status 1 (requests cut)", p.err)
			}
			if log := p.Log(); !strings.Contains(log, "in-flight requests cut") || !strings.Contains(log, `"msg":"stopped"`) {
				t.Fatalf("log:\n%s", log)
			}
			// The cut request's connection is closed, with no answer.
			if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
				t.Fatalf("the cut request's connection: %q %v; want it closed without an answer", b, err)
			}
		})
	}
}
