package main

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowBodyIsCutOff: a client that sends a request's headers and then
// only part of its body is cut off after read_timeout (it used to hold
// the connection and a handler for as long as it liked: the server had a
// header timeout only). The server goes on serving others.
func TestSlowBodyIsCutOff(t *testing.T) {
	p := startProc(t, map[string]string{"STRATA_CONFIG": writeConfig(t, "read_timeout: 300ms\n")})
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /dache/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"val")); err != nil {
		t.Fatal(err)
	}
	// Never send the rest: the server must end the request by itself.
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("a request whose body never came answered %d", resp.StatusCode)
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server still held the connection after 20 s with read_timeout 300ms")
	}
	if st, _, _ := do(t, "GET", p.URL+"/healthz", ""); st != 200 {
		t.Fatalf("healthz after the cut-off: %d", st)
	}
	st, body, _ := do(t, "GET", p.URL+"/dache/k", "")
	if st != 404 {
		t.Fatalf("GET of the key whose write was cut off: %d %s; want 404 (nothing stored)", st, body)
	}
}

// TestNegativeReadTimeoutRefused: a negative read_timeout stops the server
// with a clear error (as every duration of the file).
func TestNegativeReadTimeoutRefused(t *testing.T) {
	_, err := loadConfig(writeConfig(t, "read_timeout: -1s\n"), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "negative duration") {
		t.Fatalf("loadConfig with read_timeout -1s: %v; want a negative duration error", err)
	}
}
