package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/tlserr"
)

// wrap prefixes err with the operation and marks it for the cache: an error
// after which the same call may succeed later (PostgreSQL unreachable,
// shutting down, a timeout) wraps hybrid.ErrL2Unavailable; one that waiting
// will not fix (authentication, permissions, an unknown database) wraps
// hybrid.ErrL2Config. A caller's cancellation is left as it is.
func wrap(op, key string, err error) error {
	where := op
	if key != "" {
		where = fmt.Sprintf("%s %q", op, key)
	}
	switch Classify(err) {
	case KindTransient:
		return fmt.Errorf("postgres: %s: %w: %w", where, hybrid.ErrL2Unavailable, err)
	case KindConfig:
		return fmt.Errorf("postgres: %s: %w: %w", where, hybrid.ErrL2Config, err)
	}
	return fmt.Errorf("postgres: %s: %w", where, err)
}

// Kind is the class of a PostgreSQL error, which tells the cache how to
// react.
type Kind int

const (
	// KindNone is the kind of a nil error.
	KindNone Kind = iota
	// KindTransient means PostgreSQL is unreachable, starting or shutting
	// down, the connection broke, or the call timed out: the same call may
	// succeed later.
	KindTransient
	// KindConfig means PostgreSQL answered and refused because of how things
	// are set up: authentication failed, permission denied, the database
	// does not exist; or its TLS certificate is not trusted.
	KindConfig
	// KindOther is everything else, including a caller's cancelled context.
	KindOther
)

// String returns the kind's name: "none", "transient", "config" or "other".
func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindTransient:
		return "transient"
	case KindConfig:
		return "config"
	}
	return "other"
}

// Classify returns the kind of err, an error of this package or of pgx,
// wrapped or not.
func Classify(err error) Kind {
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case err == nil:
		return KindNone
	case errors.Is(err, context.Canceled):
		return KindOther
	case errors.Is(err, hybrid.ErrL2Config):
		return KindConfig
	case errors.Is(err, hybrid.ErrL2Unavailable):
		return KindTransient
	case tlserr.Untrusted(err): // the server's certificate, or a server without TLS
		return KindConfig
	case errors.As(err, &pgErr):
		switch pgErr.Code[:2] {
		case "28", "3D": // invalid authorization, invalid catalog (database) name
			return KindConfig
		case "42":
			if pgErr.Code == "42501" { // insufficient privilege
				return KindConfig
			}
		case "08", "53", "57": // connection exception, insufficient resources, operator intervention (shutdown)
			return KindTransient
		}
		return KindOther
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr), pgconn.SafeToRetry(err), pgconn.Timeout(err), connLost(err):
		return KindTransient
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return KindTransient
	}
	return KindOther
}
