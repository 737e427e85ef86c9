package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	client                    tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pk := &testPKI{pool: x509.NewCertPool()}
	pk.pool.AddCert(ca)
	pk.caFile = write("ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth)
	pk.certFile = write("server.pem", "CERTIFICATE", srvDER)
	kb, _ := x509.MarshalECPrivateKey(srvKey)
	pk.keyFile = write("server-key.pem", "EC PRIVATE KEY", kb)
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth)
	pk.client = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	return pk
}

// TestMTLS runs the server in-process (run) with a client CA: a client
// with a certificate of that CA is served, others are refused at the
// handshake. Cancelling ctx stops it cleanly.
func TestMTLS(t *testing.T) {
	pk := newTestPKI(t)
	env := map[string]string{
		"STRATA_LISTEN": "127.0.0.1:0", "LOG_REQUESTS": "false",
		"STRATA_TLS_CERT_FILE": pk.certFile, "STRATA_TLS_KEY_FILE": pk.keyFile, "STRATA_TLS_CLIENT_CA_FILE": pk.caFile,
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
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pk.pool, Certificates: certs}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + a + "/healthz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if st, err := get([]tls.Certificate{pk.client}); err != nil || st != 200 {
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
