package etcd

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-cache/strata/hybrid"
)

// Kind is the class of an etcd error, which tells the cache how to react.
type Kind int

const (
	// KindNone is the kind of a nil error.
	KindNone Kind = iota
	// KindTransient means etcd is unreachable, has no leader, is overloaded
	// or timed out: the same call may succeed later. Errors of this kind
	// wrap hybrid.ErrL2Unavailable.
	KindTransient
	// KindConfig means etcd answered and refused because of how things are
	// set up: authentication failed, permission denied, auth not enabled
	// for a user and password, a closed client. Waiting will not fix it.
	// Errors of this kind wrap hybrid.ErrL2Config.
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

// Classify returns the kind of err, an error of this package or of the etcd
// client, wrapped or not.
func Classify(err error) Kind {
	switch {
	case err == nil:
		return KindNone
	case errors.Is(err, context.Canceled):
		return KindOther
	case errors.Is(err, hybrid.ErrL2Config):
		return KindConfig
	case errors.Is(err, hybrid.ErrL2Unavailable):
		return KindTransient
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, clientv3.ErrNoAvailableEndpoints):
		return KindTransient
	}
	switch rpctypes.Error(unwrapStatus(err)) {
	case rpctypes.ErrAuthFailed, rpctypes.ErrPermissionDenied, rpctypes.ErrInvalidAuthToken,
		rpctypes.ErrInvalidAuthMgmt, rpctypes.ErrUserEmpty, rpctypes.ErrUserNotFound,
		rpctypes.ErrRoleNotGranted, rpctypes.ErrAuthNotEnabled, rpctypes.ErrAuthOldRevision:
		return KindConfig
	case rpctypes.ErrNoLeader, rpctypes.ErrNotLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrNotCapable,
		rpctypes.ErrStopped, rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail,
		rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrUnhealthy, rpctypes.ErrTooManyRequests,
		rpctypes.ErrTimeoutWaitAppliedIndex:
		return KindTransient
	}
	if s, ok := status.FromError(unwrapStatus(err)); ok {
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
			return KindTransient
		case codes.PermissionDenied, codes.Unauthenticated:
			return KindConfig
		case codes.Canceled:
			// The client was closed under us (its context cancelled).
			return KindConfig
		}
	}
	return KindOther
}

// unwrapStatus returns the innermost error that carries a gRPC status, or
// err itself.
func unwrapStatus(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := e.(interface{ GRPCStatus() *status.Status }); ok {
			return e
		}
	}
	return err
}

// wrap prefixes an etcd error with the operation and key and marks its kind
// for the cache (hybrid.ErrL2Unavailable or hybrid.ErrL2Config).
func wrap(op, key string, err error) error {
	switch Classify(err) {
	case KindTransient:
		if errors.Is(err, hybrid.ErrL2Unavailable) {
			return fmt.Errorf("etcd: %s %q: %w", op, key, err)
		}
		return fmt.Errorf("etcd: %s %q: %w: %w", op, key, hybrid.ErrL2Unavailable, err)
	case KindConfig:
		if errors.Is(err, hybrid.ErrL2Config) {
			return fmt.Errorf("etcd: %s %q: %w", op, key, err)
		}
		return fmt.Errorf("etcd: %s %q: %w: %w", op, key, hybrid.ErrL2Config, err)
	}
	return fmt.Errorf("etcd: %s %q: %w", op, key, err)
}
