package etcd_test

// A cluster that another replaces at the same address (a restore, a rebuild)
// is a gap: its revisions are not the ones the watch counted (before, the
// nodes waited for revisions after their last and never heard the changes
// below it, serving old copies indefinitely).

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
)

// switchProxy forwards loopback connections to the current target; Switch
// changes the target and closes every connection, as when etcd behind an
// address is replaced (a restore from a snapshot, a rebuilt cluster).
type switchProxy struct {
	ln     net.Listener
	target atomic.Value
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, conns: map[net.Conn]struct{}{}}
	p.target.Store(target)
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target.Load().(string))
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[s] = struct{}{}, struct{}{}
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			p.wg.Go(func() { pipe(s, c) })
			p.wg.Go(func() { pipe(c, s) })
		}
	})
	t.Cleanup(p.close)
	return p
}

func (p *switchProxy) closeConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *switchProxy) Switch(target string) {
	p.target.Store(target)
	p.closeConns()
}

func (p *switchProxy) close() {
	p.ln.Close()
	p.closeConns()
	p.wg.Wait()
}

// etcd behind the nodes' address replaced by another cluster whose
// revisions are behind the ones the nodes saw (a restore from an older
// snapshot, a cluster rebuilt empty): changes written there afterwards
// reach the nodes, or they report a gap and verify what they hold.
func TestReplacedClusterChangesHeard(t *testing.T) {
	old := etcdtest.Start(t)
	fresh := etcdtest.Start(t)
	proxy := newSwitchProxy(t, old.Addr())
	cfg := etcd.Config{Endpoints: []string{"http://" + proxy.ln.Addr().String()}}
	a := register(t, newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)}), "users")
	b := register(t, newProvider(t, strata.Settings{Tier: etcd.Settings(cfg)}), "users")
	c := context.Background()
	waitFor(t, 10*time.Second, "Ping", func() bool { return a.Ping(c) == nil && b.Ping(c) == nil })
	// History on the old cluster: 200 changes of this cache.
	for i := range 200 {
		if err := hybrid.Set(c, a, fmt.Sprint("x", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := hybrid.Set(c, a, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v := fromL2(t, b, "k"); v != "v1" {
		t.Fatalf("b reads %q", v)
	}
	proxy.Switch(fresh.Addr())
	waitFor(t, 10*time.Second, "the nodes to reach the new cluster", func() bool { return a.Ping(c) == nil && b.Ping(c) == nil })
	if err := hybrid.Set(c, a, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	if r, err := fresh.Client(t).Get(c, "users:k"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("a's write is not on the new cluster: %v", err)
	}
	// Even once the new cluster's revisions pass the ones b saw, b has
	// not heard of the change (nor reported a gap).
	for i := range 300 {
		if err := hybrid.Set(c, a, fmt.Sprint("y", i), "y"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, ok, err := hybrid.TryGet[string](c, b, "k")
		if err == nil && (!ok || v == "v2") {
			return
		}
		if time.Now().After(deadline) {
			st := b.Stats()
			t.Fatalf("b still serves %q (%v) 10 s after a's change on the replaced cluster (b: %d messages received, %d gaps)", v, err, st.BackplaneReceived, st.BackplaneGaps)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
