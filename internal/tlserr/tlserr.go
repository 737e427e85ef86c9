// Package tlserr tells a TLS error that waiting will not fix (the peer's
// certificate is not trusted, or the peer does not speak TLS) from one that
// it may (a handshake cut short by the network).
package tlserr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// Untrusted reports whether err, wrapped or not, says that a TLS handshake
// failed for a reason of configuration: the server's certificate did not
// verify (unknown authority, wrong host name, expired or otherwise
// invalid), or the server answered in plain text.
func Untrusted(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &record)
}
