package etcd_test

// Suspected bug: one caller's cancelled context fails another caller's
// write through the shared lease grant. Drop into etcd/ (uses the
// package's test helpers clientOn, env, ctx, quietLogger).

import (
	"context"
	"testing"
	"time"

	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/internal/tcpproxy"
)

// Writers of different keys with the same lifetime share a bucket's lease
// grant. One caller's cancelled context (a client that went away) must not
// fail another caller's write whose context is live.
func TestPeerCancelledGrantFailsNoOtherWriter(t *testing.T) {
	m := etcdtest.Start(t)
	proxy, err := tcpproxy.New(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cli := clientOn(t, "http://"+proxy.Addr())
	l2, err := etcd.NewL2(cli, etcd.L2Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx(t), "warm"); err != nil { // the connection is up
		t.Fatal(err)
	}
	proxy.Pause() // the grant hangs; the connection stays up
	first, cancel := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() {
		_, err := l2.Set(first, "a", env(time.Now().UnixNano(), []byte("1")), time.Hour)
		firstDone <- err
	}()
	time.Sleep(100 * time.Millisecond) // lets the first writer start the grant: ordering, not a condition
	second := make(chan error, 1)
	go func() {
		_, err := l2.Set(ctx(t), "b", env(time.Now().UnixNano(), []byte("2")), time.Hour)
		second <- err
	}()
	time.Sleep(100 * time.Millisecond) // the second writer waits for the same grant
	cancel()
	<-firstDone
	select {
	case err := <-second:
		t.Fatalf("the second writer failed when the first one's context was cancelled: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	proxy.Resume()
	if err := <-second; err != nil {
		t.Fatalf("the second writer, whose context was live: %v", err)
	}
}
