package postgres_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/postgres"
)

func TestClassify(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code}) }
	for _, c := range []struct {
		name string
		err  error
		want postgres.Kind
	}{
		{"nil", nil, postgres.KindNone},
		{"cancelled", fmt.Errorf("get: %w", context.Canceled), postgres.KindOther},
		{"deadline", context.DeadlineExceeded, postgres.KindTransient},
		{"connection closed by the server", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), postgres.KindTransient},
		{"eof", io.EOF, postgres.KindTransient},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), postgres.KindTransient},
		{"admin shutdown", pg("57P01"), postgres.KindTransient},
		{"connection exception", pg("08006"), postgres.KindTransient},
		{"too many connections", pg("53300"), postgres.KindTransient},
		{"bad password", pg("28P01"), postgres.KindConfig},
		{"unknown database", pg("3D000"), postgres.KindConfig},
		{"permission denied", pg("42501"), postgres.KindConfig},
		{"syntax error", pg("42601"), postgres.KindOther},
		{"unique violation", pg("23505"), postgres.KindOther},
		{"already classified unavailable", fmt.Errorf("x: %w", hybrid.ErrL2Unavailable), postgres.KindTransient},
		{"already classified config", fmt.Errorf("x: %w", hybrid.ErrL2Config), postgres.KindConfig},
		{"untrusted certificate", fmt.Errorf("connect: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), postgres.KindConfig},
		{"anything else", errors.New("boom"), postgres.KindOther},
	} {
		if got := postgres.Classify(c.err); got != c.want {
			t.Errorf("%s: Classify(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
