package main

// Request bodies a client in another language may send by mistake: one
// shorter than its Content-Length (the client died mid-upload), a chunked
// body cut before its last chunk, a body with a broken chunk. None of them
// may change the stored value (docs/server.md: "A refused request changes
// nothing"), and whoever can still read the answer gets a JSON 400.

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rawExchange writes raw to the server at base (an http:// URL on
// loopback), half-closes the connection's write side and reads one
// response, if the server sends one before closing.
func rawExchange(t *testing.T, base, raw string) (*http.Response, string, error) {
	t.Helper()
	pu, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", pu.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

func TestHuntTruncatedBodiesChangeNothing(t *testing.T) {
	u, _, _ := peerServer(t, peerYAML, nil)
	for _, c := range []struct{ method, path, orig, get, want string }{
		{"PUT", "/v1/caches/blobs/keys/t", "original", "/v1/caches/blobs/keys/t", "original"},
		{"PUT", "/v1/caches/docs/keys/t", `{"a":1}`, "/v1/caches/docs/keys/t", `{"a":1}`},
		{"POST", "/dache/t", `{"value":"original"}`, "/dache/t", dacheValue(`"original"`)},
	} {
		if st, body, _ := send(t, c.method, u+c.path, c.orig); st != 204 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, st, body)
		}
		host := strings.TrimPrefix(u, "http://")
		for name, raw := range map[string]string{
			// Declared 20 bytes, sent 6 (a bytes value, and the start of a
			// JSON document that is valid by itself: "12").
			"short Content-Length": c.method + " " + c.path + " HTTP/1.1\r\nHost: " + host +
				"\r\nContent-Length: 20\r\n\r\n" + `{"value":1}`[:6],
			"short Content-Length, valid JSON prefix": c.method + " " + c.path + " HTTP/1.1\r\nHost: " + host +
				"\r\nContent-Length: 3\r\n\r\n" + `12`,
			// A chunked body without its last chunk.
			"chunked, no last chunk": c.method + " " + c.path + " HTTP/1.1\r\nHost: " + host +
				"\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n12\r\n",
			// A chunk whose size line is not hexadecimal.
			"chunked, bad size": c.method + " " + c.path + " HTTP/1.1\r\nHost: " + host +
				"\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n12\r\nzz\r\nxx\r\n0\r\n\r\n",
		} {
			resp, body, err := rawExchange(t, u, raw)
			if err != nil {
				// The server reads the whole body before it answers, and the
				// client's half-close is the end of it: an answer is due.
				t.Errorf("%s %s with a %s body: no answer: %v", c.method, c.path, name, err)
			} else {
				wantError(t, c.method+" "+c.path+" "+name, resp.StatusCode, body, resp.Header, 400, "bad_body")
			}
			// Whatever the answer (or none), nothing changed.
			wantValue(t, c.method+" "+c.path+" after a "+name+" body", u+c.get, c.want)
		}
	}
}
