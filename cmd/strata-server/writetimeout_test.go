//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSlowReaderIsCutOff: a client that asks for a value and never reads
// the response is cut off after write_timeout; it used to hold the
// handler (and the value) for as long as it kept the connection open,
// as the server had read timeouts only. The value is larger than what
// the two sockets' buffers take, so that the handler's write blocks.
func TestSlowReaderIsCutOff(t *testing.T) {
	const size = 12 << 20
	p := startProc(t, map[string]string{"LOG_REQUESTS": "true", "STRATA_CONFIG": writeConfig(t,
		fmt.Sprintf("write_timeout: 2s\nmax_body_bytes: %d\ncaches:\n  big: {}\n", size))})
	if st, body, _ := do(t, "PUT", p.URL+"/v1/caches/big/keys/v", string(bytes.Repeat([]byte("x"), size))); st != 204 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/caches/big/keys/v HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Never read: the server must end the request by itself, and log it.
	waitFor(t, 20*time.Second, "the GET of a client that does not read to end (its request log line)", func() bool {
		return strings.Contains(p.Log(), `"method":"GET","path":"/v1/caches/big/keys/v"`)
	})
	// What the client gets is cut short: the connection ends before the value.
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the connection is still open 20s after the handler gave up")
	}
	if n >= size {
		t.Fatalf("the client read %d bytes, the whole value, after the cut-off", n)
	}
	if st, _, _ := do(t, "GET", p.URL+"/healthz", ""); st != 200 {
		t.Fatalf("healthz after the cut-off: %d", st)
	}
}

// TestWriteTimeoutDefault: write_timeout defaults to read_timeout plus
// 30s, so that a request whose body takes all of read_timeout still has
// time for its answer; a negative one is refused.
func TestWriteTimeoutDefault(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want time.Duration
	}{
		{"", 60 * time.Second},
		{"read_timeout: 2m\n", 150 * time.Second},
		{"write_timeout: 5s\n", 5 * time.Second},
	} {
		path := ""
		if c.yaml != "" {
			path = writeConfig(t, c.yaml)
		}
		cfg, err := loadConfig(path, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Duration(cfg.WriteTimeout); got != c.want {
			t.Errorf("%q: write_timeout %v, want %v", c.yaml, got, c.want)
		}
	}
	if _, err := loadConfig(writeConfig(t, "write_timeout: -1s\n"), func(string) string { return "" }); err == nil {
		t.Error("a negative write_timeout accepted")
	}
}
