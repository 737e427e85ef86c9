package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata/internal/testcerts"
)

// TestMTLS runs the server in-process (run) with a client CA: a client
// with a certificate of that CA is served, others are refused at the
// handshake. Cancelling ctx stops it cleanly.
func TestMTLS(t *testing.T) {
	pk, err := testcerts.Write(t.TempDir(), "strata-server")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"STRATA_LISTEN": "127.0.0.1:0", "LOG_REQUESTS": "false",
		"STRATA_TLS_CERT_FILE": pk.CertFile, "STRATA_TLS_KEY_FILE": pk.KeyFile, "STRATA_TLS_CLIENT_CA_FILE": pk.CAFile,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, nil, func(k string) string { return env[k] }, pw)
		pw.Close()
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if _, rest, ok := strings.Cut(sc.Text(), `"addr":"`); ok {
				a, _, _ := strings.Cut(rest, `"`)
				addr <- a
			}
		}
	}()
	var a string
	select {
	case a = <-addr:
	case code := <-exit:
		t.Fatalf("run exited %d", code)
	case <-time.After(10 * time.Second):
		t.Fatal("not listening after 10s")
	}
	get := func(certs []tls.Certificate) (int, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pk.Client.RootCAs, Certificates: certs}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + a + "/healthz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if st, err := get(pk.Client.Certificates); err != nil || st != 200 {
		t.Fatalf("with a client certificate: %d %v", st, err)
	}
	if st, err := get(nil); err == nil {
		t.Fatalf("without a client certificate: %d, want a refused handshake", st)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + a + "/healthz")
	if err == nil {
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS port")
		}
		resp.Body.Close()
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Fatalf("exit code %d after cancel", code)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	for _, env := range []map[string]string{
		{"STRATA_TLS_CERT_FILE": "/x.pem"},
		{"STRATA_TLS_CLIENT_CA_FILE": "/ca.pem"},
	} {
		if _, err := loadConfig("", func(k string) string { return env[k] }); err == nil {
			t.Errorf("%v accepted", env)
		}
	}
	cfg, err := loadConfig("", func(k string) string {
		return map[string]string{"STRATA_TLS_CERT_FILE": "/nonexistent.pem", "STRATA_TLS_KEY_FILE": "/nonexistent-key.pem"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serverTLS(cfg); err == nil || !strings.Contains(err.Error(), "TLS certificate") {
		t.Fatalf("serverTLS: %v", err)
	}
}
