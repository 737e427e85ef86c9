package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/hybrid"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want etcd.Kind
	}{
		{nil, etcd.KindNone},
		{rpctypes.ErrGRPCAuthFailed, etcd.KindConfig},
		{rpctypes.ErrAuthFailed, etcd.KindConfig},
		{rpctypes.ErrGRPCPermissionDenied, etcd.KindConfig},
		{fmt.Errorf("x: %w", rpctypes.ErrGRPCInvalidAuthToken), etcd.KindConfig},
		{rpctypes.ErrGRPCNoLeader, etcd.KindTransient},
		{rpctypes.ErrTooManyRequests, etcd.KindTransient},
		{status.Error(codes.Unavailable, "connection refused"), etcd.KindTransient},
		{status.Error(codes.DeadlineExceeded, "slow"), etcd.KindTransient},
		{context.DeadlineExceeded, etcd.KindTransient},
		{context.Canceled, etcd.KindOther},
		{rpctypes.ErrGRPCRequestTooLarge, etcd.KindOther},
		{hybrid.ErrL2Config, etcd.KindConfig},
		{errors.New("something else"), etcd.KindOther},
	} {
		if got := etcd.Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %s; want %s", c.err, got, c.want)
		}
	}
}
