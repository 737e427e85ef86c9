package etcd_test

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/tiertest"
)

func tsOf(t testing.TB, b []byte) int64 {
	t.Helper()
	e, err := envelope.Decode(b)
	if err != nil {
		t.Fatalf("stored value does not decode: %v", err)
	}
	return e.Timestamp
}

// The helpers the tier modules share (internal/tiertest), by their short names.
var (
	env         = tiertest.Envelope
	ctx         = tiertest.Context
	waitFor     = tiertest.WaitFor
	quietLogger = tiertest.QuietLogger
	newProvider = tiertest.NewProvider
	register    = tiertest.Register
)

// myEtcdClient stands for the application's own client in examples.
func myEtcdClient() *clientv3.Client { return nil }
