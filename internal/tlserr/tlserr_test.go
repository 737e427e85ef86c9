package tlserr_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/strata-cache/strata/internal/tlserr"
)

func TestUntrusted(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{io.EOF, false},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, false},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, true},
		{fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), true},
		{fmt.Errorf("dial: %w", x509.HostnameError{Host: "redis.example"}), true},
		{fmt.Errorf("dial: %w", x509.CertificateInvalidError{Reason: x509.Expired}), true},
		{fmt.Errorf("handshake: %w", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), true},
	} {
		if got := tlserr.Untrusted(c.err); got != c.want {
			t.Errorf("Untrusted(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
