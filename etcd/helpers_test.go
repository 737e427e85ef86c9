package etcd_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-cache/strata/internal/envelope"
)

// env returns an envelope with timestamp ts holding value.
func env(ts int64, value []byte) []byte {
	e := envelope.Envelope{Timestamp: ts, FreshUntil: ts + int64(time.Hour), Type: "test", Value: value}
	return e.Append(nil)
}

func tsOf(t testing.TB, b []byte) int64 {
	t.Helper()
	e, err := envelope.Decode(b)
	if err != nil {
		t.Fatalf("stored value does not decode: %v", err)
	}
	return e.Timestamp
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// myEtcdClient stands for the application's own client in examples.
func myEtcdClient() *clientv3.Client { return nil }
